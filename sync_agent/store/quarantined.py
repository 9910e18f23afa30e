"""Reading the quarantine: the records a source sent that could not be normalised.

They are kept, never dropped, until a later valid version of the same record supersedes them;
an operator lists them (``sync-agent quarantine``) to see what a source got wrong, and ``status``
and the report count those still held, since they are missing from every figure. A record its
source will never send again in a valid form (one with no id cannot even be superseded) is
acknowledged with a note (``quarantine ack``): still kept and still missing from the figures, it
no longer asks for a check in every report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, select, update

from sync_agent.errors import UsageError
from sync_agent.store.engine import write_transaction
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
    acknowledged_at: dt.datetime | None = None
    ack_note: str | None = None

    @property
    def held(self) -> bool:
        """Still held and nobody has looked at it: it asks for a check."""
        return self.superseded_at is None and self.acknowledged_at is None

    @property
    def state(self) -> str:
        """held | acknowledged | superseded (a later valid version settles it either way)."""
        if self.superseded_at is not None:
            return "superseded"
        return "held" if self.acknowledged_at is None else "acknowledged"

    def as_json(self, tz: dt.tzinfo) -> dict[str, Any]:
        def iso(v: dt.datetime | None) -> str | None:
            return None if v is None else v.astimezone(tz).isoformat()

        return {
            "id": self.id, "source": self.source, "source_id": self.source_id, "reason": self.reason,
            "state": self.state,
            "source_updated_at": iso(self.source_updated_at), "first_seen_at": iso(self.first_seen_at),
            "last_seen_at": iso(self.last_seen_at), "times_seen": self.times_seen,
            "first_run_id": self.first_run_id, "last_run_id": self.last_run_id,
            "superseded_at": iso(self.superseded_at),
            "acknowledged_at": iso(self.acknowledged_at), "ack_note": self.ack_note,
        }


def _view(r: Any) -> QuarantinedView:
    return QuarantinedView(
        id=r.id, source=r.source, source_id=r.source_id, reason=r.reason, source_updated_at=r.source_updated_at,
        first_seen_at=r.first_seen_at, last_seen_at=r.last_seen_at, times_seen=r.times_seen,
        first_run_id=r.first_run_id, last_run_id=r.last_run_id, superseded_at=r.superseded_at,
        raw_payload=r.raw_payload, acknowledged_at=r.acknowledged_at, ack_note=r.ack_note,
    )


def list_quarantined(conn: Connection, source: str | None = None, *,
                     include_settled: bool = False) -> Sequence[QuarantinedView]:
    """Quarantined records, the latest seen first: those still asking for a check, or all of
    them (acknowledged and superseded too)."""
    q = quarantine.c
    stmt = select(quarantine).order_by(q.last_seen_at.desc(), q.id.desc())
    if source is not None:
        stmt = stmt.where(q.source == source)
    if not include_settled:
        stmt = stmt.where(q.superseded_at.is_(None), q.acknowledged_at.is_(None))
    return [_view(r) for r in conn.execute(stmt)]


def get_quarantined(conn: Connection, item_id: int) -> QuarantinedView | None:
    r = conn.execute(select(quarantine).where(quarantine.c.id == item_id)).first()
    return None if r is None else _view(r)


@dataclass(frozen=True, slots=True)
class HeldCounts:
    """One source's records in quarantine and not superseded: a record sent in several bad
    versions is one (a version is a row); one with no id is one each."""

    #: nobody has looked at them yet
    to_check: int = 0
    #: acknowledged with a note; still missing from every figure
    acknowledged: int = 0


def held_counts(conn: Connection) -> dict[str, HeldCounts]:
    """Per source with any, its records held in quarantine. A record counts as to check while
    any of its held versions is unacknowledged (a bad version sent after the acknowledgement)."""
    q = quarantine.c
    pending = func.max(case((q.acknowledged_at.is_(None), 1), else_=0))
    per_record = (
        select(q.source, pending.label("pending"))
        .where(q.superseded_at.is_(None))
        # a record with no id is one per row: grouped by its row
        .group_by(q.source, q.source_id, case((q.source_id.is_(None), q.id), else_=None))
        .subquery()
    )
    r = per_record.c
    out: dict[str, HeldCounts] = {}
    for source, to_check, records in conn.execute(
        select(r.source, func.sum(r.pending), func.count()).group_by(r.source)
    ):
        out[source] = HeldCounts(to_check=int(to_check), acknowledged=int(records) - int(to_check))
    return out


def acknowledge_quarantined(engine: Engine, item_id: int, note: str, now: dt.datetime | None = None) -> int:
    """Record that an operator looked at quarantined record ``item_id`` and left it, with a note.

    Every held version of the same source record is acknowledged with it (one with no source
    id is only itself); returns how many versions that was. The versions stay stored; a bad
    version sent afterwards asks for a check again, and a valid one supersedes them all.
    """
    if not note.strip():
        raise UsageError("an acknowledgement needs a note saying why the record is left as it is")
    now = now or dt.datetime.now(dt.UTC)
    q = quarantine.c
    with write_transaction(engine) as conn:
        found = conn.execute(select(q.source, q.source_id, q.superseded_at).where(q.id == item_id)).first()
        if found is None:
            raise UsageError(f"no quarantined record {item_id} (see sync-agent quarantine --all)")
        if found.superseded_at is not None:
            raise UsageError(f"quarantined record {item_id} was superseded by a valid version: nothing to acknowledge")
        same = (q.id == item_id if found.source_id is None
                else and_(q.source == found.source, q.source_id == found.source_id))
        done = conn.execute(
            update(quarantine).where(same, q.superseded_at.is_(None)).values(acknowledged_at=now, ack_note=note)
        )
        return int(done.rowcount)
