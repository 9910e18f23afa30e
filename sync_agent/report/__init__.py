"""The monthly period report: counting over cases, rendering, the email and its attachments.

Public API (the CLI, the daemon and ``make demo`` use only these):
``Period``, ``build_report``, ``PeriodReport``, ``paragraph``, ``render_text``, ``render_html``,
``send_period_report``, ``SendResult``, ``write_report_files``.
"""

from sync_agent.report.build import FlaggedDossier, PeriodReport, SourceStatus, build_report
from sync_agent.report.counting import Figures, Rates, rate
from sync_agent.report.deliver import SendResult, send_period_report, write_report_files
from sync_agent.report.message import build_message
from sync_agent.report.period import Period
from sync_agent.report.render_html import render_html
from sync_agent.report.render_text import paragraph, render_text

__all__ = [
    "Figures", "FlaggedDossier", "Period", "PeriodReport", "Rates", "SendResult", "SourceStatus",
    "build_message", "build_report", "paragraph", "rate", "render_html", "render_text",
    "send_period_report", "write_report_files",
]
