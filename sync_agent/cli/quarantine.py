"""``quarantine``: the records a source sent that could not be stored, and why; ``quarantine show ID``:
one of them with its payload (ID numbers already replaced by their keyed hash); ``quarantine ack ID
--note``: leave one as it is, with a note, so that it no longer asks for a check."""

from __future__ import annotations

import json

import click

from sync_agent.cli.context import AgentContext, configured, unknown_source
from sync_agent.errors import UsageError
from sync_agent.store.engine import read_connection
from sync_agent.store.quarantined import acknowledge_quarantined, get_quarantined, list_quarantined


@click.group("quarantine", invoke_without_command=True)
@click.option("--source", help="Only this source.")
@click.option("--all", "include_settled", is_flag=True,
              help="Also those acknowledged, and those a later valid version of the same record superseded.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def command(click_ctx: click.Context, source: str | None, include_settled: bool, fmt: str) -> None:
    """Quarantined records to check (held, missing from every figure), the latest first."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: AgentContext = click_ctx.obj
    tz = ctx.settings.agent.timezone
    with read_connection(ctx.engine) as conn:
        items = list_quarantined(conn, source, include_settled=include_settled)
    if source and not items and not configured(ctx.settings, source):
        raise unknown_source(ctx.settings, source)
    if fmt == "json":
        click.echo(json.dumps([i.as_json(tz) for i in items], ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("no quarantined records" if include_settled else "no quarantined records to check")
        return
    # Widths from the rows: a source's ids may be longer than the usual (a UUID with a prefix).
    src_w = max(20, *(len(i.source) for i in items))
    id_w = max(38, *(len(i.source_id or "-") for i in items))
    click.echo(f"{'id':>5}  {'source':<{src_w}} {'source id':<{id_w}} {'last seen':<19} {'seen':>4} {'run':>5}  "
               "state: reason")
    for i in items:
        seen = i.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        if i.superseded_at is not None:
            state = f"superseded {i.superseded_at.astimezone(tz):%Y-%m-%d %H:%M}"
        elif i.acknowledged_at is not None:
            state = f"acknowledged {i.acknowledged_at.astimezone(tz):%Y-%m-%d %H:%M} ({i.ack_note})"
        else:
            state = "held"
        click.echo(f"{i.id:>5}  {i.source:<{src_w}} {i.source_id or '-':<{id_w}} {seen:<19} {i.times_seen:>4} "
                   f"{i.last_run_id or '-':>5}  {state}: {i.reason}")


@command.command("show")
@click.argument("item_id", type=int)
@click.pass_obj
def show(ctx: AgentContext, item_id: int) -> None:
    """Quarantined record ITEM_ID with its payload, as JSON."""
    with read_connection(ctx.engine) as conn:
        item = get_quarantined(conn, item_id)
    if item is None:
        raise UsageError(f"no quarantined record {item_id} (see sync-agent quarantine --all)")
    out = item.as_json(ctx.settings.agent.timezone)
    out["raw_payload"] = json.loads(item.raw_payload)
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))


@command.command("ack")
@click.argument("item_id", type=int)
@click.option("--note", required=True, help="Why it is left as it is (kept with the time).")
@click.pass_obj
def ack(ctx: AgentContext, item_id: int, note: str) -> None:
    """Acknowledge quarantined record ITEM_ID, and the other held versions of the same record.

    It stays stored and missing from the figures; status and the report stop asking for a check
    (a bad version sent later asks again; a valid one supersedes it as before)."""
    versions = acknowledge_quarantined(ctx.engine, item_id, note)
    more = f" (with {versions - 1} other held version(s) of the same record)" if versions > 1 else ""
    click.echo(f"acknowledged quarantined record {item_id}{more}")
