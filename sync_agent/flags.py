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
from sync_agent.privacy import mask_name
from sync_agent.reconcile import FLAG_KINDS
from sync_agent.store.engine import write_transaction
from sync_agent.store.records import count_records
from sync_agent.store.tables import cases, dossiers, flag_events, flags

#: Vietnamese labels for what Centre staff read
KIND_LABELS = {
    "bypassed_reception": "Hồ sơ không qua bộ phận tiếp nhận",
    "unknown_reception_code": "Mã tiếp nhận không có trên hệ thống một cửa",
    "status_mismatch": "Trạng thái không khớp giữa các hệ thống",
    "data_quality": "Dữ liệu chưa hợp lệ",
}


@dataclass(frozen=True)
class FlagView:
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

    def as_json(self) -> dict[str, Any]:
        def iso(v: dt.datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {
            "id": self.id, "kind": self.kind, "state": self.state, "dossier_code": self.dossier_code,
            "procedure_code": self.procedure_code, "procedure_name": self.procedure_name,
            "applicant": self.applicant, "sources": list(self.sources), "received_at": iso(self.received_at),
            "due_at": iso(self.due_at), "raised_at": iso(self.raised_at), "cleared_at": iso(self.cleared_at),
            "acknowledged_at": iso(self.acknowledged_at), "ack_note": self.ack_note, "details": self.details,
        }


def _code(case_key: str, reception_code: str | None) -> str:
    if reception_code:
        return reception_code
    return case_key.split(":", 2)[-1] if case_key.startswith("src:") else case_key


def _views(conn: Connection, where: Sequence[Any], limit: int | None = None) -> list[FlagView]:
    f, c = flags.c, cases.c
    q = (select(f.id, f.kind, f.state, f.subject_key, f.raised_at, f.cleared_at, f.acknowledged_at,
                f.ack_note, f.details, c.reception_code, c.procedure_code, c.procedure_name,
                c.applicant_name, c.received_at, c.due_at, c.id.label("case_id"))
         .select_from(flags.outerjoin(cases, c.id == f.case_id))
         .where(*where).order_by(f.raised_at.desc(), f.id.desc()))
    if limit:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    sources: dict[int, list[str]] = {}
    case_ids = [r.case_id for r in rows if r.case_id is not None]
    for i in range(0, len(case_ids), 500):
        for cid, src in conn.execute(select(dossiers.c.case_id, dossiers.c.source).distinct()
                                     .where(dossiers.c.case_id.in_(case_ids[i:i + 500]))):
            sources.setdefault(cid, []).append(src)
    return [FlagView(
        id=r.id, kind=r.kind, state=r.state, dossier_code=_code(r.subject_key, r.reception_code),
        procedure_code=r.procedure_code, procedure_name=r.procedure_name,
        applicant=mask_name(r.applicant_name), sources=tuple(sorted(sources.get(r.case_id, []))),
        received_at=r.received_at, due_at=r.due_at, raised_at=r.raised_at, cleared_at=r.cleared_at,
        acknowledged_at=r.acknowledged_at, ack_note=r.ack_note,
        details=json.loads(r.details) if r.details else {},
    ) for r in rows]


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
    return _views(conn, [flags.c.state == "open", flags.c.raised_at > since])


def open_flag_counts(conn: Connection) -> dict[str, int]:
    counts = dict.fromkeys(FLAG_KINDS, 0)
    for kind, n in conn.execute(select(flags.c.kind, func.count()).where(flags.c.state == "open")
                                .group_by(flags.c.kind)):
        counts[kind] = int(n)
    return counts


def acknowledge(engine: Engine, flag_id: int, note: str, now: dt.datetime | None = None) -> None:
    """Record that an operator looked at the flag; the flag stays until its condition clears."""
    if not note.strip():
        raise UsageError("an acknowledgement needs a note saying what was done")
    now = now or dt.datetime.now(dt.UTC)
    with write_transaction(engine) as conn:
        found = conn.execute(select(flags.c.id).where(flags.c.id == flag_id)).scalar()
        if found is None:
            raise UsageError(f"no flag with id {flag_id}")
        conn.execute(flags.update().where(flags.c.id == flag_id).values(acknowledged_at=now, ack_note=note))
        conn.execute(flag_events.insert().values(flag_id=flag_id, event="acknowledged", at=now, note=note))


def summary_lines(conn: Connection, examples: int = 3) -> list[str]:
    """What reconciliation found, for the demo and operators: cases, records, flags by kind."""
    total = conn.execute(select(func.count()).select_from(cases)).scalar_one()
    linked = conn.execute(select(func.count()).select_from(cases).where(cases.c.record_count > 1)).scalar_one()
    inferred = conn.execute(select(func.count()).select_from(cases).where(cases.c.inferred)).scalar_one()
    records = count_records(conn)
    lines = [
        f"{sum(records.values()):,} records ({', '.join(f'{k} {v:,}' for k, v in sorted(records.items()))}) "
        f"-> {total:,} cases; {linked:,} seen in several systems, {inferred:,} linked by inference",
    ]
    for kind, n in open_flag_counts(conn).items():
        lines.append(f"open {kind:<24} {n:>6,}  ({KIND_LABELS[kind]})")
        for v in list_flags(conn, kind=kind, limit=examples) if n else []:
            src = ",".join(v.sources)
            lines.append(f"    e.g. {v.dossier_code} | {v.procedure_name or v.procedure_code} | "
                         f"{v.applicant} | {src}" + (f" | {v.details}" if v.details else ""))
    return lines
