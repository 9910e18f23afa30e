"""Per-source cursors and the record of every sync run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, desc, func, select, update

from sync_agent.store.records import PageCounts, dialect_insert, storable_text
from sync_agent.store.tables import sync_cursors, sync_runs

RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
INTERRUPTED = "interrupted"
#: the error of a run interrupted because the agent was asked to stop (not a crash)
STOPPED_ON_REQUEST = "stopped on request at a page boundary"
#: the error of a run whose end was never recorded: its process ended (a crash, a kill) or could
#: not write the end (a full disk, a store refusing writes); found by the next run or ``status``
STOPPED_WITH_PROCESS = ("its end was never recorded: the process stopped (a crash or a kill) or could not "
                        "write it (a full disk); committed pages kept")


@dataclass(frozen=True)
class RunRow:
    id: int
    source: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    pages: int
    fetched: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    error: str | None
    cursor_before: dt.datetime | None
    cursor_after: dt.datetime | None

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_json(self, tz: dt.tzinfo | None = None) -> dict[str, Any]:
        """The run for ``runs --format json``; instants in ``tz`` (the ward's) when given."""
        def iso(v: dt.datetime | None) -> str | None:
            return None if v is None else (v.astimezone(tz) if tz else v).isoformat()

        return {
            "id": self.id, "source": self.source, "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at), "duration_seconds": self.duration,
            "status": self.status, "pages": self.pages, "fetched": self.fetched,
            "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
            "quarantined": self.quarantined, "error": self.error,
            "cursor_before": iso(self.cursor_before), "cursor_after": iso(self.cursor_after),
        }


def get_cursor(conn: Connection, source: str) -> dt.datetime | None:
    return conn.execute(select(sync_cursors.c.cursor).where(sync_cursors.c.source == source)).scalar()


def advance_cursor(conn: Connection, source: str, value: dt.datetime, now: dt.datetime) -> None:
    """Move the cursor forward to ``value``; never backwards (a re-read page is older)."""
    current = get_cursor(conn, source)
    if current is not None and current >= value:
        return
    stmt = dialect_insert(conn, sync_cursors).values(source=source, cursor=value, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["source"],
                                            set_={"cursor": value, "updated_at": now}))


def start_run(conn: Connection, source: str, now: dt.datetime, cursor_before: dt.datetime | None,
              window_start: dt.datetime | None, window_end: dt.datetime) -> int:
    result = conn.execute(sync_runs.insert().values(
        source=source, started_at=now, status=RUNNING, cursor_before=cursor_before,
        window_start=window_start, window_end=window_end,
    ))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def add_page(conn: Connection, run_id: int, fetched: int, counts: PageCounts) -> None:
    """Add one committed page's numbers to its run (same transaction as the page)."""
    c = sync_runs.c
    conn.execute(update(sync_runs).where(c.id == run_id).values(
        pages=c.pages + 1, fetched=c.fetched + fetched, inserted=c.inserted + counts.inserted,
        updated=c.updated + counts.updated, unchanged=c.unchanged + counts.unchanged,
        quarantined=c.quarantined + counts.quarantined,
    ))


#: the longest error a run keeps
ERROR_LIMIT = 2000


def finish_run(conn: Connection, run_id: int, status: str, now: dt.datetime,
               cursor_after: dt.datetime | None, error: str | None = None) -> None:
    """Record how a run ended; ``error`` is kept as a store can keep it, and cut to 2,000
    characters (it is shown by ``runs`` and ``status`` and goes into the report's email)."""
    conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(
        status=status, finished_at=now, cursor_after=cursor_after, error=storable_text(error, ERROR_LIMIT),
    ))


def interrupt_stale_runs(conn: Connection, source: str, now: dt.datetime) -> int:
    """Runs left ``running`` by a process that died; call only while holding the source's lock."""
    result = conn.execute(
        update(sync_runs)
        .where(sync_runs.c.source == source, sync_runs.c.status == RUNNING)
        .values(status=INTERRUPTED, finished_at=now, error=STOPPED_WITH_PROCESS)
    )
    return int(result.rowcount or 0)


def as_they_stand(rows: Sequence[RunRow], syncing: Callable[[str], bool],
                  still_running: Callable[[int], bool]) -> list[RunRow]:
    """``rows`` as a reader should see them: a run still ``running`` in the store whose source
    no live process is syncing (``syncing(source)`` false) was cut off with its process.

    The store says so only at that source's next sync (``interrupt_stale_runs``, under its
    lock); until then ``runs`` and ``status`` would show a sync in progress that is not. A sync
    holds its lock until its run is recorded finished, so a run read ``running`` again
    (``still_running(id)``) after its lock was found free has no process left: one that just
    finished between the first read and the lock's check is not taken for a crash.
    """
    asked: dict[str, bool] = {}

    def cut_off(r: RunRow) -> bool:
        if r.status != RUNNING:
            return False
        if r.source not in asked:
            asked[r.source] = syncing(r.source)
        return not asked[r.source] and still_running(r.id)

    return [replace(r, status=INTERRUPTED, error=STOPPED_WITH_PROCESS) if cut_off(r) else r for r in rows]


def _row(r: Any) -> RunRow:
    return RunRow(
        id=r.id, source=r.source, started_at=r.started_at, finished_at=r.finished_at,
        status=r.status, pages=r.pages, fetched=r.fetched, inserted=r.inserted, updated=r.updated,
        unchanged=r.unchanged, quarantined=r.quarantined, error=r.error,
        cursor_before=r.cursor_before, cursor_after=r.cursor_after,
    )


def get_run(conn: Connection, run_id: int) -> RunRow | None:
    r = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
    return None if r is None else _row(r)


def recent_runs(conn: Connection, source: str | None = None, limit: int = 20) -> Sequence[RunRow]:
    q = select(sync_runs).order_by(desc(sync_runs.c.started_at), desc(sync_runs.c.id)).limit(limit)
    if source:
        q = q.where(sync_runs.c.source == source)
    return [_row(r) for r in conn.execute(q)]


@dataclass(frozen=True)
class SourceHealth:
    source: str
    last_success: dt.datetime | None
    last_run: RunRow | None
    failures_in_a_row: int
    cursor: dt.datetime | None


def last_success(conn: Connection, source: str, by: dt.datetime | None = None) -> dt.datetime | None:
    """When ``source``'s last successful sync finished (by ``by``, when given), if one did."""
    query = select(func.max(sync_runs.c.finished_at)).where(sync_runs.c.source == source,
                                                            sync_runs.c.status == SUCCESS)
    if by is not None:
        query = query.where(sync_runs.c.finished_at <= by)
    found: dt.datetime | None = conn.execute(query).scalar()
    return found


def source_health(conn: Connection, source: str) -> SourceHealth:
    """What ``status`` and the report's sync-health table show for one source."""
    success = last_success(conn, source)
    runs = recent_runs(conn, source, limit=50)
    # Failed or crashed runs since the last success; a run stopped on request (a daemon stopped
    # for a restart ends its sync at a page boundary) is neither a failure nor a success
    failures = 0
    for run in runs:
        if run.status == SUCCESS:
            break
        if run.status == FAILED or (run.status == INTERRUPTED and run.error != STOPPED_ON_REQUEST):
            failures += 1
    return SourceHealth(source=source, last_success=success, last_run=runs[0] if runs else None,
                        failures_in_a_row=failures, cursor=get_cursor(conn, source))


def seen_now(engine: Engine, rows: Sequence[RunRow]) -> list[RunRow]:
    """``as_they_stand`` with the store's locks and a fresh read of each run in question."""
    from sync_agent.locks import is_held, sync_lock_name
    from sync_agent.store.engine import read_connection

    def still_running(run_id: int) -> bool:
        with read_connection(engine) as conn:
            run = get_run(conn, run_id)
        return run is not None and run.status == RUNNING

    return as_they_stand(rows, lambda source: is_held(engine, sync_lock_name(source)), still_running)

