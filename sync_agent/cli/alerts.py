"""``alerts``: today's digest; ``--send`` delivers it (email, webhooks), at most once a day."""

from __future__ import annotations

import datetime as dt
import json

import click

from sync_agent.cli.context import AgentContext
from sync_agent.errors import UsageError, WorkFailed
from sync_agent.redaction import redact_message


@click.command("alerts")
@click.option("--send", is_flag=True, help="Deliver the digest (each channel at most once per day).")
@click.option("--force", is_flag=True, help="With --send: deliver again even if already sent today.")
@click.option("--channel", help="With --send: only this channel (as `status` names it: email, webhook:<url>).")
@click.option("--date", "day", help="The digest's date, YYYY-MM-DD (default: today, ward time).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def command(ctx: AgentContext, send: bool, force: bool, channel: str | None, day: str | None, fmt: str) -> None:
    """Dossiers new since the last digest, due soon, overdue, and new flags."""
    from sync_agent.alerts import build_digest, digest_window_saved, render_text, send_digest
    from sync_agent.reconcile import reconcile

    settings = ctx.settings
    tz = settings.agent.timezone
    now = dt.datetime.now(tz)
    if force and not send:
        raise UsageError("--force only makes sense with --send")
    if channel and not send:
        raise UsageError("--channel only makes sense with --send")
    try:
        today = dt.date.fromisoformat(day) if day else now.date()
    except ValueError:
        raise UsageError(f"--date must be YYYY-MM-DD, got {day!r}") from None
    if send and today < now.date() and not digest_window_saved(ctx.engine, today):
        raise UsageError(f"no digest went on {today.isoformat()}: what it would have said goes in the next one "
                         "(send today's with alerts --send)")
    if send:
        # as the daemon's digest job: records stored but not reconciled yet would get cases dated
        # before this digest's end once reconciled after it, and be listed in no digest
        reconcile(ctx.engine, tz)
    digest = build_digest(ctx.engine, settings, today, now=now)
    if fmt == "json":
        click.echo(json.dumps(digest.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(digest, tz=tz))
    if not send:
        return
    result = send_digest(ctx.engine, settings, digest, force=force, now=now, only=channel)
    for o in result.outcomes:
        msg = redact_message(f"{o.channel}: {o.status.replace('_', ' ')}" + (f" ({o.error})" if o.error else ""))
        click.echo(msg, err=True)
    if not result.ok:
        channels = ", ".join(o.channel for o in result.failed)
        raise WorkFailed(f"digest {digest.key} not delivered on {channels}")
