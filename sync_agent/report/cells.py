"""Text from the source systems as a spreadsheet cell that stays text.

Procedure names, codes and flag details come from systems the agent does not control. Excel
runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (a CSV's cells too), so a
value crafted or mangled upstream could compute, link out or break a row in the file staff open.
"""

from __future__ import annotations

from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """``value`` for a CSV cell: text that Excel would read as a formula gets a leading
    apostrophe, which Excel shows as text and a person reads past; other values are unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
