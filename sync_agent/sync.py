"""Run one connector: pages in, one transaction per page, a run record out.

The invariants the issue trackers of every sync tool taught: a page's records and the cursor
commit together, so what the cursor says is stored is stored; the read window starts a lookback
before the cursor, because updates land late and share timestamps; the window ends a little
before "now" and never beyond; one source failing never stops the others.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Engine

from connectors.base import Connector, ConnectorContext, build_connector
from sync_agent.config import ConnectorSettings, Settings
from sync_agent.errors import ConfigError, SourceError, machine_failure, one_line
from sync_agent.locks import sync_lock_name, try_lock
from sync_agent.model import Page
from sync_agent.prefetch import Prefetch, fewer_collections
from sync_agent.privacy import IdHasher
from sync_agent.redaction import redact_message
from sync_agent.store import runs as run_store
from sync_agent.store.engine import write_transaction
from sync_agent.store.records import PageCounts, save_quarantined, save_records

log = structlog.get_logger("sync_agent.sync")

#: the read window ends this far before "now": a source may still be writing the last second
WINDOW_END_MARGIN = dt.timedelta(seconds=1)
#: pages read ahead of the one being committed (each one held in memory until committed)
PREFETCH_PAGES = 1
#: a source another process was syncing at that moment: not run, and not a failure either
SKIPPED = "skipped"
#: a run's error when its source's lock went with its PostgreSQL session and another sync took it
LOCK_LOST = ("this sync's lock ended with its database session (a server restart) and another sync of the "
             "source took it: this one stopped, its committed pages kept")


@dataclass(frozen=True)
class SyncResult:
    source: str
    status: str
    run_id: int | None = None
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    duration: float = 0.0
    error: str | None = None
    cursor: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == run_store.SUCCESS

    @property
    def failed(self) -> bool:
        return self.status not in (run_store.SUCCESS, SKIPPED)

    def line(self) -> str:
        """The one line ``sync`` prints per source."""
        text = (f"{self.source:<20} {self.status:<11} fetched={self.fetched} inserted={self.inserted} "
                f"updated={self.updated} unchanged={self.unchanged} quarantined={self.quarantined} "
                f"duration={self.duration:.1f}s")
        if self.status == SKIPPED:
            return f"{text} ({self.error})"
        return f"{text} error={self.error}" if self.error else text


def connector_context(settings: Settings, cs: ConnectorSettings) -> ConnectorContext:
    """What source ``cs``'s connector is handed: its times without an offset are in the source's
    zone (``connectors.NAME.timezone``), not the ward's clock."""
    return ConnectorContext(ward_code=settings.agent.ward_code, timezone=cs.timezone,
                            hasher=IdHasher(settings.agent.id_hash_key))


def read_window(cursor: dt.datetime | None, cs: ConnectorSettings, now: dt.datetime,
                tz: dt.tzinfo) -> tuple[dt.datetime | None, dt.datetime]:
    """``[since, until)`` for the next run of a source."""
    until = now.replace(microsecond=0) - WINDOW_END_MARGIN
    if cursor is not None:
        since: dt.datetime | None = cursor - dt.timedelta(minutes=cs.lookback_minutes)
    elif cs.start_date is not None:
        since = dt.datetime.combine(cs.start_date, dt.time(0), tzinfo=tz)
    else:
        since = None
    if since is not None and cs.start_date is not None:
        since = max(since, dt.datetime.combine(cs.start_date, dt.time(0), tzinfo=tz))
    return since, until


def sync_source(
    engine: Engine,
    settings: Settings,
    source: str,
    *,
    stop: threading.Event | None = None,
    connector_factory: Callable[[ConnectorSettings, ConnectorContext], Connector] = build_connector,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> SyncResult:
    """One incremental sync of ``source``. Never raises for a source's own failure."""
    cs = settings.connector(source)
    tz = settings.agent.timezone
    started = time.monotonic()
    try:
        lock = try_lock(engine, sync_lock_name(source))
    except Exception as exc:  # the store cannot be reached (its server down): this source's run fails
        return _not_started(source, exc, started)
    if lock is None:
        return SyncResult(source=source, status=SKIPPED, error="another sync of this source is running")
    with lock, structlog.contextvars.bound_contextvars(source=source):
        try:
            with write_transaction(engine) as conn:
                # read once the store is ours (SQLite: BEGIN IMMEDIATE waited for it): a run dated
                # before a digest's end is visible to it (alerts.in_flight_since)
                now = clock()
                stale = run_store.interrupt_stale_runs(conn, source, now)
                cursor_before = run_store.get_cursor(conn, source)
                since, until = read_window(cursor_before, cs, now, tz)
                run_id = run_store.start_run(conn, source, now, cursor_before, since, until)
        except Exception as exc:  # the store refuses a write (a full disk, its server gone): no run to record
            return _not_started(source, exc, started)
        if stale:
            log.warning("stale_runs_interrupted", count=stale)
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            log.info("sync_started", since=_local(since, tz), until=_local(until, tz),
                     cursor=_local(cursor_before, tz))
            totals = [0, 0, 0, 0, 0]  # fetched, inserted, updated, unchanged, quarantined
            status, error = run_store.SUCCESS, None
            connector: Connector | None = None
            try:
                connector = connector_factory(cs, connector_context(settings, cs))
                # the next page is read (and normalised) while this one is written and committed
                with fewer_collections(), Prefetch(
                    partial(connector.fetch, since, until), depth=PREFETCH_PAGES, stop=stop,
                    cancel=connector.request_stop, name=f"read-{source}",
                ) as pages:
                    for page in pages:
                        if not lock.still_held():  # its session ended (a server restart), and another took it
                            status, error = run_store.FAILED, LOCK_LOST
                            log.error("sync_lock_lost", note=LOCK_LOST)
                            break
                        counts = _commit_page(engine, source, run_id, page, until, settings, clock, pages.turn)
                        for i, n in enumerate((page.fetched, counts.inserted, counts.updated,
                                               counts.unchanged, counts.quarantined)):
                            totals[i] += n
                        if stop is not None and stop.is_set():
                            break
                if not pages.complete and status == run_store.SUCCESS:
                    status, error = run_store.INTERRUPTED, run_store.STOPPED_ON_REQUEST
            except (SourceError, ConfigError) as exc:
                status, error = run_store.FAILED, redact_message(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a connector bug must not stop the other sources
                # one line: a database error's further lines hold the page's values (the log has
                # the traceback, but for the machine's failure, a full disk: that is all it says)
                status, error = run_store.FAILED, redact_message(one_line(exc))
                if not machine_failure(exc):
                    log.exception("sync_crashed")
            finally:
                if connector is not None:
                    connector.close()
            try:
                with write_transaction(engine) as conn:
                    cursor_after = run_store.get_cursor(conn, source)
                    run_store.finish_run(conn, run_id, status, clock(), cursor_after, error)
            except Exception as exc:  # the pages committed stay; the run shows as interrupted next time
                unrecorded = _said("sync_end_not_recorded", exc)
                status, cursor_after = run_store.FAILED, None
                error = f"{error}; " if error else ""
                error += f"its end could not be recorded: {unrecorded}"
            duration = time.monotonic() - started
            result = SyncResult(source=source, status=status, run_id=run_id, fetched=totals[0],
                                inserted=totals[1], updated=totals[2], unchanged=totals[3],
                                quarantined=totals[4], duration=duration, error=error, cursor=cursor_after)
            log.log(40 if status == run_store.FAILED else 20, "sync_finished", status=status, fetched=totals[0],
                    inserted=totals[1], updated=totals[2], unchanged=totals[3], quarantined=totals[4],
                    duration=round(duration, 3), error=error,
                    cursor=_local(cursor_after, tz))
            return result


def _not_started(source: str, exc: Exception, started: float) -> SyncResult:
    """The failed result of a sync the store kept from starting: no run is recorded for it."""
    refused = _said("sync_not_started", exc, source=source)
    return SyncResult(source=source, status=run_store.FAILED, error=refused, duration=time.monotonic() - started)


def _said(event: str, exc: Exception, **bound: Any) -> str:
    """Log ``event`` for a store that failed a sync's bookkeeping, and return the one-line error:
    the machine's failure (a full disk, its server gone) in that one line, the agent's own with
    its traceback."""
    error = redact_message(one_line(exc))
    (log.error if machine_failure(exc) else log.exception)(event, error=error, **bound)
    return error


def _local(moment: dt.datetime | None, tz: dt.tzinfo) -> str | None:
    """An instant as the log writes it: in the ward's time, as every time the agent shows."""
    return None if moment is None else moment.astimezone(tz).isoformat()


def _commit_page(engine: Engine, source: str, run_id: int, page: Page, until: dt.datetime,
                 settings: Settings, clock: Callable[[], dt.datetime],
                 turn: AbstractContextManager[Any]) -> PageCounts:
    """Write one page and commit it; ``turn`` (the read-ahead's) is held while the page is
    written, and let go for the commit: the reader normalises the next page during the fsync."""
    now = clock()
    # The turn first, then the transaction (SQLite takes the write lock at BEGIN: no holding it
    # while the reader finishes a page); the turn is let go before the transaction commits.
    with ExitStack() as hold:
        hold.enter_context(turn)
        with write_transaction(engine) as conn:
            try:
                counts = save_records(conn, source, page.records, settings.agent.timezone, run_id, now)
                quarantined = save_quarantined(conn, source, page.quarantined, run_id, now)
                # the page's records a store cannot keep were quarantined by ``save_records``
                counts = PageCounts(counts.inserted, counts.updated, counts.unchanged,
                                    counts.quarantined + quarantined)
                run_store.add_page(conn, run_id, page.fetched, counts)
                if page.checkpoint is not None:
                    run_store.advance_cursor(conn, source, min(page.checkpoint, until), now)
            finally:
                hold.close()  # the turn, let go before the commit
    if page.quarantined:
        for q in page.quarantined:
            log.warning("record_quarantined", source_id=q.source_id, reason=q.reason)
    log.debug("page_committed", fetched=page.fetched, inserted=counts.inserted, updated=counts.updated,
              unchanged=counts.unchanged, quarantined=counts.quarantined,
              checkpoint=_local(page.checkpoint, settings.agent.timezone))
    return counts


def sync_sources(engine: Engine, settings: Settings, sources: Iterable[str] | None = None,
                 stop: threading.Event | None = None) -> Sequence[SyncResult]:
    """Sync each named source (all enabled ones by default) in turn, each on its own."""
    names = list(sources) if sources else list(settings.source_names)
    results = []
    for name in names:
        if stop is not None and stop.is_set():
            break
        results.append(sync_source(engine, settings, name, stop=stop))
    return results
