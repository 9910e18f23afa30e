"""``runs``: recent sync runs, newest first."""

from __future__ import annotations

import json

import click

from sync_agent.cli.context import AgentContext, configured, unknown_source
from sync_agent.store.engine import read_connection
from sync_agent.store.runs import recent_runs, seen_now


@click.command("runs")
@click.option("--source", help="Only this source.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def command(ctx: AgentContext, source: str | None, limit: int, fmt: str) -> None:
    """Recent sync runs: source, start, duration, counts, status, error."""
    tz = ctx.settings.agent.timezone
    with read_connection(ctx.engine) as conn:
        rows = recent_runs(conn, source, limit)
    rows = seen_now(ctx.engine, rows)
    if source and not rows and not configured(ctx.settings, source):
        raise unknown_source(ctx.settings, source)
    if fmt == "json":
        click.echo(json.dumps([r.as_json(tz) for r in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no sync runs yet")
        return
    click.echo(f"{'id':>5}  {'source':<20} {'started':<19} {'secs':>7} {'fetched':>8} {'inserted':>8} "
               f"{'updated':>8} {'unchanged':>9} {'quar.':>6}  status / error")
    for r in rows:
        started = r.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        secs = f"{r.duration:.1f}" if r.duration is not None else "-"
        tail = r.status + (f": {r.error}" if r.error else "")
        click.echo(f"{r.id:>5}  {r.source:<20} {started:<19} {secs:>7} {r.fetched:>8} {r.inserted:>8} "
                   f"{r.updated:>8} {r.unchanged:>9} {r.quarantined:>6}  {tail}")
