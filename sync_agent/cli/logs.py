"""``logs``: the agent's structured log, filtered by run, source, level and time."""

from __future__ import annotations

import datetime as dt

import click

from sync_agent.cli.context import AgentContext, configured, unknown_source
from sync_agent.errors import UsageError
from sync_agent.logs import LEVELS, LogFilter, ReadStats, format_text, parse_time, read_log


@click.command("logs")
@click.option("--run", "run_id", type=int, help="Only the lines of sync run ID (see `runs`).")
@click.option("--source", help="Only this source's lines.")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error", "critical"],
                                           case_sensitive=False),
              help="This level and above.")
@click.option("--since",
              help="From this time: 30m, 2h, 1d ago, or 2026-11-27 / 2026-11-27T08:00 (ward time).")
@click.option("--until", help="Up to this time (same forms as --since).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), help="Only the last N matching lines.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def command(ctx: AgentContext, run_id: int | None, source: str | None, level: str | None,
            since: str | None, until: str | None, limit: int | None, fmt: str) -> None:
    """Read the agent's JSON log (rotated files included), oldest first."""
    settings = ctx.settings
    tz = settings.agent.timezone
    log_file = settings.agent.log_file
    if log_file is None:
        raise UsageError("no log file configured (agent.log_file)")
    now = dt.datetime.now(tz)
    try:
        flt = LogFilter(run_id=run_id, source=source, level=level and level.lower(),
                        since=parse_time(since, now, tz) if since else None,
                        until=parse_time(until, now, tz) if until else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    assert flt.level is None or flt.level in LEVELS
    stats = ReadStats()
    events = read_log(log_file, flt, stats, limit)
    if (source and not events and not configured(settings, source)
            and not read_log(log_file, LogFilter(source=source), limit=1)):
        raise unknown_source(settings, source)  # other filters aside, no line of it at all
    for ev in events:
        # json: each stored line unchanged, one JSON object a line
        click.echo(ev.line if fmt == "json" else format_text(ev, tz))
    if stats.files == 0:
        click.echo(f"no log file at {log_file}", err=True)
    elif stats.skipped:
        click.echo(f"({stats.skipped} unreadable or partial line(s) skipped)", err=True)
    if fmt == "text" and not events and stats.files:
        click.echo("no matching log lines", err=True)
