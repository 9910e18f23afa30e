"""Writing one page of normalised records, idempotently, in the caller's transaction.

The sync loop commits a page's records, its quarantined records, the run's counters and the
cursor in one transaction; everything here takes that open connection and never commits.
Reading a record twice, or an older version after a newer one, changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sync_agent.model import DossierRecord, QuarantinedRecord
from sync_agent.store.tables import dossiers, quarantine

# SQLite's default limit of bound variables per statement is 32766; stay well below it.
_IN_CHUNK = 900

# Columns that carry the record's content (everything but bookkeeping).
_CONTENT_COLUMNS = (
    "reception_code", "procedure_code", "procedure_name", "field_code", "field_name",
    "applicant_name", "applicant_key", "channel", "status", "submitted_at", "received_at",
    "due_at", "completed_at", "rejected_at", "withdrawn_at", "received_on", "due_on", "ended_on",
    "digitised", "data_reused", "fee_required", "paid_online", "source_updated_at", "raw_payload",
)


@dataclass(frozen=True, slots=True)
class PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0


def dialect_insert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ``ON CONFLICT`` on both supported databases."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _local_date(value: dt.datetime | None, tz: ZoneInfo) -> dt.date | None:
    return None if value is None else value.astimezone(tz).date()


def record_row(rec: DossierRecord, tz: ZoneInfo) -> dict[str, Any]:
    """The content columns of a record, with its local calendar dates and content hash."""
    row: dict[str, Any] = {
        "source": rec.source,
        "source_id": rec.source_id,
        "reception_code": rec.reception_code or None,
        "procedure_code": rec.procedure_code,
        "procedure_name": rec.procedure_name,
        "field_code": rec.field_code,
        "field_name": rec.field_name,
        "applicant_name": rec.applicant_name,
        "applicant_key": rec.applicant_key,
        "channel": rec.channel.value,
        "status": rec.status.value,
        "submitted_at": rec.submitted_at,
        "received_at": rec.received_at,
        "due_at": rec.due_at,
        "completed_at": rec.completed_at,
        "rejected_at": rec.rejected_at,
        "withdrawn_at": rec.withdrawn_at,
        "received_on": _local_date(rec.received_at, tz),
        "due_on": _local_date(rec.due_at, tz),
        "ended_on": _local_date(rec.ended_at, tz),
        "digitised": rec.digitised,
        "data_reused": rec.data_reused,
        "fee_required": rec.fee_required,
        "paid_online": rec.paid_online,
        "source_updated_at": rec.source_updated_at,
        "raw_payload": _json(rec.raw),
    }
    digest = hashlib.sha256()
    for col in _CONTENT_COLUMNS:
        value = row[col]
        digest.update(b"\x1f" if value is None else str(
            value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value
        ).encode("utf-8"))
        digest.update(b"\x1e")
    row["content_hash"] = digest.hexdigest()
    return row


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _existing(conn: Connection, source: str, ids: Sequence[str]) -> dict[str, tuple[str, dt.datetime]]:
    found: dict[str, tuple[str, dt.datetime]] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(dossiers.c.source_id, dossiers.c.content_hash, dossiers.c.source_updated_at)
            .where(dossiers.c.source == source, dossiers.c.source_id.in_(chunk))
        )
        for sid, digest, updated in rows:
            found[sid] = (digest, updated)
    return found


def save_records(
    conn: Connection,
    source: str,
    records: Sequence[DossierRecord],
    tz: ZoneInfo,
    run_id: int | None,
    now: dt.datetime,
) -> PageCounts:
    """Upsert one page of one source's records; returns what happened to them.

    Within the page the last delivery of a source id wins; a version older (by its source's
    update time) than the stored one is ignored, so pages arriving out of order or duplicated
    never move a record backwards.
    """
    latest: dict[str, DossierRecord] = {}
    for rec in records:
        if rec.source != source:
            raise ValueError(f"record of {rec.source!r} in a page of {source!r}")
        latest[rec.source_id] = rec
    if not latest:
        return PageCounts()
    ids = list(latest)
    existing = _existing(conn, source, ids)
    to_write: list[dict[str, Any]] = []
    unchanged_ids: list[str] = []
    inserted = updated = 0
    for sid in ids:
        row = record_row(latest[sid], tz)
        prior = existing.get(sid)
        if prior is not None and (prior[0] == row["content_hash"] or row["source_updated_at"] < prior[1]):
            unchanged_ids.append(sid)
            continue
        if prior is None:
            inserted += 1
        else:
            updated += 1
        row.update(first_seen_at=now, last_seen_at=now, last_run_id=run_id, needs_reconcile=True)
        to_write.append(row)
    if to_write:
        stmt = dialect_insert(conn, dossiers)
        refreshed = {c: stmt.excluded[c] for c in (*_CONTENT_COLUMNS, "content_hash", "last_seen_at",
                                                    "last_run_id", "needs_reconcile")}
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["source", "source_id"], set_=refreshed),
            to_write,
        )
        _supersede_quarantined(conn, source, [r["source_id"] for r in to_write], now)
    for chunk in _chunks(unchanged_ids):
        conn.execute(
            update(dossiers)
            .where(dossiers.c.source == source, dossiers.c.source_id.in_(chunk))
            .values(last_seen_at=now, last_run_id=run_id)
        )
    return PageCounts(inserted=inserted, updated=updated, unchanged=len(unchanged_ids))


def _supersede_quarantined(conn: Connection, source: str, ids: Sequence[str], now: dt.datetime) -> None:
    """A valid version of a once-quarantined record arrived: the quarantine entry is history."""
    for chunk in _chunks(ids):
        conn.execute(
            update(quarantine)
            .where(quarantine.c.source == source, quarantine.c.superseded_at.is_(None),
                   quarantine.c.source_id.in_(chunk))
            .values(superseded_at=now)
        )


def save_quarantined(
    conn: Connection,
    source: str,
    items: Sequence[QuarantinedRecord],
    run_id: int | None,
    now: dt.datetime,
) -> int:
    """Keep bad records with their reason; the same payload seen again is counted, not copied."""
    if not items:
        return 0
    rows: dict[str, dict[str, Any]] = {}
    for q in items:
        payload = _json(q.raw)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        rows[digest] = {
            "source": source,
            "source_id": q.source_id,
            "reason": q.reason,
            "raw_payload": payload,
            "payload_hash": digest,
            "source_updated_at": q.source_updated_at,
            "first_seen_at": now,
            "last_seen_at": now,
            "times_seen": 1,
            "first_run_id": run_id,
            "last_run_id": run_id,
        }
    stmt = dialect_insert(conn, quarantine)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["source", "payload_hash"],
            set_={
                "last_seen_at": stmt.excluded.last_seen_at,
                "last_run_id": stmt.excluded.last_run_id,
                "times_seen": quarantine.c.times_seen + 1,
                "reason": stmt.excluded.reason,
            },
        ),
        list(rows.values()),
    )
    return len(items)


def count_records(conn: Connection) -> dict[str, int]:
    """Stored records per source."""
    rows = conn.execute(select(dossiers.c.source, func.count()).group_by(dossiers.c.source))
    return {source: int(n) for source, n in rows}


