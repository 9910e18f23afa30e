"""``flags``: list what the Centre must look at; ``flags ack ID --note``: acknowledge one."""

from __future__ import annotations

import json

import click

from sync_agent.cli.context import AgentContext
from sync_agent.flags import KIND_LABELS, acknowledge, details_text, list_flags
from sync_agent.labels import short_source_label
from sync_agent.reconcile import FLAG_KINDS
from sync_agent.store.engine import read_connection

#: a flag's state as the Centre's staff read it (the JSON keeps the codes)
_STATES = {"open": "đang mở", "cleared": "đã đóng"}


@click.group("flags", invoke_without_command=True)
@click.option("--kind", type=click.Choice(FLAG_KINDS), help="Only flags of this kind.")
@click.option("--all", "include_closed", is_flag=True, help="Cleared flags too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def command(click_ctx: click.Context, kind: str | None, include_closed: bool, fmt: str) -> None:
    """Open flags with dossier code, procedure, masked applicant, source and dates."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: AgentContext = click_ctx.obj
    tz = ctx.settings.agent.timezone
    with read_connection(ctx.engine) as conn:
        views = list_flags(conn, kind=kind, include_closed=include_closed)
    if fmt == "json":
        click.echo(json.dumps([v.as_json(tz) for v in views], ensure_ascii=False, indent=2))
        return
    if not views:
        click.echo("không có cảnh báo đang mở" if not include_closed else "không có cảnh báo nào")
        return

    def day(v: object) -> str:
        return v.astimezone(tz).strftime("%d/%m/%Y") if v is not None else "-"  # type: ignore[attr-defined]

    for v in views:
        state = _STATES.get(v.state, v.state) + (" (đã xem)" if v.acknowledged_at else "")
        click.echo(f"#{v.id:<6} {KIND_LABELS[v.kind]} [{state}]")
        click.echo(f"        {v.dossier_code} | {v.procedure_code} {v.procedure_name or ''} | {v.applicant or '-'} | "
                   f"{', '.join(short_source_label(x) for x in v.sources) or '-'}")
        click.echo(f"        tiếp nhận {day(v.received_at)}, hẹn trả {day(v.due_at)}, cảnh báo từ {day(v.raised_at)}"
                   + (f", hết {day(v.cleared_at)}" if v.cleared_at else "")
                   + (f"; ghi chú: {v.ack_note}" if v.ack_note else "")
                   + (f"; {details_text(v.details)}" if v.details else ""))


@command.command("ack")
@click.argument("flag_id", type=int)
@click.option("--note", required=True, help="What was done about it (kept with the time).")
@click.pass_obj
def ack(ctx: AgentContext, flag_id: int, note: str) -> None:
    """Acknowledge flag FLAG_ID with a note."""
    cleared = acknowledge(ctx.engine, flag_id, note)
    click.echo(f"đã ghi nhận cảnh báo số {flag_id}")
    if cleared is not None:  # a reconciliation found it mended first: nothing more to do
        when = cleared.astimezone(ctx.settings.agent.timezone)
        click.echo(f"cảnh báo này đã tự hết lúc {when:%H:%M} ngày {when:%d/%m/%Y}; ghi chú vẫn được lưu")
