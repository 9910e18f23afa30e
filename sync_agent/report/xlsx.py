"""The per-field figures as a spreadsheet laid out like the Government Office's form 06a/VPCP/KSTT.

The Centre copies these columns into the form it files upward, so the layout follows the form:
merged two-level headers (received: carried over, online, direct or postal; resolved: early, on
time, overdue; in progress: within due, overdue), a numbering row, one row per field and a total
row. Two columns the form lacks (rejected, withdrawn) sit inside "resolved" so that every row
still adds up, and a last column states the identity for the row.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from sync_agent.report import vn
from sync_agent.report.build import PeriodReport
from sync_agent.report.cells import table_sheet, xlsx_text
from sync_agent.report.counting import Figures, Group
from sync_agent.report.flagged_csv import HEADER as FLAGGED_HEADER
from sync_agent.report.flagged_csv import flagged_rows
from sync_agent.report.render_text import RATE_LINES, figure_row, unfinished_note

FONT = "Times New Roman"
_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="E8EEF4")
_TOTAL_FILL = PatternFill("solid", fgColor="F3F6F9")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)

#: the 13 figure columns (C..O) under their group headings
LEAF_HEADERS = (
    "Tổng số",
    "Số kỳ trước chuyển qua",
    "Số mới tiếp nhận trực tuyến",
    "Số mới tiếp nhận trực tiếp hoặc qua dịch vụ bưu chính",
    "Tổng số",
    "Trả trước hạn",
    "Trả đúng thời hạn",
    "Trả quá hạn",
    "Từ chối giải quyết",
    "Rút hồ sơ",
    "Tổng số",
    "Chưa đến hạn (trong hạn)",
    "Quá hạn",
)
LAST_COL = 16  # P: the identity check
FORM = "Biểu số 06a/VPCP/KSTT"
#: the sheet of the flagged dossiers, and its column widths in characters by header
FLAGGED_SHEET = "Hồ sơ cần kiểm tra"
FLAGGED_WIDTHS = {"Loại cảnh báo": 30, "Mã hồ sơ": 26, "Thủ tục": 40, "Lĩnh vực": 18, "Người nộp (đã che)": 16,
                  "Hệ thống": 22, "Phát hiện lúc": 17, "Đã xem": 8, "Chi tiết": 50}
#: counts with a thousands separator, shown in the reader's locale (1.784 in Vietnamese Excel)
_COUNT = "#,##0"


def _cell(ws: Worksheet, row: int, col: int, value: object, *, bold: bool = False, size: int = 11,
          align: Alignment = _CENTER, border: bool = True, fill: PatternFill | None = None,
          number_format: str | None = None) -> None:
    text = xlsx_text(value)[0] if isinstance(value, str) else value
    c = ws.cell(row=row, column=col, value=text)
    if isinstance(text, str):
        c.data_type = "s"  # a field's name comes from a source system: never a formula
    if number_format is not None:
        c.number_format = number_format
    c.font = Font(name=FONT, size=size, bold=bold)
    c.alignment = align
    if border:
        c.border = _BORDER
    if fill is not None:
        c.fill = fill


def _merge(ws: Worksheet, r1: int, c1: int, r2: int, c2: int, value: object, *, bold: bool = True,
           fill: PatternFill | None = _HEAD_FILL) -> None:
    """A merged header cell; every covered cell gets the border, so the merged box is framed."""
    for r in range(r1, r2 + 1):
        for c in range(c1, c2 + 1):
            _cell(ws, r, c, None, fill=fill)
    _cell(ws, r1, c1, value, bold=bold, fill=fill)
    if (r1, c1) != (r2, c2):
        ws.merge_cells(start_row=r1, start_column=c1, end_row=r2, end_column=c2)


def _sheet(ws: Worksheet, report: PeriodReport, first_header: str, groups: Sequence[Group],
           total: Figures, form_title: str) -> None:
    p = report.period
    ws.sheet_view.showGridLines = False
    _cell(ws, 1, 1, form_title, bold=True, align=_LEFT, border=False)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=8)
    _cell(ws, 1, 12, f"Đơn vị báo cáo: {report.ward_name}", align=_LEFT, border=False)
    ws.merge_cells(start_row=1, start_column=12, end_row=1, end_column=LAST_COL)
    _cell(ws, 2, 1, "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH TẠI CƠ QUAN, ĐƠN VỊ TRỰC TIẾP "
                    "GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH", bold=True, size=13, border=False)
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=LAST_COL)
    # a period not over: said where the figures are, or the form passes for the period's own
    unfinished = "" if report.over else f" - SỐ LIỆU TẠM TÍNH. {unfinished_note(report)}"
    _cell(ws, 3, 1, f"Kỳ báo cáo: tháng {p.month:02d}/{p.year} (từ ngày {vn.date(p.start)} đến ngày "
                    f"{vn.date(p.end)}){unfinished}", bold=not report.over, border=False)
    ws.merge_cells(start_row=3, start_column=1, end_row=3, end_column=LAST_COL)
    _cell(ws, 4, 12, "Đơn vị tính: Số hồ sơ TTHC", align=Alignment(horizontal="right"), border=False)
    ws.merge_cells(start_row=4, start_column=12, end_row=4, end_column=LAST_COL)

    _merge(ws, 6, 1, 8, 1, "STT")
    _merge(ws, 6, 2, 8, 2, first_header)
    _merge(ws, 6, 3, 6, 6, "Số hồ sơ nhận giải quyết")
    _merge(ws, 6, 7, 6, 15, "Kết quả giải quyết")
    _merge(ws, 6, LAST_COL, 8, LAST_COL, "Kiểm tra: (3) = (7) + (13)")
    _merge(ws, 7, 3, 8, 3, LEAF_HEADERS[0])
    _merge(ws, 7, 4, 7, 6, "Trong đó")
    _merge(ws, 7, 7, 7, 12, "Số hồ sơ đã giải quyết")
    _merge(ws, 7, 13, 7, 15, "Số hồ sơ đang giải quyết")
    for i, text in enumerate(LEAF_HEADERS[1:], start=4):
        _cell(ws, 8, i, text, bold=True, fill=_HEAD_FILL)
    for col in range(1, LAST_COL + 1):
        _cell(ws, 9, col, f"({col})", size=10)

    row = 10
    for i, g in enumerate(groups, start=1):
        _cell(ws, row, 1, i)
        _cell(ws, row, 2, g.label, align=_LEFT)
        for col, v in enumerate(figure_row(g.figures), start=3):
            _cell(ws, row, col, v, number_format=_COUNT)
        _cell(ws, row, LAST_COL, "Đúng" if g.figures.identity_holds else "SAI")
        row += 1
    _cell(ws, row, 1, "", fill=_TOTAL_FILL)
    _cell(ws, row, 2, "Tổng cộng", bold=True, align=_LEFT, fill=_TOTAL_FILL)
    for col, v in enumerate(figure_row(total), start=3):
        _cell(ws, row, col, v, bold=True, fill=_TOTAL_FILL, number_format=_COUNT)
    _cell(ws, row, LAST_COL, "Đúng" if total.identity_holds else "SAI", bold=True, fill=_TOTAL_FILL)
    total_row = row

    row += 2
    _cell(ws, row, 2, "Tỷ lệ (%)", bold=True, align=_LEFT, border=False)
    rates = total.rates
    for attr, label, _ in RATE_LINES:
        row += 1
        value = getattr(rates, attr)
        _cell(ws, row, 2, label, align=_LEFT, border=False)
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=8)
        c = ws.cell(row=row, column=9, value=None if value is None else float(value))
        c.font = Font(name=FONT, size=11, bold=True)
        c.number_format = "General"  # 99,1 and 100 as the text and the seed write them, not 99,10 and 100,00
    row += 2
    _cell(ws, row, 2, "Ghi chú: cột (11) từ chối và (12) rút hồ sơ được tách riêng để số liệu mỗi dòng "
                      "khớp: (3) = (4) + (5) + (6) = (7) + (13); (7) = (8) + (9) + (10) + (11) + (12).",
          align=_LEFT, border=False, size=10)
    ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=LAST_COL)

    ws.column_dimensions["A"].width = 6
    ws.column_dimensions["B"].width = 34
    for col in range(3, LAST_COL):
        ws.column_dimensions[get_column_letter(col)].width = 12
    ws.column_dimensions[get_column_letter(LAST_COL)].width = 14
    ws.row_dimensions[2].height = 34
    ws.row_dimensions[8].height = 64
    ws.freeze_panes = "C10"
    ws.print_options.horizontalCentered = True
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.print_title_rows = "6:9"
    _ = total_row


def build_xlsx(report: PeriodReport) -> bytes:
    """The workbook: sheet "Biểu 06a" by field, sheet "Theo hệ thống" by reception source, sheet
    "Hồ sơ cần kiểm tra" the flagged dossiers (the attached CSV's rows)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Biểu 06a"
    _sheet(ws, report, "Lĩnh vực giải quyết", report.by_field, report.total, FORM)
    # form 06a is by field: the same layout by reception system is this agent's addition
    _sheet(wb.create_sheet("Theo hệ thống"), report, "Hệ thống tiếp nhận", report.by_source, report.total,
           f"Số liệu theo hệ thống tiếp nhận (bổ sung, ngoài {FORM})")
    table_sheet(wb, FLAGGED_SHEET, FLAGGED_HEADER, flagged_rows(report), FLAGGED_WIDTHS)
    stamp = report.generated_at.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    wb.properties.creator = "sync-agent"
    wb.properties.title = (f"Biểu 06a/VPCP/KSTT {report.ward_name} kỳ báo cáo tháng "
                           f"{report.period.month:02d}/{report.period.year}")
    wb.properties.created = stamp
    wb.properties.modified = stamp
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
