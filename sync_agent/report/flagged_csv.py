"""The flagged dossiers as CSV: the bypassed dossiers of the period, then the other open flags.

UTF-8 with a byte-order mark and CRLF lines, because the Centre opens it in Excel, which reads a
BOM-less file in the machine's ANSI code page and garbles every Vietnamese letter. Excel with
Vietnamese regional settings still splits a CSV on ``;``, so the attached workbook carries the
same rows as a sheet (``flagged_rows``).
"""

from __future__ import annotations

from collections.abc import Iterator

from sync_agent.report import vn
from sync_agent.report.build import PeriodReport
from sync_agent.report.cells import csv_table

HEADER = (
    "Loại cảnh báo", "Mã hồ sơ", "Thủ tục", "Lĩnh vực", "Người nộp (đã che)", "Ngày nộp",
    "Ngày tiếp nhận", "Ngày hẹn trả", "Trạng thái", "Hệ thống", "Phát hiện lúc", "Đã xem", "Chi tiết",
)


def flagged_rows(report: PeriodReport) -> Iterator[tuple[object, ...]]:
    """One row per flagged dossier under ``HEADER``, days as dates and the detection time as a
    ward-time datetime without its zone, which a spreadsheet cannot hold (``None`` when missing)."""
    for item in (*report.bypassed, *report.other_flags):
        yield (
            vn.FLAG_LABELS.get(item.kind, item.kind), item.code, item.procedure, item.field_name or "",
            item.applicant, item.filed_on, item.received_on, item.due_on,
            vn.STATUS_LABELS.get(item.status or "", item.status or ""), vn.source_label(item.source),
            None if item.raised_at is None else item.raised_at.replace(tzinfo=None),
            "có" if item.acknowledged else "",
            item.details or "",
        )


def build_csv(report: PeriodReport) -> bytes:
    """All rows (no limit), encoded ``utf-8-sig``."""
    return csv_table(HEADER, flagged_rows(report))
