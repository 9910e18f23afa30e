"""Flags as operators see them: listing, acknowledging, counting.

Reconciliation raises and clears flags; people only read them and acknowledge them with a note.
Every acknowledgement is kept in ``flag_events`` beside the raises and clears.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from sync_agent.errors import UsageError
from sync_agent.labels import short_source_label
from sync_agent.model import RECEPTION_SOURCE
from sync_agent.privacy import mask_name
from sync_agent.reconcile import FLAG_KINDS
from sync_agent.store.engine import write_transaction
from sync_agent.store.records import count_records
from sync_agent.store.tables import case_links, cases, dossiers, flag_events, flags

#: data-quality issues (``sync_agent.reconcile.QUALITY_ISSUES``) as Centre staff read them
ISSUE_LABELS = {
    "completion_before_reception": "ngày hoàn thành trước ngày tiếp nhận",
    "no_due_date": "hồ sơ chưa có ngày hẹn trả",
    "no_reception_time": "hồ sơ chưa có ngày tiếp nhận",
    "no_end_time": "đã kết thúc nhưng chưa có ngày kết thúc",
    "due_before_reception": "ngày hẹn trả trước ngày tiếp nhận",
}
STATUS_LABELS = {
    "submitted": "đã nộp, chưa tiếp nhận", "not_accepted": "không tiếp nhận", "received": "đã tiếp nhận",
    "in_progress": "đang giải quyết", "awaiting_supplement": "chờ bổ sung", "awaiting_payment": "chờ thanh toán",
    "suspended": "tạm dừng", "resolved": "đã giải quyết", "delivered": "đã trả kết quả", "rejected": "từ chối",
    "withdrawn": "rút hồ sơ",
}

#: Vietnamese labels for what Centre staff read
#: the kinds' names, the same in ``flags``, the report and the digest (``report.vn`` takes them)
KIND_LABELS = {
    "bypassed_reception": "Hồ sơ không qua bộ phận tiếp nhận",
    "unknown_reception_code": "Mã hồ sơ tiếp nhận không có trên hệ thống một cửa",
    "status_mismatch": "Trạng thái không khớp giữa các hệ thống",
    "data_quality": "Dữ liệu chưa hợp lệ",
}


@dataclass(frozen=True, slots=True)
class FlagView:
    """A flag as an operator reads it: what it is about, in the case's terms, names masked.

    ``dossier_code`` is the case's reception code, or the source's own id for a case without
    one. A flag whose case no longer exists (it cleared because its records joined another case)
    is described by the records its subject names.
    """

    id: int
    kind: str
    state: str
    dossier_code: str
    procedure_code: str | None
    procedure_name: str | None
    applicant: str
    sources: tuple[str, ...]
    received_at: dt.datetime | None
    due_at: dt.datetime | None
    raised_at: dt.datetime
    cleared_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    ack_note: str | None
    details: dict[str, Any]
    subject: str = ""  # the case key the flag is about
    filed_at: dt.datetime | None = None  # when the citizen submitted the dossier

    def as_json(self, tz: dt.tzinfo | None = None) -> dict[str, Any]:
        """The flag for ``flags --format json``; instants in ``tz`` (the ward's) when given."""
        def iso(v: dt.datetime | None) -> str | None:
            return None if v is None else (v.astimezone(tz) if tz else v).isoformat()

        return {
            "id": self.id, "kind": self.kind, "state": self.state, "dossier_code": self.dossier_code,
            "subject": self.subject, "procedure_code": self.procedure_code, "procedure_name": self.procedure_name,
            "applicant": self.applicant, "sources": list(self.sources), "filed_at": iso(self.filed_at),
            "received_at": iso(self.received_at), "due_at": iso(self.due_at), "raised_at": iso(self.raised_at),
            "cleared_at": iso(self.cleared_at), "acknowledged_at": iso(self.acknowledged_at),
            "ack_note": self.ack_note, "details": self.details,
        }


def dossier_code(case_key: str | None, reception_code: str | None = None) -> str:
    """The code staff know a case by: its reception code, else its record's source id.

    ``rc:H01-1`` -> ``H01-1``; ``src:household_business:HKD-7`` -> ``HKD-7``.
    """
    if reception_code:
        return reception_code
    if not case_key:
        return ""
    if case_key.startswith("src:"):
        return case_key.split(":", 2)[-1]
    return case_key.removeprefix("rc:")


def _details(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _subject_records(conn: Connection, subjects: Sequence[str]) -> dict[str, Any]:
    """The record that best describes each subject whose case is gone (one query per kind of key)."""
    d = dossiers.c
    found: dict[str, Any] = {}
    cols = (d.source, d.source_id, d.reception_code, d.procedure_code, d.procedure_name, d.applicant_name,
            d.submitted_at, d.received_at, d.due_at)
    own = [s.split(":", 2) for s in subjects if s.startswith("src:") and s.count(":") >= 2]
    for _, source, sid in own:
        row = conn.execute(select(*cols).where(d.source == source, d.source_id == sid)).first()
        if row is not None:
            found[f"src:{source}:{sid}"] = row
    for subject in (s for s in subjects if s.startswith("rc:")):
        code = subject[3:]
        row = conn.execute(select(*cols).where(d.reception_code == code)
                           .order_by(d.source != RECEPTION_SOURCE, d.source, d.source_id).limit(1)).first()
        if row is not None:
            found[subject] = row
    return found


def _views(conn: Connection, where: Sequence[Any], limit: int | None = None) -> list[FlagView]:
    f, c = flags.c, cases.c
    q = (select(f.id, f.kind, f.state, f.subject_key, f.raised_at, f.cleared_at, f.acknowledged_at,
                f.ack_note, f.details, c.reception_code, c.procedure_code, c.procedure_name,
                c.applicant_name, c.submitted_at, c.received_at, c.due_at, c.id.label("case_id"))
         .select_from(flags.outerjoin(cases, (c.id == f.case_id) & (c.case_key == f.subject_key)))
         .where(*where).order_by(f.raised_at.desc(), f.id.desc()))
    if limit:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    sources: dict[int, list[str]] = {}
    case_ids = sorted({r.case_id for r in rows if r.case_id is not None})  # a case may have several flags
    for i in range(0, len(case_ids), 500):
        for cid, src in conn.execute(select(case_links.c.case_id, dossiers.c.source).distinct()
                                     .join_from(case_links, dossiers, dossiers.c.id == case_links.c.dossier_id)
                                     .where(case_links.c.case_id.in_(case_ids[i:i + 500]))):
            sources.setdefault(cid, []).append(src)
    for found in sources.values():  # the Centre's own register first, as in the report
        found.sort(key=lambda s: (s != RECEPTION_SOURCE, s))
    gone = _subject_records(conn, [r.subject_key for r in rows if r.case_id is None])
    views = []
    for r in rows:
        if r.case_id is not None:
            views.append(FlagView(
                id=r.id, kind=r.kind, state=r.state, dossier_code=dossier_code(r.subject_key, r.reception_code),
                procedure_code=r.procedure_code, procedure_name=r.procedure_name,
                applicant=mask_name(r.applicant_name), sources=tuple(sources.get(r.case_id, [])),
                received_at=r.received_at, due_at=r.due_at, raised_at=r.raised_at, cleared_at=r.cleared_at,
                acknowledged_at=r.acknowledged_at, ack_note=r.ack_note, details=_details(r.details),
                subject=r.subject_key, filed_at=r.submitted_at))
            continue
        d = gone.get(r.subject_key)
        views.append(FlagView(
            id=r.id, kind=r.kind, state=r.state, dossier_code=dossier_code(r.subject_key, None),
            procedure_code=d.procedure_code if d else None, procedure_name=d.procedure_name if d else None,
            applicant=mask_name(d.applicant_name if d else None), sources=(d.source,) if d else (),
            received_at=d.received_at if d else None, due_at=d.due_at if d else None, raised_at=r.raised_at,
            cleared_at=r.cleared_at, acknowledged_at=r.acknowledged_at, ack_note=r.ack_note,
            details=_details(r.details), subject=r.subject_key, filed_at=d.submitted_at if d else None))
    return views


def list_flags(conn: Connection, *, kind: str | None = None, include_closed: bool = False,
               limit: int | None = None) -> list[FlagView]:
    """Open flags (or all, with ``include_closed``), newest first."""
    if kind is not None and kind not in FLAG_KINDS:
        raise UsageError(f"unknown flag kind {kind!r}; kinds: {', '.join(FLAG_KINDS)}")
    where: list[Any] = []
    if kind:
        where.append(flags.c.kind == kind)
    if not include_closed:
        where.append(flags.c.state == "open")
    return _views(conn, where, limit)


def flags_raised_since(conn: Connection, since: dt.datetime) -> list[FlagView]:
    """Flags raised (or raised again) after ``since`` and still open: the daily digest's new flags."""
    return _views(conn, [flags.c.state == "open", flags.c.raised_at > since])


def open_flag_counts(conn: Connection) -> dict[str, int]:
    """Open flags per kind, every kind present (zero included), for the report and ``status``."""
    counts = dict.fromkeys(FLAG_KINDS, 0)
    for kind, n in conn.execute(select(flags.c.kind, func.count()).where(flags.c.state == "open")
                                .group_by(flags.c.kind)):
        counts[kind] = int(n)
    return counts


def acknowledge(engine: Engine, flag_id: int, note: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """Record that an operator looked at the flag; the flag stays until its condition clears.
    Returns when it cleared, if it had by then: the note is kept all the same (what was done
    belongs to its history), and the operator is told it needed nothing more."""
    if not note.strip():
        raise UsageError("an acknowledgement needs a note saying what was done")
    now = now or dt.datetime.now(dt.UTC)
    with write_transaction(engine) as conn:
        found = conn.execute(select(flags.c.state, flags.c.cleared_at).where(flags.c.id == flag_id)).first()
        if found is None:
            raise UsageError(f"no flag with id {flag_id}")
        conn.execute(flags.update().where(flags.c.id == flag_id).values(acknowledged_at=now, ack_note=note))
        conn.execute(flag_events.insert().values(flag_id=flag_id, event="acknowledged", at=now, note=note))
    cleared: dt.datetime | None = found.cleared_at if found.state == "cleared" else None
    return cleared


def stored_details_text(stored: str) -> str:
    """A flag's stored details (``flags.details``: a JSON object, or free text from before)
    as ``details_text`` words them; text that is not a JSON object is shown as it is."""
    try:
        details = json.loads(stored)
    except ValueError:
        return stored
    return details_text(details) if isinstance(details, dict) else stored


def details_text(details: dict[str, Any]) -> str:
    """A flag's details in Vietnamese, for people (the JSON keys stay for scripts)."""
    parts = []
    for key, value in details.items():
        if key == "issue":
            parts.append(", ".join(ISSUE_LABELS.get(i, i) for i in str(value).split(", ")))
        elif key == "reception_code":
            parts.append(f"mã tiếp nhận {value}")
        else:
            parts.append(f"{short_source_label(key)}: {STATUS_LABELS.get(str(value), value)}")
    return "; ".join(parts)


def summary_lines(conn: Connection, examples: int = 3) -> list[str]:
    """What reconciliation found, for the demo and operators: cases, records, flags by kind,
    with up to ``examples`` flags of each kind (none for 0)."""
    c = cases.c
    total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    linked = conn.execute(select(func.count()).select_from(cases).where(c.record_count > 1)).scalar_one()
    inferred = conn.execute(select(func.count()).select_from(cases).where(c.inferred)).scalar_one()
    records = count_records(conn)
    lines = [
        f"{sum(records.values()):,} records ({', '.join(f'{k} {v:,}' for k, v in sorted(records.items()))}) "
        f"-> {total:,} cases; {linked:,} seen in several systems, {inferred:,} linked by inference",
    ]
    # conditions that become flags once they have stood for a day (not yet flagged)
    waiting = {
        "unknown_reception_code": c.unknown_code_since,
        "status_mismatch": c.mismatch_since,
    }
    pending = []
    for kind, since in waiting.items():
        n = conn.execute(
            select(func.count()).select_from(cases)
            .where(since.is_not(None), ~select(flags.c.id).where(
                flags.c.kind == kind, flags.c.subject_key == c.case_key, flags.c.state == "open").exists())
        ).scalar_one()
        if n:
            pending.append(f"{n:,} {kind}")
    if pending:
        lines.append(f"not flagged yet (they must stand a day first): {', '.join(pending)}")
    for kind, n in open_flag_counts(conn).items():
        lines.append(f"open {kind:<24} {n:>6,}  ({KIND_LABELS[kind]})")
        for v in list_flags(conn, kind=kind, limit=examples) if n and examples > 0 else []:
            src = ",".join(v.sources)
            lines.append(f"    e.g. {v.dossier_code} | {v.procedure_name or v.procedure_code} | "
                         f"{v.applicant} | {src}" + (f" | {details_text(v.details)}" if v.details else ""))
    return lines
