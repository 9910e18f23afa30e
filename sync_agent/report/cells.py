"""Text from the source systems as a spreadsheet cell that stays text.

Procedure names, codes and flag details come from systems the agent does not control. Excel
runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (a CSV's cells too), so a
value crafted or mangled upstream could compute, link out or break a row in the file staff open.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: what openpyxl would store as a formula or an error value rather than as the text it is
_NOT_TEXT_IN_XLSX = re.compile(r"=|#(NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A)$")
#: control characters an .xlsx cannot hold (openpyxl refuses them, and the whole file with them)
_ILLEGAL_IN_XLSX = re.compile(r"[\000-\010\013\014\016-\037]")


def csv_text(value: Any) -> Any:
    """``value`` for a CSV cell: text that Excel would read as a formula gets a leading
    apostrophe, which Excel shows as text and a person reads past; other values are unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def xlsx_text(value: str) -> tuple[str, bool]:
    """``value`` as an .xlsx can hold it (control characters dropped), and whether the cell must
    be marked as text for openpyxl not to store it as a formula or an error value."""
    clean = _ILLEGAL_IN_XLSX.sub("", value)
    return clean, bool(_NOT_TEXT_IN_XLSX.match(clean))



def csv_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> bytes:
    """One table as CSV for Excel and scripts: UTF-8 with a byte-order mark (Excel reads a file
    without one in the machine's ANSI code page), CRLF lines, days and times written as staff
    read them, text as text (``csv_text``)."""
    from sync_agent.report import vn

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for row in body:
        w.writerow(vn.datetime(v) if isinstance(v, dt.datetime) else vn.date(v) if isinstance(v, dt.date)
                   else "" if v is None else csv_text(v) for v in row)
    return buf.getvalue().encode("utf-8-sig")


def table_sheet(wb: Any, title: str, header: Sequence[str], body: Iterable[Sequence[Any]],
                widths: Mapping[str, int]) -> None:
    """A sheet of ``wb`` (write-only or not) holding one table: a bold header kept in view,
    filters on every column, dates and times (naive, in ward time) as real ones, text as text
    (``xlsx_text``); column widths in characters by header name (14 otherwise)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.freeze_panes = "A2"
    for i, name in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(name, 14)
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="E8EEF4")
    wrap = Alignment(wrap_text=True, vertical="top")
    head = []
    for name in header:
        cell = WriteOnlyCell(ws, value=name)
        cell.font, cell.fill, cell.alignment = bold, fill, wrap
        head.append(cell)
    ws.append(head)
    n = 1
    for row in body:
        out: list[Any] = []
        for value in row:  # a cell object only where a plain value would not do (a cell costs 20x)
            if isinstance(value, dt.date):
                cell = WriteOnlyCell(ws, value=value)
                cell.number_format = "dd/mm/yyyy hh:mm" if isinstance(value, dt.datetime) else "dd/mm/yyyy"
                out.append(cell)
            elif isinstance(value, str):
                text, marked = xlsx_text(value)
                if marked:  # openpyxl would store it as a formula or an error value
                    cell = WriteOnlyCell(ws, value=text)
                    cell.data_type = "s"
                    out.append(cell)
                else:
                    out.append(text)
            else:
                out.append(value)
        ws.append(out)
        n += 1
    ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{n}"
