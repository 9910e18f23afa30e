"""``report``: one period's figures as text, JSON or HTML; ``--out`` writes the files, ``--send``
emails the report (once per period; ``--force`` sends it again)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from sync_agent.cli.context import AgentContext, output_folder
from sync_agent.errors import UsageError


@click.command("report")
@click.option("--period", "label", metavar="YYYY-MM",
              help="The period (default: the latest complete one, e.g. 2026-02 = 15/01..14/02/2026).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write report-YYYY-MM.{html,json,txt,xlsx,csv,eml} and report-YYYY-MM-dossiers.{xlsx,csv} "
                   "(every counted dossier and the figures it counts in) into this folder.")
@click.option("--send", is_flag=True, help="Email the report to [report] recipients (once per period).")
@click.option("--force", is_flag=True, help="With --send: send again even if it was sent or may have been.")
@click.pass_obj
def command(ctx: AgentContext, label: str | None, fmt: str, out_dir: Path | None, send: bool,
            force: bool) -> None:
    """The period report: counts, rates, per source and field, flags, sync health."""
    from sync_agent.report import Period, build_report, render_html, render_text, send_period_report, vn
    from sync_agent.report.deliver import write_report_files

    settings = ctx.settings
    tz = settings.agent.timezone
    now = dt.datetime.now(tz)
    start_day = settings.agent.period_start_day
    if force and not send:
        raise UsageError("--force only makes sense with --send")
    if label:
        try:
            period = Period.parse(label, start_day)
        except ValueError as exc:
            raise UsageError(f"--period: {exc}") from None
    else:
        period = Period.latest_complete(now.date(), start_day)
    complete = period.end < now.date()
    if send and not complete:
        raise UsageError(f"the period {period.label} ends on {vn.date(period.end)}: its report can be sent "
                         f"from {vn.date(period.end + dt.timedelta(days=1))}")
    if out_dir is not None:
        output_folder(out_dir)  # checked before the report is computed
    # with --out the dossiers behind the figures are listed from the same snapshot as the figures
    report = build_report(ctx.engine, settings, period, now=now, with_dossiers=out_dir is not None)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    elif fmt == "html":
        click.echo(render_html(report, limit=None))
    else:
        click.echo(render_text(report), nl=False)
    if not complete:
        click.echo(f"note: the period {period.label} is not over yet; its figures will change", err=True)
    if not report.identity_holds:
        click.echo("warning: received != resolved + in progress at: " + "; ".join(report.identity_failures),
                   err=True)
    if out_dir is not None:
        for path in write_report_files(ctx.engine, settings, period, out_dir, now=now, report=report):
            click.echo(f"wrote {path}", err=True)
    if not send:
        return
    result = send_period_report(ctx.engine, settings, period, force=force, now=now)
    if result.already_sent:
        when = vn.datetime(result.sent_at, tz) if result.sent_at else "earlier"
        click.echo(f"not sent: the report of {period.label} already went out on {when} "
                   f"(Message-ID {result.message_id}); use --force to send it again", err=True)
    else:
        click.echo(f"sent the report of {period.label} to {', '.join(result.recipients)} "
                   f"(Message-ID {result.message_id})", err=True)
