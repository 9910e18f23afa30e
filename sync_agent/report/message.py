"""The period report as one email: text + HTML alternatives, the .xlsx and the .csv attached.

Built from a ``PeriodReport`` and a Message-ID only, so the message written to ``--out`` as
``.eml`` and the one sent are the same bytes apart from the Message-ID the outbox chose.
Text parts are quoted-printable, so the raw message stays readable (and checkable: the tests
scan it for anything shaped like an ID number).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from sync_agent.config import Settings
from sync_agent.report.build import PeriodReport
from sync_agent.report.flagged_csv import build_csv
from sync_agent.report.render_html import render_html
from sync_agent.report.render_text import render_text, subject
from sync_agent.report.xlsx import build_xlsx

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
EMAIL_TEXT_LIMIT = 50


def report_key(report: PeriodReport) -> str:
    """The outbox key of a period's report (the daemon checks the same key)."""
    return f"report:{report.period.label}"


def attachment_names(report: PeriodReport) -> tuple[str, str]:
    label = report.period.label
    return f"bieu-06a-{label}.xlsx", f"ho-so-can-kiem-tra-{label}.csv"


def sender_domain(settings: Settings) -> str:
    return settings.smtp.sender.rpartition("@")[2] or "localhost"


def build_message(report: PeriodReport, settings: Settings, message_id: str) -> EmailMessage:
    """multipart/mixed [ multipart/alternative [text, html], xlsx, csv ]."""
    msg = EmailMessage()
    msg["Subject"] = subject(report)
    msg["From"] = settings.smtp.sender
    msg["To"] = ", ".join(settings.report.recipients)
    msg["Date"] = format_datetime(report.generated_at)
    msg["Message-ID"] = message_id
    msg["Content-Language"] = "vi"
    msg["X-Sync-Agent-Report"] = f"{report.ward_code} {report.period.label}"
    xlsx_name, csv_name = attachment_names(report)
    msg.set_content(render_text(report, limit=EMAIL_TEXT_LIMIT, attached=(xlsx_name, csv_name)), subtype="plain",
                    charset="utf-8", cte="quoted-printable")
    msg.add_alternative(render_html(report), subtype="html", charset="utf-8", cte="quoted-printable")
    msg.add_attachment(build_xlsx(report), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=xlsx_name)
    # bytes, so the BOM survives; the charset parameter tells mail clients how to show it
    msg.add_attachment(build_csv(report), maintype="text", subtype="csv", filename=csv_name,
                       params={"charset": "utf-8"})
    return msg
