"""Writing one page of normalised records, idempotently, in the caller's transaction.

The sync loop commits a page's records, its quarantined records, the run's counters and the
cursor in one transaction; everything here takes that open connection and never commits.
Reading a record twice, or an older version after a newer one, changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Boolean, Connection, Date, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError

from sync_agent.model import DossierRecord, QuarantinedRecord
from sync_agent.payload import payload_json
from sync_agent.privacy import clean_text_fields
from sync_agent.store.tables import dossiers, quarantine, reconcile_queue
from sync_agent.store.types import UTCDateTime

log = structlog.get_logger("sync_agent.store")

_UTC = dt.UTC

# SQLite's default limit of bound variables per statement is 32766; stay well below it.
_IN_CHUNK = 900
_T = TypeVar("_T")

# Columns that carry the record's content (everything but bookkeeping).
_CONTENT_COLUMNS = (
    "reception_code", "procedure_code", "procedure_name", "field_code", "field_name",
    "applicant_name", "applicant_key", "channel", "status", "submitted_at", "received_at",
    "due_at", "completed_at", "rejected_at", "withdrawn_at", "received_on", "due_on", "ended_on",
    "digitised", "data_reused", "fee_required", "paid_online", "source_updated_at", "raw_payload",
)


_content_values = operator.itemgetter(*_CONTENT_COLUMNS)

#: the text columns a record fills, with the longest value each takes (``None``: unbounded).
#: PostgreSQL refuses a longer value, a NUL character, and (as every UTF-8 database) a lone
#: surrogate; SQLite would keep all three, but both stores keep the same records.
_TEXT_COLUMNS = tuple(
    (name, getattr(dossiers.c[name].type, "length", None))
    for name in ("source_id", *_CONTENT_COLUMNS) if dossiers.c[name].type.python_type is str
)
#: those a connector's values fill (a channel's and a status's come from the model's own codes)
_BOUNDED = tuple((name, limit) for name, limit in _TEXT_COLUMNS
                 if limit is not None and name not in ("channel", "status"))


class UnstorableRecord(ValueError):
    """A record holding a value no store can keep as it is: quarantined with this reason."""


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


def _local_date(value: dt.datetime | None, tz: ZoneInfo) -> dt.date | None:
    return None if value is None else value.astimezone(tz).date()


def record_row(rec: DossierRecord, tz: ZoneInfo) -> dict[str, Any]:
    """The content columns of a record, with its local calendar dates and content hash."""
    return _row_and_texts(rec, tz)[0]


#: a record's instants. "0001-01-01 00:00" in the ward's time (.NET's "no date", as some systems
#: send it) is in year 0 in UTC, which no date type holds; "9999-12-31 23:00" in UTC is in year
#: 10000 in the ward's time, where the report would show it. The agent keeps instants from the
#: second day of the calendar to the day before its last, in UTC: any time zone's date is then in
#: years 1 to 9999.
_INSTANTS = ("submitted_at", "received_at", "due_at", "completed_at", "rejected_at", "withdrawn_at",
             "source_updated_at")
_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)  # not included


def _out_of_range(rec: DossierRecord) -> str | None:
    """The first instant of ``rec`` outside the range the agent keeps, said for the quarantine."""
    for name in _INSTANTS:
        value = getattr(rec, name)
        if value is not None and storable_instant(value) is None:
            # the time as the source wrote it (in 0001 the zone's offset was its local mean time)
            return (f"{name} is {value.replace(tzinfo=None).isoformat(sep=' ')}, outside the dates the agent "
                    "keeps (2 January of year 1 to 30 December 9999, in UTC)")
    return None


def storable_instant(value: dt.datetime | None) -> dt.datetime | None:
    """``value``, or ``None`` when it lies outside the range the agent keeps (see ``_INSTANTS``)."""
    if value is None:
        return None
    try:
        utc = value.astimezone(_UTC)
    except OverflowError:
        return None
    return value if _EARLIEST <= utc < _LATEST else None


def _row_and_texts(rec: DossierRecord, tz: ZoneInfo) -> tuple[dict[str, Any], list[str]]:
    """``record_row``, and the text of each content column as hashed, which the upsert reuses
    rather than formatting every instant twice. Raises ``UnstorableRecord`` for a record holding
    a value no store can keep (see ``_TEXT_COLUMNS``, ``_INSTANTS``)."""
    procedure_name, field_name, applicant_name = clean_text_fields(rec.procedure_name, rec.field_name,
                                                                   rec.applicant_name)
    try:
        row: dict[str, Any] = {
            "source": rec.source,
            "source_id": rec.source_id,
            "reception_code": rec.reception_code or None,
            "procedure_code": rec.procedure_code,
            "procedure_name": procedure_name,
            "field_code": rec.field_code,
            "field_name": field_name,
            "applicant_name": applicant_name,
            "applicant_key": rec.applicant_key,
            "channel": rec.channel._value_,  # ``.value`` is a property, several calls deep
            "status": rec.status._value_,
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
            "raw_payload": payload_json(rec.raw),
        }
        texts = _content_texts(row)
    except OverflowError:  # an instant with no UTC or local date in years 1-9999
        raise UnstorableRecord(_out_of_range(rec) or "an instant outside years 1 to 9999") from None
    # The content hash: SHA-256 over each content column's text followed by ``\x1e``, the same
    # bytes as hashing column by column (stored hashes stay valid across upgrades), hashed once.
    try:
        data = ("\x1e".join(texts) + "\x1e").encode("utf-8")
        key = rec.source_id.encode("utf-8")  # the natural key is no content column
    except UnicodeEncodeError:
        raise UnstorableRecord(_unstorable(row)) from None
    # a NUL byte in UTF-8 is a NUL character, searched for in bytes (a text with accents is
    # searched several times slower); the raw payload's text holds one as JSON's escape, so one
    # found here is in a column's value
    if b"\x00" in data or b"\x00" in key or _over_length(row):
        raise UnstorableRecord(_unstorable(row))
    if b"0001-01-01" in data or b"9999-12-31" in data:  # rare: only then is each instant looked at
        out_of_range = _out_of_range(rec)
        if out_of_range is not None:
            raise UnstorableRecord(out_of_range)
    row["content_hash"] = hashlib.sha256(data).hexdigest()
    return row, texts


def _over_length(row: dict[str, Any]) -> bool:
    for name, limit in _BOUNDED:  # a plain loop: twice as fast as any() over a generator
        value = row[name]
        if value is not None and len(value) > limit:
            return True
    return False


def _unstorable(row: dict[str, Any]) -> str:
    """Why ``row`` cannot be stored: the first text column at fault, named as the store names it."""
    for name, limit in _TEXT_COLUMNS:
        value = row[name]
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return f"{name} holds a NUL character (U+0000), which the store cannot keep"
        if limit is not None and len(value) > limit:
            return f"{name} is {len(value)} characters long, longer than the {limit} the store keeps"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            half = f"\\u{ord(value[exc.start]):04x}"
            return f"{name} holds {half}, which is not Unicode text (half a character, or a byte that is not UTF-8)"
    raise AssertionError("no column at fault")  # pragma: no cover: called only when one is


def _content_texts(row: dict[str, Any]) -> list[str]:
    """Each content column as hashed: text as it is, ``\\x1f`` for none, instants in UTC ISO.

    ``_hash_text`` for every value, with the usual classes dispatched here (half the time).
    """
    out: list[str] = []
    append, datetime, date, utc = out.append, dt.datetime, dt.date, _UTC
    for value in _content_values(row):
        kind = value.__class__
        if kind is str:
            append(value)
        elif value is None:
            append("\x1f")
        elif kind is datetime:
            append(value.astimezone(utc).isoformat())
        elif kind is bool:
            append("True" if value else "False")
        elif kind is date:
            append(value.isoformat())
        else:
            append(_hash_text(value))
    return out


def _hash_text(value: Any) -> str:
    return value.astimezone(_UTC).isoformat() if isinstance(value, dt.datetime) else str(value)


def chunks(items: Sequence[_T], size: int = _IN_CHUNK) -> Iterable[Sequence[_T]]:
    """``items`` in slices small enough for one ``IN (...)`` list on every driver."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _storable_key(source_id: str) -> bool:
    """Whether ``source_id`` can be looked up in the store (no database refuses it)."""
    return len(source_id) <= _ID_LIMIT and _UNSTORABLE_CHARACTER.search(source_id) is None


def _older_than_stored(rec: DossierRecord, stored: tuple[str, dt.datetime] | None) -> bool:
    try:
        return stored is not None and rec.source_updated_at < stored[1]
    except OverflowError:  # an update time in year 1, compared in UTC
        return True


def _existing(conn: Connection, source: str, ids: Sequence[str]) -> dict[str, tuple[str, dt.datetime]]:
    found: dict[str, tuple[str, dt.datetime]] = {}
    for chunk in chunks(ids):
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
    never move a record backwards. A record holding a value no store can keep (a NUL, half a
    character, a code longer than its column) is quarantined here, for any connector, rather
    than failing the page: on PostgreSQL one such record would fail every run from then on.
    """
    latest: dict[str, DossierRecord] = {}
    for rec in records:
        if rec.source != source:
            raise ValueError(f"record of {rec.source!r} in a page of {source!r}")
        latest[rec.source_id] = rec
    if not latest:
        return PageCounts()
    prepared: dict[str, tuple[dict[str, Any], list[str]]] = {}
    refused: dict[str, tuple[DossierRecord, str]] = {}
    for sid, rec in latest.items():
        try:
            prepared[sid] = _row_and_texts(rec, tz)
        except UnstorableRecord as exc:  # before any statement: PostgreSQL would refuse the page
            refused[sid] = (rec, str(exc))
    # a refused record whose id a store can look up may have a newer version stored already
    existing = _existing(conn, source, [*prepared, *(sid for sid in refused if _storable_key(sid))])
    unchanged_ids: list[str] = []
    unstorable: list[QuarantinedRecord] = []
    for sid, (rec, reason) in refused.items():
        if _older_than_stored(rec, existing.get(sid)):
            unchanged_ids.append(sid)  # an old version, bad or not, changes nothing
        else:
            unstorable.append(QuarantinedRecord(source=source, reason=reason, raw=rec.raw, source_id=sid,
                                                source_updated_at=rec.source_updated_at))
    quarantined = 0
    if unstorable:
        quarantined = save_quarantined(conn, source, unstorable, run_id, now)
        for q in unstorable:
            log.warning("record_quarantined", source_id=storable_text(q.source_id, _ID_LIMIT), reason=q.reason)
    to_write: list[tuple[dict[str, Any], list[str]]] = []
    inserted = updated = 0
    for sid, (row, texts) in prepared.items():
        prior = existing.get(sid)
        if prior is not None and (prior[0] == row["content_hash"] or row["source_updated_at"] < prior[1]):
            unchanged_ids.append(sid)
            continue
        if prior is None:
            inserted += 1
        else:
            updated += 1
        to_write.append((row, texts))
    if to_write:
        sighting = {"first_seen_at": now, "last_seen_at": now, "last_run_id": run_id}
        _Upsert.of(conn.dialect).execute(conn, to_write, sighting)
        written = [row["source_id"] for row, _ in to_write]
        _queue_for_reconciliation(conn, source, written)
        _supersede_quarantined(conn, source, written, now)
    for chunk in chunks(unchanged_ids):
        conn.execute(
            update(dossiers)
            .where(dossiers.c.source == source, dossiers.c.source_id.in_(chunk))
            .values(last_seen_at=now, last_run_id=run_id)
        )
    return PageCounts(inserted=inserted, updated=updated, unchanged=len(unchanged_ids), quarantined=quarantined)


#: what an upsert writes: the content columns, their hash, and the bookkeeping of this sighting
_WRITTEN = ("source", "source_id", *_CONTENT_COLUMNS, "content_hash", "first_seen_at", "last_seen_at",
            "last_run_id")
#: what a newer version overwrites (everything but the natural key and ``first_seen_at``)
_REFRESHED = (*_CONTENT_COLUMNS, "content_hash", "last_seen_at", "last_run_id")

Convert = Callable[[Any], Any]


class _Upsert:
    """The dossier upsert compiled once per database, with each column's values converted once.

    Going through ``Connection.execute`` costs tens of microseconds per row in parameter
    processing, as much as the database's own work; a sync writes every row of every page, so
    the statement is compiled here as SQLAlchemy compiles it for an executemany, each value is
    converted as SQLAlchemy's own bind processors would convert it (see ``_converter``), and
    the rows go to the driver's ``executemany`` in one call.
    """

    def __init__(self, dialect: Dialect) -> None:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        stmt = insert(dossiers)
        upsert = stmt.on_conflict_do_update(
            index_elements=["source", "source_id"], set_={c: stmt.excluded[c] for c in _REFRESHED}
        )
        compiled = upsert.compile(dialect=dialect, column_keys=list(_WRITTEN), for_executemany=True)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = tuple(compiled.positiontup or ()) if self.positional else tuple(compiled.binds)
        if sorted(names) != sorted(_WRITTEN) or compiled.escaped_bind_names:
            raise RuntimeError(f"unexpected parameters in the compiled upsert: {names}")
        self.names = names
        self.ordered = operator.itemgetter(*names)
        self.convert = {name: _converter(dossiers.c[name].type, dialect) for name in names}
        # SQLite keeps instants and days as text: taken from the hashed text when that gives the
        # same, and flags are bound as they are when the driver does as SQLAlchemy would
        self.from_text: dict[str, tuple[int, Convert]] = {}
        self.days_from_text: dict[str, tuple[int, Convert]] = {}
        self.flags: dict[str, Convert] = {}
        for i, name in enumerate(_CONTENT_COLUMNS):
            slow, column_type = self.convert[name], dossiers.c[name].type
            if slow is None:
                continue
            if isinstance(column_type, UTCDateTime) and all(
                _sqlite_text(_hash_text(p)) == slow(p) for p in _PROBE_TIMES
            ):
                self.from_text[name] = (i, slow)
            elif isinstance(column_type, Date) and all(_hash_text(p.date()) == slow(p.date()) for p in _PROBE_TIMES):
                self.days_from_text[name] = (i, slow)
            elif isinstance(column_type, Boolean) and all(slow(p) == p for p in (True, False)):
                self.flags[name] = slow

    @classmethod
    def of(cls, dialect: Dialect) -> _Upsert:
        found = _UPSERTS.get(dialect)
        if found is None:
            found = _UPSERTS[dialect] = cls(dialect)
        return found

    def parameters(self, rows: Sequence[tuple[dict[str, Any], list[str]]],
                   sighting: dict[str, Any]) -> list[Any]:
        """The driver's parameters for ``(record_row, content texts)`` pairs plus the page's
        ``sighting`` columns (the same for every row, so converted once): tuples in placeholder
        order, or dicts."""
        constants = {name: _apply(self.convert[name], value) for name, value in sighting.items()}
        inline = self.from_text.keys() | self.days_from_text.keys() | self.flags.keys()
        converted = [(name, conv) for name, conv in self.convert.items()
                     if conv is not None and name not in constants and name not in inline]
        from_text = [(name, i, slow) for name, (i, slow) in self.from_text.items()]
        days_from_text = [(name, i, slow) for name, (i, slow) in self.days_from_text.items()]
        flags = list(self.flags.items())
        datetime, date = dt.datetime, dt.date
        out: list[Any] = []
        for row, texts in rows:
            values = row.copy()
            for name, conv in converted:
                values[name] = conv(values[name])
            for name, i, slow in from_text:
                value = values[name]
                if value.__class__ is datetime and value.tzinfo is not None:
                    values[name] = _sqlite_text(texts[i])
                elif value is not None:
                    values[name] = slow(value)  # refuses a naive time, as SQLAlchemy does
            for name, i, slow in days_from_text:
                value = values[name]
                if value.__class__ is date:
                    values[name] = texts[i]
                elif value is not None:
                    values[name] = slow(value)
            for name, slow in flags:
                value = values[name]
                if value.__class__ is not bool and value is not None:
                    values[name] = slow(value)
            values.update(constants)
            out.append(self.ordered(values) if self.positional else {n: values[n] for n in self.names})
        return out

    def execute(self, conn: Connection, rows: Sequence[tuple[dict[str, Any], list[str]]],
                sighting: dict[str, Any]) -> None:
        try:
            parameters = self.parameters(rows, sighting)
        except Exception as exc:  # a value refused on the way in, raised as Connection.execute does
            name = f"{type(exc).__module__}.{type(exc).__name__}"
            raise StatementError(f"({name}) {exc}", self.sql, None, exc) from exc
        conn.exec_driver_sql(self.sql, parameters)


_UPSERTS: weakref.WeakKeyDictionary[Dialect, _Upsert] = weakref.WeakKeyDictionary()


def _apply(conv: Convert | None, value: Any) -> Any:
    return value if conv is None else conv(value)


def _sqlite_text(utc_iso: str) -> str:
    """SQLAlchemy's SQLite text of an instant (naive UTC, always with microseconds), from its
    aware UTC ``isoformat()``: ``2026-01-20T01:30:00+00:00`` → ``2026-01-20 01:30:00.000000``."""
    fraction = utc_iso[19:26] if utc_iso[19] == "." else ".000000"
    return f"{utc_iso[:10]} {utc_iso[11:19]}{fraction}"


def _converter(column_type: Any, dialect: Dialect) -> Convert | None:
    """How SQLAlchemy converts a value of ``column_type`` for ``dialect``, made cheap.

    ``UTCDateTime``, ``Date`` and ``Boolean`` are the costly ones (a chain of Python calls, a
    ``%`` format per value). Their fast forms are used only if they give SQLAlchemy's own
    result on probe values; any value of an unexpected kind (a naive datetime, a subclass)
    still goes through SQLAlchemy's processor, which accepts or refuses it exactly as before.
    """
    slow: Convert | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    if slow is None:
        return None
    fast: Convert
    probes: tuple[Any, ...]
    if isinstance(column_type, UTCDateTime):
        impl = column_type.impl_instance.dialect_impl(dialect).bind_processor(dialect)
        fast = _utc_converter(slow, impl is not None)
        probes = _PROBE_TIMES
    elif isinstance(column_type, Date):
        fast = _exact_converter(slow, dt.date, dt.date.isoformat)
        probes = tuple(t.date() for t in _PROBE_TIMES)
    elif isinstance(column_type, Boolean):
        # both drivers bind a bool as SQLAlchemy's processor would (SQLite: as the integer 1/0)
        fast = _exact_converter(slow, bool, lambda value: value)
        probes = (True, False)
    else:
        return slow
    return fast if all(fast(p) == slow(p) for p in (*probes, None)) else slow


_PROBE_TIMES = tuple(
    dt.datetime(*parts, tzinfo=tz)  # type: ignore[misc]
    for parts in ((2026, 1, 20, 8, 30), (999, 1, 2, 3, 4, 5, 6), (2026, 12, 31, 23, 59, 59, 999999),
                  (2026, 3, 29, 2, 30))
    for tz in (_UTC, ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("Europe/Paris"),
               dt.timezone(dt.timedelta(hours=-3, minutes=-30)))
)


def _utc_converter(slow: Convert, as_text: bool) -> Convert:
    """Aware → naive UTC (``UTCDateTime``), then SQLite's text form when the dialect uses one."""
    datetime, utc = dt.datetime, _UTC

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if value.__class__ is not datetime or value.tzinfo is None:
            return slow(value)
        if as_text:
            return _sqlite_text(value.astimezone(utc).isoformat())
        return value.astimezone(utc).replace(tzinfo=None)

    return convert


def _exact_converter(slow: Convert, kind: type, fast: Convert) -> Convert:
    """``fast`` for values of exactly ``kind``, ``slow`` for anything else but ``None``."""

    def convert(value: Any) -> Any:
        if value is None:
            return None
        return fast(value) if value.__class__ is kind else slow(value)

    return convert


_ID_LIMIT: int = getattr(quarantine.c.source_id.type, "length", 128)
#: what a store cannot keep in a text: a NUL, a lone surrogate
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str | None, limit: int | None) -> str | None:
    """``text`` as a store can keep it (a quarantine's reason, a run's error): a NUL or a lone
    surrogate written as Python writes it (``\\x00``, ``\\ud800``), and cut to ``limit`` characters."""
    if text is None:
        return None
    text = _UNSTORABLE_CHARACTER.sub(lambda m: ascii(m.group())[1:-1], text)
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"


def _queue_for_reconciliation(conn: Connection, source: str, ids: Sequence[str]) -> None:
    """Put the written records in ``reconcile_queue`` (see ``sync_agent.reconcile``).

    An upsert that rewrites a row already queued, rather than skipping it: on PostgreSQL the row
    lock makes a reconciliation claiming the queue meanwhile wait for this page's commit, so it
    reads the version written here.
    """
    for chunk in chunks(ids):
        stmt = dialect_insert(conn, reconcile_queue).from_select(
            ["dossier_id"], select(dossiers.c.id).where(dossiers.c.source == source, dossiers.c.source_id.in_(chunk)))
        conn.execute(stmt.on_conflict_do_update(index_elements=["dossier_id"],
                                                set_={"dossier_id": stmt.excluded.dossier_id}))


def _supersede_quarantined(conn: Connection, source: str, ids: Sequence[str], now: dt.datetime) -> None:
    """A valid version of a once-quarantined record arrived: the quarantine entry is history."""
    pending = conn.execute(
        select(quarantine.c.id)
        .where(quarantine.c.source == source, quarantine.c.superseded_at.is_(None))
        .limit(1)
    ).first()
    if pending is None:  # nothing of this source is in quarantine: no entry to look up per record
        return
    for chunk in chunks(ids):
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
    """Keep bad records with their reason; the same payload seen again is counted, not copied.

    Returns how many of them this run had not met before: a read may meet one bad record twice
    (it re-reads the end of its window to be sure), and the run's count is of records, as its
    ``times_seen`` is of runs."""
    if not items:
        return 0
    rows: dict[str, dict[str, Any]] = {}
    for q in items:
        payload = payload_json(q.raw)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        rows[digest] = {
            "source": source,
            "source_id": storable_text(q.source_id, _ID_LIMIT),
            "reason": storable_text(q.reason, None),
            "raw_payload": payload,
            "payload_hash": digest,
            "source_updated_at": storable_instant(q.source_updated_at),  # none outside the range kept
            "first_seen_at": now,
            "last_seen_at": now,
            "times_seen": 1,
            "first_run_id": run_id,
            "last_run_id": run_id,
        }
    met = 0
    if run_id is not None:
        met = int(conn.execute(
            select(func.count()).select_from(quarantine).where(
                quarantine.c.source == source, quarantine.c.payload_hash.in_(list(rows)),
                quarantine.c.last_run_id == run_id)
        ).scalar_one())
    stmt = dialect_insert(conn, quarantine)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["source", "payload_hash"],
            set_={
                "last_seen_at": stmt.excluded.last_seen_at,
                "last_run_id": stmt.excluded.last_run_id,
                "times_seen": case((quarantine.c.last_run_id == stmt.excluded.last_run_id, quarantine.c.times_seen),
                                   else_=quarantine.c.times_seen + 1),
                "reason": stmt.excluded.reason,
            },
        ),
        list(rows.values()),
    )
    return len(rows) - met


def count_records(conn: Connection) -> dict[str, int]:
    """Stored records per source."""
    rows = conn.execute(select(dossiers.c.source, func.count()).group_by(dossiers.c.source))
    return {source: int(n) for source, n in rows}


