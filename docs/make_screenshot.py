"""Render the emailed report of the seed-figure data set in headless Chromium -> docs/report-email.png.

Run by hand (not by the test suite), from the repository root:

    .venv/bin/python docs/make_screenshot.py [--chromium /usr/bin/chromium] [--out docs/report-email.png]

It builds the test suite's seed-figure store (the ward's February 2026: 4,899 received, 4,874
resolved, 25 in progress) in a temporary SQLite file, renders the HTML body exactly as the email
carries it, except that the two lists are cut to 10 rows so the whole message fits in one picture
(the email lists 50, the attached CSV all of them), and photographs it with a fresh, throw-away
Chromium profile and no network features.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync_agent.report import Period, build_report  # noqa: E402
from sync_agent.report.render_html import render_html  # noqa: E402
from sync_agent.store.engine import create_store_engine, migrate  # noqa: E402
from tests.report.conftest import NOW, make_settings, seed_store  # noqa: E402

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report-email.png")
    ap.add_argument("--width", type=int, default=820)
    ap.add_argument("--height", type=int, default=2980)
    ap.add_argument("--rows", type=int, default=10, help="rows shown per list")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        engine = create_store_engine(f"sqlite:///{work / 'seed.db'}")
        migrate(engine)
        seed_store(engine)
        report = build_report(engine, make_settings(), Period.parse("2026-02"), now=NOW)
        engine.dispose()
        page = work / "report.html"
        page.write_text(render_html(report, limit=args.rows), encoding="utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                args.chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={work / 'profile'}",
                f"--screenshot={args.out.resolve()}",
                f"--window-size={args.width},{args.height}",
                page.as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
