"""The dossiers behind the period's figures, one row per counted case (.xlsx and .csv).

When a figure looks wrong (the province's system shows 4.851 received online, the report
4.849), the Centre needs the dossiers themselves to compare, not only their sum. Each row says
which figure of the form the case counts in, under the form's own column names, so filtering
a column in Excel gives exactly the dossiers behind that figure; the row also names the records
of the case in each system, for an operator tracing one dossier through ``flags``, ``runs`` and
``logs``. Every class comes from the same conditions as the report's sums
(``counting.figure_conditions``), read in the same transaction, so the counts always agree.

Applicant names are masked as in every file the report writes; no ID number is stored to list.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, or_, select

from sync_agent.flags import KIND_LABELS, dossier_code, stored_details_text
from sync_agent.model import ENDED, RECEPTION_SOURCE, Channel, Status
from sync_agent.privacy import mask_name, redact_text
from sync_agent.report import vn
from sync_agent.report.cells import csv_table, table_sheet
from sync_agent.report.counting import counted_subquery, figure_conditions
from sync_agent.report.period import Period
from sync_agent.store.records import chunks
from sync_agent.store.tables import case_links, cases, dossiers, flags

#: where a case was received, by ``Figures`` field: the form's column names (06a/VPCP/KSTT)
RECEIVED_CLASSES: Mapping[str, str] = {
    "carried_over": "Kỳ trước chuyển qua",
    "received_online": "Mới tiếp nhận trực tuyến",
    "received_direct_or_postal": "Mới tiếp nhận trực tiếp hoặc qua dịch vụ bưu chính",
}
#: where a case stands at the period's end, by ``Figures`` field
OUTCOME_CLASSES: Mapping[str, str] = {
    "resolved_early": "Đã giải quyết: trả trước hạn",
    "resolved_on_time": "Đã giải quyết: trả đúng thời hạn",
    "resolved_overdue": "Đã giải quyết: trả quá hạn",
    "rejected": "Đã giải quyết: từ chối giải quyết",
    "withdrawn": "Đã giải quyết: rút hồ sơ",
    "in_progress_within_due": "Đang giải quyết: chưa đến hạn (trong hạn)",
    "in_progress_overdue": "Đang giải quyết: quá hạn",
}
#: the yes/no columns: the rates' numerators and denominators, and the bypass count
MARK_COLUMNS: Mapping[str, str] = {
    "resolved_digitised": "Số hóa hồ sơ, kết quả",
    "received_data_reused": "Sử dụng lại dữ liệu số hóa",
    "received_fee_required": "Phải nộp phí, lệ phí",
    "received_paid_online": "Thanh toán trực tuyến",
    "bypassed_reception": "Không qua bộ phận tiếp nhận",
}
#: a mark column's value: counted in its figure, or true of the dossier but not counted in this
#: period's rate (a carried-over dossier's fee was counted in the period it was received)
COUNTED, NOT_COUNTED_HERE = "có", "có (không tính vào tỷ lệ kỳ này)"
_ENDED = frozenset(s.value for s in ENDED)
CHANNEL_LABELS: Mapping[str, str] = {
    Channel.ONLINE: "Trực tuyến",
    Channel.DIRECT: "Trực tiếp",
    Channel.POSTAL: "Bưu chính",
    Channel.UNKNOWN: "Chưa rõ",
}
HEADER = (
    "STT", "Mã hồ sơ", "Thủ tục", "Lĩnh vực", "Hệ thống tiếp nhận", "Người nộp (đã che)", "Kênh nộp",
    "Ngày nộp", "Ngày tiếp nhận", "Ngày hẹn trả", "Ngày kết thúc", "Trạng thái hiện tại",
    "Trạng thái lấy từ hệ thống", "Tiếp nhận", "Kết quả giải quyết đến cuối kỳ", *MARK_COLUMNS.values(), "Ghi chú",
    "Hồ sơ trong các hệ thống",
)


@dataclass(frozen=True, slots=True)
class ListedDossier:
    """A case as the lists show it: its code, procedure, masked applicant, dates and records."""

    case_id: int
    code: str
    procedure: str
    field_name: str | None
    reception_source: str
    applicant: str
    channel: str
    filed_on: dt.date | None
    received_on: dt.date | None
    status: str
    #: (source, source id) of each record of the case
    records: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CountedDossier(ListedDossier):
    """One counted case of the period and the figures it counts in (``Figures`` field names)."""

    due_on: dt.date | None
    #: the end date as counted: never before reception, none while open
    ended_on: dt.date | None
    #: the system whose record gives the status, due and end (the most recently updated)
    state_source: str
    counted_in: frozenset[str]
    #: the ``MARK_COLUMNS`` that are true of the dossier, counted in this period's figure or not
    marked: frozenset[str]
    #: why a row reads as it does, where the rules or the systems make it surprising
    notes: tuple[str, ...]

    def mark(self, name: str) -> str:
        if name in self.counted_in:
            return COUNTED
        return NOT_COUNTED_HERE if name in self.marked else ""

    @property
    def received_class(self) -> str:
        return _one_of(self.counted_in, RECEIVED_CLASSES)

    @property
    def outcome_class(self) -> str:
        return _one_of(self.counted_in, OUTCOME_CLASSES)


def _one_of(counted_in: frozenset[str], classes: Mapping[str, str]) -> str:
    # exactly one by the counting rules; a second would show, not hide behind the first
    return "; ".join(label for name, label in classes.items() if name in counted_in)


def counted_cases(conn: Connection, period: Period, tz: dt.tzinfo, as_of: dt.date | None = None
                  ) -> list[CountedDossier]:
    """Every case the period's figures count, by reception date then code."""
    c = cases.c
    q = counted_subquery(period, c.id, c.case_key, c.reception_code, c.procedure_code, c.procedure_name,
                         c.applicant_name, c.submitted_at, c.state_source,
                         c.ended_on.label("recorded_end")).c
    conditions = figure_conditions(q, period, as_of)
    rows = conn.execute(select(
        q.id, q.case_key, q.reception_code, q.procedure_code, q.procedure_name, q.field_name, q.source,
        q.applicant_name, q.channel, q.submitted_at, q.received_on, q.due_on, q.end_on, q.recorded_end,
        q.status, q.state_source, q.digitised, q.data_reused, q.fee_required, q.paid_online, q.has_one_stop,
        *(case((cond, 1), else_=0).label(f"is_{name}") for name, cond in conditions.items()),
    )).all()
    ids = [r.id for r in rows]
    records, flagged = _records_of(conn, ids), _open_flags_of(conn, ids)
    out = []
    for r in rows:
        counted_in = frozenset(name for name in conditions if getattr(r, f"is_{name}"))
        marked = {name for name, true in (
            ("resolved_digitised", r.digitised), ("received_data_reused", r.data_reused),
            ("received_fee_required", r.fee_required), ("received_paid_online", r.fee_required and r.paid_online),
            ("bypassed_reception", not r.has_one_stop)) if true}
        out.append(CountedDossier(
            **_listed(r, tz, records),
            due_on=r.due_on,
            ended_on=r.end_on,
            state_source=r.state_source,
            counted_in=counted_in,
            marked=frozenset(marked),
            notes=(*_rule_notes(r, counted_in, period, as_of), *flagged.get(r.id, ())),
        ))
    out.sort(key=lambda d: (d.received_on or dt.date.min, d.code, d.case_id))
    return out


#: why a case of the period is in no figure, by status (domain.md: not counted)
NOT_COUNTED_REASONS: Mapping[str, str] = {
    Status.NOT_ACCEPTED: "không được tiếp nhận",
    Status.SUBMITTED: "đã nộp, chưa được tiếp nhận",
}
UNCOUNTED_HEADER = (
    "STT", "Mã hồ sơ", "Thủ tục", "Lĩnh vực", "Hệ thống tiếp nhận", "Người nộp (đã che)", "Kênh nộp",
    "Ngày nộp", "Ngày tiếp nhận", "Trạng thái hiện tại", "Lý do không tính", "Hồ sơ trong các hệ thống",
)


@dataclass(frozen=True, slots=True)
class UncountedDossier(ListedDossier):
    """A case filed or received in the period that no figure counts (refused, or not received)."""


def uncounted_cases(conn: Connection, period: Period, tz: dt.tzinfo) -> list[UncountedDossier]:
    """The period's cases the counting rules leave out: filed or received in it, and refused at
    reception or not received yet. A gap with the province's figures often sits here."""
    c = cases.c
    first = dt.datetime.combine(period.start, dt.time(0), tzinfo=tz)
    after = dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    in_period = or_(and_(c.received_on >= period.start, c.received_on <= period.end),
                    and_(c.received_on.is_(None), c.submitted_at >= first, c.submitted_at < after))
    rows = conn.execute(
        select(c.id, c.case_key, c.reception_code, c.procedure_code, c.procedure_name, c.field_name,
               c.reception_source.label("source"), c.applicant_name, c.channel, c.submitted_at, c.received_on,
               c.status)
        .where(c.status.in_(list(NOT_COUNTED_REASONS)), in_period)
    ).all()
    records = _records_of(conn, [r.id for r in rows])
    out = [UncountedDossier(**_listed(r, tz, records)) for r in rows]
    out.sort(key=lambda d: (d.filed_on or dt.date.min, d.code, d.case_id))
    return out


def _listed(r: Any, tz: dt.tzinfo, records: Mapping[int, tuple[tuple[str, str], ...]]) -> dict[str, Any]:
    """A case row's ``ListedDossier`` fields: code and procedure redacted, the name masked."""
    return {
        "case_id": r.id, "code": redact_text(dossier_code(r.case_key, r.reception_code)),
        "procedure": redact_text(r.procedure_name or r.procedure_code), "field_name": r.field_name,
        "reception_source": r.source, "applicant": redact_text(mask_name(r.applicant_name)),
        "channel": r.channel,
        "filed_on": r.submitted_at.astimezone(tz).date() if r.submitted_at else r.received_on,
        "received_on": r.received_on, "status": r.status, "records": records.get(r.id, ()),
    }


def _rule_notes(r: Any, counted_in: frozenset[str], period: Period, as_of: dt.date | None = None) -> list[str]:
    """Where a counting rule makes the row differ from what the systems show; ``as_of`` as in
    ``figure_conditions`` (a period not over judges what is due by the day of the figures)."""
    due_by = period.end if as_of is None else min(period.end, as_of)
    notes = []
    ended = r.status in _ENDED
    if ended and r.recorded_end is None:
        notes.append("trạng thái đã kết thúc nhưng chưa có ngày kết thúc: tính là đang giải quyết")
    if ended and r.end_on is not None and r.end_on > period.end:
        notes.append(f"kết thúc ngày {vn.date(r.end_on)}, sau ngày cuối kỳ {vn.date(period.end)}: "
                     "tính là đang giải quyết")
    if ("in_progress_within_due" in counted_in and r.status == Status.AWAITING_SUPPLEMENT
            and r.due_on is not None and r.due_on < due_by):
        notes.append("đang chờ công dân bổ sung: tính là trong hạn")
    if r.due_on is None and "resolved_on_time" in counted_in:
        notes.append("chưa có ngày hẹn trả: tính là đúng hạn")
    elif r.due_on is None and "in_progress_within_due" in counted_in:
        notes.append("chưa có ngày hẹn trả: tính là trong hạn")
    return notes


def _open_flags_of(conn: Connection, case_ids: Sequence[int]) -> dict[int, list[str]]:
    """The open flags of each case but the bypass (it has its own column), as staff read them."""
    found: dict[int, list[str]] = {}
    f = flags.c
    for chunk in chunks(case_ids):
        for r in conn.execute(
            select(f.case_id, f.kind, f.details)
            .where(f.state == "open", f.kind != "bypassed_reception", f.case_id.in_(chunk))
            .order_by(f.case_id, f.id)
        ):
            label = KIND_LABELS.get(r.kind, r.kind)
            text = f"cảnh báo: {label[:1].lower()}{label[1:]}"
            if r.details:
                text += f" ({redact_text(stored_details_text(r.details))})"
            if "completion_before_reception" in (r.details or ""):
                # reconciliation keeps the case's end no earlier than its reception
                text += "; cột Ngày kết thúc ghi bằng ngày tiếp nhận"
            found.setdefault(r.case_id, []).append(text)
    return found


def _records_of(conn: Connection, case_ids: Sequence[int]) -> dict[int, tuple[tuple[str, str], ...]]:
    found: dict[int, list[tuple[str, str]]] = {}
    link, d = case_links.c, dossiers.c
    for chunk in chunks(case_ids):
        for r in conn.execute(
            select(link.case_id, d.source, d.source_id)
            .select_from(case_links.join(dossiers, d.id == link.dossier_id))
            .where(link.case_id.in_(chunk))
        ):
            found.setdefault(r.case_id, []).append((r.source, r.source_id))
    # the reception record first: its code is the one staff look up
    return {k: tuple(sorted(v, key=lambda r: (r[0] != RECEPTION_SOURCE, r))) for k, v in found.items()}


def rows(items: Sequence[CountedDossier]) -> Iterator[tuple[Any, ...]]:
    """The list's rows under ``HEADER``: numbers and dates as values, the rest as text."""
    for n, item in enumerate(items, start=1):
        yield (
            n, *_identity_cells(item), item.due_on, item.ended_on, vn.STATUS_LABELS.get(item.status, item.status),
            vn.short_source_label(item.state_source),
            item.received_class, item.outcome_class, *(item.mark(name) for name in MARK_COLUMNS),
            # a flag's details may hold "; " themselves
            " | ".join(item.notes),
            _records_text(item.records),
        )


def _identity_cells(item: ListedDossier) -> tuple[Any, ...]:
    """The columns both lists open with, after the row number: code to reception date."""
    return (item.code, item.procedure, item.field_name or "", vn.source_label(item.reception_source),
            item.applicant, CHANNEL_LABELS.get(item.channel, item.channel), item.filed_on, item.received_on)


def _records_text(records: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{vn.short_source_label(s)}: {redact_text(sid)}" for s, sid in records)


def uncounted_rows(items: Sequence[UncountedDossier]) -> Iterator[tuple[Any, ...]]:
    """The rows under ``UNCOUNTED_HEADER``."""
    for n, item in enumerate(items, start=1):
        yield (
            n, *_identity_cells(item), vn.STATUS_LABELS.get(item.status, item.status),
            NOT_COUNTED_REASONS.get(item.status, item.status), _records_text(item.records),
        )


def build_dossier_csv(items: Sequence[CountedDossier]) -> bytes:
    """The list for scripts and text tools: UTF-8 with a byte-order mark, CRLF lines (Excel users
    open the .xlsx: a CSV's separator depends on the machine's regional settings)."""
    return csv_table(HEADER, rows(items))


#: column widths of the spreadsheet, in characters, by header
_WIDTHS = {"STT": 6, "Mã hồ sơ": 26, "Thủ tục": 40, "Lĩnh vực": 18, "Hệ thống tiếp nhận": 22,
           "Người nộp (đã che)": 16, "Ghi chú": 50, "Hồ sơ trong các hệ thống": 50}


def build_dossier_xlsx(items: Sequence[CountedDossier], period: Period,
                       uncounted: Sequence[UncountedDossier] = (), provisional: bool = False) -> bytes:
    """The list as a spreadsheet: filters on every column, the header kept in view, real dates;
    a second sheet lists the period's dossiers no figure counts."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    # as staff write a month ("kỳ 11-2026"; a sheet's name cannot hold "/")
    # a period not over: its sheet says so (a table with filters has no title row to say it in)
    title = f"Hồ sơ kỳ {period.month:02d}-{period.year}" + (" (tạm tính)" if provisional else "")
    table_sheet(wb, title, HEADER, rows(items), _WIDTHS)
    table_sheet(wb, "Không tính vào số liệu", UNCOUNTED_HEADER, uncounted_rows(uncounted), _WIDTHS)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

