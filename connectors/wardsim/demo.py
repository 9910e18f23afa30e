"""``sync-agent demo``: the whole pipeline once, against the bundled simulators, on SQLite.

What a ward IT officer sees before pointing the agent at the real systems: the four simulators
start on loopback with a year of generated dossiers and a few faults switched on (a source
answering 503, a rate limit, an expired session, bad records), the agent syncs every source,
syncs again to show that nothing is counted twice, reconciles, and writes the report of the
latest complete period. Everything lands in one folder: the configuration it used, the store,
the JSON log and the report files.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from connectors.wardsim.catalogue import DEFAULT_WARD_CODE, DEFAULT_WARD_NAME
from connectors.wardsim.dataset import generate
from connectors.wardsim.server import DEFAULT_CREDENTIALS, start_simulators, stop_simulators
from sync_agent import logging as agent_logging
from sync_agent.config import load_settings
from sync_agent.store.engine import open_engine, read_connection
from sync_agent.store.runs import get_cursor
from sync_agent.store.tables import dossiers, quarantine
from sync_agent.sync import sync_sources

TZ_NAME = "Asia/Ho_Chi_Minh"

#: demo-only secrets, handed to the agent through the environment exactly like real ones
DEMO_ENV = {
    "SYNC_AGENT_ID_HASH_KEY": "demo-only-key-not-for-production",
    "ONE_STOP_PASSWORD": DEFAULT_CREDENTIALS["one_stop"].password,
    "CIVIL_STATUS_SECRET": DEFAULT_CREDENTIALS["civil_status"].password,
    "RESIDENCE_API_KEY": DEFAULT_CREDENTIALS["residence"].api_key,
    "HKD_PASSWORD": DEFAULT_CREDENTIALS["household_business"].password,
}


def demo_config(out: Path, urls: dict[str, str]) -> str:
    return textwrap.dedent(f'''\
        # Written by `sync-agent demo`: the agent's configuration for the bundled simulators.
        [agent]
        ward_code = "{DEFAULT_WARD_CODE}"
        ward_name = "{DEFAULT_WARD_NAME}"
        province_name = "thành phố Hải Phòng"
        timezone = "{TZ_NAME}"
        database_url = "sqlite:///demo.db"
        id_hash_key = "${{SYNC_AGENT_ID_HASH_KEY}}"
        log_file = "sync-agent.jsonl"

        [connectors.one_stop]
        type = "one_stop"
        base_url = "{urls["one_stop"]}"
        username = "{DEFAULT_CREDENTIALS["one_stop"].username}"
        password = "${{ONE_STOP_PASSWORD}}"

        [connectors.civil_status]
        type = "civil_status"
        base_url = "{urls["civil_status"]}"
        client_id = "{DEFAULT_CREDENTIALS["civil_status"].username}"
        client_secret = "${{CIVIL_STATUS_SECRET}}"

        [connectors.residence]
        type = "residence"
        base_url = "{urls["residence"]}"
        api_key = "${{RESIDENCE_API_KEY}}"
        retry_after_cap = 5

        [connectors.household_business]
        type = "household_business"
        base_url = "{urls["household_business"]}"
        username = "{DEFAULT_CREDENTIALS["household_business"].username}"
        password = "${{HKD_PASSWORD}}"

        [report]
        recipients = ["ttpvhcc@example.gov.vn"]

        [alerts]
        recipients = ["tiepnhan@example.gov.vn"]
        ''')


def run_demo(out: Path, size: int, seed: int, echo: Callable[[str], None] = print) -> int:
    """Run the demo; returns the exit status (1 when a source's sync failed)."""
    from sync_agent.flags import summary_lines
    from sync_agent.reconcile import reconcile
    from sync_agent.report.deliver import write_report_files
    from sync_agent.report.period import Period
    from sync_agent.report.render_text import paragraph

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("demo.db*"):  # every demo starts from an empty store
        stale.unlink()
    (out / "sync-agent.jsonl").unlink(missing_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    echo(f"== generating a year of dossiers for {DEFAULT_WARD_NAME} (seed {seed}, {size:,} dossiers)")
    dataset = generate(seed, size, now)
    servers = start_simulators(dataset, seed=seed)
    try:
        urls = {name: server.url for name, server in servers.items()}
        for name, url in urls.items():
            echo(f"   simulator {name:<20} {url}  ({dataset.count(name):,} records)")
        config_path = out / "sync-agent.toml"
        config_path.write_text(demo_config(out, urls), encoding="utf-8")
        os.environ.update({k: v for k, v in DEMO_ENV.items() if not os.environ.get(k)})
        env_path = write_demo_env(out)
        settings = load_settings(config_path)
        agent_logging.configure(level="INFO", log_file=settings.agent.log_file, stderr_level="ERROR")
        engine = open_engine(settings.agent.database_url)

        echo("== faults switched on: one_stop answers 503 twice (retried), residence rate-limits once "
             "(Retry-After 1 s, honoured) and sends 3 malformed records (quarantined), civil_status's token "
             "expires before the second sync (renewed)")
        servers["one_stop"].faults.fail_next(2, 503)
        servers["residence"].faults.throttle_next(1, retry_after=1)
        servers["residence"].faults.bad_records_next(3)

        echo("== first sync (the whole history)")
        first = sync_sources(engine, settings)
        for r in first:
            echo("   " + r.line())
        servers["civil_status"].faults.expire_sessions()
        echo("== second sync (incremental: only the lookback is re-read; nothing is counted twice)")
        second = sync_sources(engine, settings)
        for r in second:
            echo("   " + r.line())

        echo("== reconciliation")
        result = reconcile(engine, settings.agent.timezone)
        echo(f"   {result}")
        with read_connection(engine) as conn:
            for line in summary_lines(conn):
                echo("   " + line)

        echo("== what the store holds, per source")
        with read_connection(engine) as conn:
            for name in settings.source_names:
                stored = conn.execute(select(func.count()).where(dossiers.c.source == name)).scalar_one()
                held = conn.execute(select(func.count()).where(
                    quarantine.c.source == name, quarantine.c.superseded_at.is_(None))).scalar_one()
                cursor = get_cursor(conn, name)
                shown = cursor.astimezone(settings.agent.timezone).strftime("%d/%m/%Y %H:%M:%S") if cursor else "-"
                echo(f"   {name:<20} records={stored:<7,} quarantined={held:<3} cursor={shown}")

        today = now.astimezone(settings.agent.timezone).date()
        period = Period.latest_complete(today, settings.agent.period_start_day)
        echo(f"== report of the latest complete period {period.label} "
             f"({period.start:%d/%m/%Y} - {period.end:%d/%m/%Y})")
        files = write_report_files(engine, settings, period, out)
        for path in files:
            echo(f"   wrote {path}")
        from sync_agent.report.build import build_report

        echo("")
        echo(paragraph(build_report(engine, settings, period)))
        echo("")
        echo(f"configuration, store and log are in {out}/ ; try: "
             f"{source_command(env_path)} && {command_hint()} --config {shlex.quote(str(config_path))} flags")
        engine.dispose()
        return 0 if all(r.ok for r in (*first, *second)) else 1
    finally:
        stop_simulators(servers)


def command_hint() -> str:
    """How to run the agent from here, for the demo's last line: the ``sync-agent`` script
    installed beside this interpreter (relative to the working directory when under it, as
    ``make demo`` shows it), else the module."""
    script = Path(sys.executable).with_name("sync-agent")
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m sync_agent"
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


def source_command(path: Path) -> str:
    """``. path`` for a POSIX shell: a bare file name would be looked up on ``PATH`` (sh does
    not look in the working directory), so it gets a ``./``."""
    text = str(path)
    return f". {shlex.quote(text if '/' in text else './' + text)}"


def write_demo_env(out: Path) -> Path:
    """The demo-only secrets in effect, as a file to source before running other commands on the
    demo's configuration (it names them as ``${NAME}``, like a real one). Only values equal to
    the demo's own are written: a real secret the caller's environment holds never is. Created
    readable by its owner only."""
    path = out / "demo.env"
    lines = ["# demo-only secrets, not for production: `. this-file` before sync-agent --config on the demo"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in DEMO_ENV.items()
              if os.environ.get(name) == value]
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path
