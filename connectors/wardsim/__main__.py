"""Entry point of ``python -m connectors.wardsim``."""

import sys

from connectors.wardsim.cli import main

sys.exit(main())
