"""Sending the period's report once, and writing its files for ``--out`` and ``make demo``.

The report is computed before the outbox is claimed, so a failure in the counting never leaves
a row in ``sending``. Policy for a row left in ``sending`` (the process died or the connection
broke after the message text went out): the report *may* have been delivered, so neither the
daemon nor a plain ``--send`` resends it; the operator checks the mailbox and resends with
``--force`` (which reuses the same Message-ID, so mail systems that drop duplicates still can).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from email import policy
from pathlib import Path

from sqlalchemy import Engine

from sync_agent.config import Settings
from sync_agent.errors import ConfigError, UsageError
from sync_agent.mailer import ALREADY_SENT, deliver_once, message_id, send_email
from sync_agent.report.build import PeriodReport, build_report
from sync_agent.report.dossier_list import build_dossier_csv, build_dossier_xlsx
from sync_agent.report.flagged_csv import build_csv
from sync_agent.report.message import build_message, report_key, sender_domain
from sync_agent.report.period import Period
from sync_agent.report.render_html import render_html
from sync_agent.report.render_text import render_text
from sync_agent.report.xlsx import build_xlsx


@dataclass(frozen=True)
class SendResult:
    """What ``send_period_report`` did."""

    period: str
    status: str  # sent | already_sent
    message_id: str
    recipients: tuple[str, ...]
    sent_at: dt.datetime | None
    identity_holds: bool = True

    @property
    def already_sent(self) -> bool:
        return self.status == ALREADY_SENT

    def __str__(self) -> str:
        return f"report {self.period}: {self.status} {self.message_id}"


def send_period_report(engine: Engine, settings: Settings, period: Period, *, force: bool = False,
                       now: dt.datetime | None = None) -> SendResult:
    """Email ``period``'s report to ``[report] recipients`` unless it already went.

    Raises ``ConfigError`` with no recipients, ``UsageError`` for a period not over yet,
    ``DeliveryInDoubt`` for an attempt that may have been delivered, ``MailError`` when SMTP
    failed (the last two are ``WorkFailed``: exit status 1).
    """
    if not settings.report.recipients:
        raise ConfigError("report.recipients", "no recipients configured: the report has nobody to go to")
    today = (now or dt.datetime.now(settings.agent.timezone)).astimezone(settings.agent.timezone).date()
    if period.end >= today:
        # sending an unfinished period would mark it sent and block the real report
        raise UsageError(f"the period {period.label} ends on {period.end.isoformat()}: its report can be "
                         f"sent from {(period.end + dt.timedelta(days=1)).isoformat()}")
    report = build_report(engine, settings, period, now=now)
    result = deliver_once(
        engine, report_key(report), "email",
        lambda mid: build_message(report, settings, mid),
        lambda msg: send_email(settings.smtp, msg),
        force=force, now=now, ward_code=settings.agent.ward_code, domain=sender_domain(settings),
    )
    return SendResult(period=period.label, status=result.status, message_id=result.message_id,
                      recipients=settings.report.recipients, sent_at=result.sent_at,
                      identity_holds=report.identity_holds)


def preview_message_id(report: PeriodReport, settings: Settings) -> str:
    """The Message-ID the first send of this report uses."""
    return message_id(report_key(report), "email", ward_code=settings.agent.ward_code,
                      domain=sender_domain(settings))


def write_report_files(engine: Engine, settings: Settings, period: Period, out_dir: Path,
                       *, now: dt.datetime | None = None, report: PeriodReport | None = None) -> list[Path]:
    """Write report-YYYY-MM.{html,json,txt,xlsx,csv,eml} and report-YYYY-MM-dossiers.{xlsx,csv}
    (the dossiers behind the figures) into ``out_dir``; nothing is sent."""
    if report is None or report.dossiers is None:
        report = build_report(engine, settings, period, now=now, with_dossiers=True)
    dossiers = report.dossiers or ()
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"report-{period.label}"
    contents: list[tuple[str, bytes]] = [
        (".html", render_html(report, limit=None).encode("utf-8")),
        (".json", (json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")),
        (".txt", render_text(report).encode("utf-8")),
        (".xlsx", build_xlsx(report)),
        (".csv", build_csv(report)),
        (".eml", build_message(report, settings, preview_message_id(report, settings))
         .as_bytes(policy=policy.SMTP)),
        ("-dossiers.xlsx", build_dossier_xlsx(dossiers, period, report.uncounted, provisional=not report.over)),
        ("-dossiers.csv", build_dossier_csv(dossiers)),
    ]
    # every file is written whole before any takes its name: a full disk leaves the folder as it
    # was, not a set that looks finished without the email or the dossier list
    written: list[tuple[Path, Path]] = []
    try:
        for suffix, data in contents:
            path = out_dir / f"{base.name}{suffix}"
            tmp = out_dir / f"{path.name}.tmp"
            written.append((tmp, path))
            tmp.write_bytes(data)
    except OSError:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    renamed = 0
    try:
        for tmp, path in written:
            tmp.replace(path)
            renamed += 1
    except OSError as exc:  # a rename needing a block the disk has not: say which files are new
        for tmp, _ in written[renamed:]:
            tmp.unlink(missing_ok=True)
        done = ", ".join(path.name for _, path in written[:renamed]) or "none"
        raise OSError(exc.errno, f"{exc.strerror or exc}; written before it: {done}") from None
    return [path for _, path in written]
