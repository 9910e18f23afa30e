"""Reading the quarantine: the records a source sent that could not be normalised.

They are kept, never dropped, until a later valid version of the same record supersedes them;
an operator lists them (``sync-agent quarantine``) to see what a source got wrong, and ``status``
and the report count those still held, since they are missing from every figure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, distinct, func, select

from sync_agent.store.tables import quarantine


@dataclass(frozen=True)
class QuarantinedView:
    """One quarantined record (its payload is stored with ID numbers already replaced)."""

    id: int
    source: str
    source_id: str | None
    reason: str
    source_updated_at: dt.datetime | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    times_seen: int
    first_run_id: int | None
    last_run_id: int | None
    superseded_at: dt.datetime | None
    raw_payload: str

    @property
    def held(self) -> bool:
        return self.superseded_at is None

    def as_json(self, tz: dt.tzinfo) -> dict[str, Any]:
        def iso(v: dt.datetime | None) -> str | None:
            return None if v is None else v.astimezone(tz).isoformat()

        return {
            "id": self.id, "source": self.source, "source_id": self.source_id, "reason": self.reason,
            "state": "held" if self.held else "superseded",
            "source_updated_at": iso(self.source_updated_at), "first_seen_at": iso(self.first_seen_at),
            "last_seen_at": iso(self.last_seen_at), "times_seen": self.times_seen,
            "first_run_id": self.first_run_id, "last_run_id": self.last_run_id,
            "superseded_at": iso(self.superseded_at),
        }


def _view(r: Any) -> QuarantinedView:
    return QuarantinedView(
        id=r.id, source=r.source, source_id=r.source_id, reason=r.reason, source_updated_at=r.source_updated_at,
        first_seen_at=r.first_seen_at, last_seen_at=r.last_seen_at, times_seen=r.times_seen,
        first_run_id=r.first_run_id, last_run_id=r.last_run_id, superseded_at=r.superseded_at,
        raw_payload=r.raw_payload,
    )


def list_quarantined(conn: Connection, source: str | None = None, *,
                     include_superseded: bool = False) -> Sequence[QuarantinedView]:
    """Quarantined records, the latest seen first: those still held, or all of them."""
    q = quarantine.c
    stmt = select(quarantine).order_by(q.last_seen_at.desc(), q.id.desc())
    if source is not None:
        stmt = stmt.where(q.source == source)
    if not include_superseded:
        stmt = stmt.where(q.superseded_at.is_(None))
    return [_view(r) for r in conn.execute(stmt)]


def get_quarantined(conn: Connection, item_id: int) -> QuarantinedView | None:
    r = conn.execute(select(quarantine).where(quarantine.c.id == item_id)).first()
    return None if r is None else _view(r)


def held_counts(conn: Connection) -> dict[str, int]:
    """Per source, the records quarantined and not superseded by a valid version: a record sent
    in several bad versions is one (a version is a row); one with no id is one each."""
    q = quarantine.c
    no_id = func.sum(case((q.source_id.is_(None), 1), else_=0))
    return {source: int(ids) + int(anonymous or 0) for source, ids, anonymous in conn.execute(
        select(q.source, func.count(distinct(q.source_id)), no_id)
        .where(q.superseded_at.is_(None)).group_by(q.source))}
