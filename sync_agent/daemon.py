"""``sync-agent run``: the scheduler that runs everything else, unattended, for months.

The scheduler only decides *when*: each job calls the same function a CLI command calls. Rules
learned from APScheduler's issue tracker, each applied on purpose:

- jobs live in memory and are rebuilt from the configuration at every start, with explicit ids,
  so an edited config takes effect on restart and no stale pickled job survives an upgrade;
- the ward's time zone is given to the scheduler *and* to every trigger, so a host clock in UTC
  changes nothing;
- ``coalesce``, ``max_instances=1`` and ``misfire_grace_time`` are set per job (see
  ``job_specs``) rather than left to defaults;
- one daemon per store, enforced by a lock that dies with the process (``locks.py``), so a
  restart after ``kill -9`` needs no cleanup;
- missed, skipped and failed runs are logged by scheduler event listeners.

Shutdown (SIGTERM/SIGINT): the stop event is set, so no job starts any more and every running
sync stops at its next page boundary; the scheduler is shut down without waiting; the daemon
then waits up to ``SHUTDOWN_BUDGET`` seconds for running jobs. A sync may be asleep in an HTTP
retry honouring a ``Retry-After`` of up to two minutes, which nothing can interrupt; rather than
wait for it, the daemon logs which jobs were still running and leaves with ``os._exit(0)``. That
is safe by construction: every page is committed in one transaction with its cursor, so an
abandoned run only loses its uncommitted page (rolled back by the database), and the next start
marks the run ``interrupted``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, select

from sync_agent.calendar import WorkingCalendar
from sync_agent.config import Settings
from sync_agent.errors import (
    AlreadyRunning,
    SourceError,
    WorkFailed,
    disk_full,
    machine_failure,
    one_line,
    server_state,
)
from sync_agent.locks import StoreLock, acquire_or_fail, try_lock
from sync_agent.locks import holder as lock_holder
from sync_agent.model import RECEPTION_SOURCE
from sync_agent.redaction import redact_message
from sync_agent.store.engine import DAEMON_LOCK, read_connection, write_transaction
from sync_agent.store.state import forget_state, read_states, write_state
from sync_agent.store.tables import agent_state, deliveries, sync_runs

if TYPE_CHECKING:
    from sync_agent.report.period import Period

log = structlog.get_logger("sync_agent.daemon")

#: seconds between the stop request and leaving anyway (the issue allows 10)
SHUTDOWN_BUDGET = 8.0
#: the first syncs start this long after the daemon, one source a second apart, so that four
#: sources do not all open their first write transaction in the same instant
FIRST_SYNC_DELAY = 2.0
#: reconciliation also runs on its own this often: flags such as "unknown reception code, one
#: day after first seen" change with time, not only with new data
RECONCILE_EVERY = dt.timedelta(hours=1)
#: a due report or digest missed while the daemon was down is sent this long after start, after
#: the first syncs had a chance to bring the figures up to date
CATCH_UP_DELAY = dt.timedelta(minutes=2)
#: how long the report waits, each time, for the sources to be read past the period's end
REPORT_WAIT = dt.timedelta(minutes=30)
#: a digest or report that could not be sent (SMTP down) is tried again this long after, the wait
#: doubling up to ``DELIVERY_RETRY_MAX_DELAY``: a report until it goes (the city needs it, and an
#: unattended agent must not leave it to someone reading ``status``), a digest until its day ends
#: (the next working day's carries what it held: its window starts at the last digest sent)
DELIVERY_RETRY_DELAY = dt.timedelta(minutes=15)
DELIVERY_RETRY_MAX_DELAY = dt.timedelta(hours=2)
#: tries of a report whose failure a wait may not mend (a recipient refused for good, an error
#: of the agent's own) before the daemon leaves it to a person, with the reason in ``status``
UNSURE_RETRIES = 3
#: ``agent_state`` name prefix of a failed delivery's retry, by job id (``status`` shows it)
DELIVERY_RETRY_STATE = "delivery_retry:"

LOCK_TRIES = 4
#: how often the daemon makes sure it still holds the store's lock (PostgreSQL's ends with its
#: session: a server restart lets another daemon start until the lock is taken again, and
#: ``status`` says no daemon runs). On PostgreSQL a check is one ``SELECT 1``; on SQLite none.
LOCK_CHECK_EVERY = 10.0
#: the lock check's name among the running jobs (``_check_lock_aside``)
LOCK_CHECK_JOB = "lock-check"
RECONCILE_JOB = "reconcile"
DIGEST_JOB = "alerts:digest"
REPORT_JOB = "report:monthly"


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job as the configuration defines it (what ``status`` shows, too)."""

    id: str
    kind: str  # sync | reconcile | digest | report
    description: str
    trigger: BaseTrigger = field(repr=False)
    misfire_grace_time: int | None
    source: str | None = None
    every: dt.timedelta | None = None

    def next_fire_time(self, now: dt.datetime) -> dt.datetime | None:
        """The trigger's next fire time after ``now`` (aware, in the ward's time zone)."""
        result: dt.datetime | None = self.trigger.get_next_fire_time(None, now)
        return result


def sync_interval(every_minutes: int, every_seconds: float | None) -> dt.timedelta:
    return dt.timedelta(seconds=every_seconds) if every_seconds else dt.timedelta(minutes=every_minutes)


def digest_enabled(settings: Settings) -> bool:
    from sync_agent.notifiers import load_notifiers

    return bool(load_notifiers(settings))


def job_specs(settings: Settings, now: dt.datetime, every_seconds: float | None = None,
              time_scale: float = 1.0) -> list[JobSpec]:
    """The jobs of this configuration, with their triggers in the ward's time zone.

    Two hidden, test-only knobs of ``sync-agent run``: ``every_seconds`` replaces every
    source's ``every_minutes`` (the daemon tests); ``time_scale`` runs every interval job that
    many times faster (the idle benchmark plays an hour of schedule in a minute). Cron jobs
    are never scaled.
    """
    tz = settings.agent.timezone
    now = now.astimezone(tz)
    specs: list[JobSpec] = []
    for i, cs in enumerate(c for c in settings.connectors if c.enabled):
        every = sync_interval(cs.every_minutes, every_seconds) / time_scale
        first = now + dt.timedelta(seconds=FIRST_SYNC_DELAY + i)
        specs.append(JobSpec(
            id=f"sync:{cs.name}", kind="sync", source=cs.name, every=every,
            description=f"sync {cs.name} every {_human(every)}",
            trigger=IntervalTrigger(seconds=every.total_seconds(), start_date=first, timezone=tz),
            # a run later than half an interval is dropped: the next one comes soon anyway
            misfire_grace_time=max(1, int(every.total_seconds() // 2)),
        ))
    reconcile_every = RECONCILE_EVERY / time_scale
    specs.append(JobSpec(
        id=RECONCILE_JOB, kind="reconcile", every=reconcile_every,
        description=f"reconcile after each sync that changed records, and every {_human(reconcile_every)}",
        trigger=IntervalTrigger(seconds=reconcile_every.total_seconds(),
                                start_date=now + dt.timedelta(seconds=FIRST_SYNC_DELAY), timezone=tz),
        misfire_grace_time=300,
    ))
    if digest_enabled(settings):
        t = settings.alerts.time
        specs.append(JobSpec(
            id=DIGEST_JOB, kind="digest",
            description=f"alert digest at {t:%H:%M} on working days",
            trigger=CronTrigger(hour=t.hour, minute=t.minute, timezone=tz),
            # a digest an hour late is still read that morning; later, the start-up catch-up
            # or `sync-agent alerts --send` covers it
            misfire_grace_time=3600,
        ))
    if settings.report.recipients:
        r = settings.report
        specs.append(JobSpec(
            id=REPORT_JOB, kind="report",
            description=f"period report on day {r.send_day} at {r.send_time:%H:%M}",
            trigger=CronTrigger(day=r.send_day, hour=r.send_time.hour, minute=r.send_time.minute,
                                timezone=tz),
            # the report is due that day whatever the hour; a restart later is covered by the
            # catch-up at start, which checks the outbox
            misfire_grace_time=12 * 3600,
        ))
    return specs


def _human(td: dt.timedelta) -> str:
    s = int(td.total_seconds())
    if s % 3600 == 0:
        return f"{s // 3600} h"
    if s % 60 == 0:
        return f"{s // 60} min"
    return f"{s} s"


def next_working_digest(spec: JobSpec, calendar: WorkingCalendar, now: dt.datetime) -> dt.datetime | None:
    """The digest trigger's next fire time on a working day (the job skips the others)."""
    when = spec.next_fire_time(now)
    for _ in range(60):
        if when is None or calendar.is_working_day(when.date()):
            return when
        nxt: dt.datetime | None = spec.trigger.get_next_fire_time(when, when + dt.timedelta(seconds=1))
        when = nxt
    return when


# --- what was sent ----------------------------------------------------------------------------

def delivered(engine: Engine, key: str) -> bool:
    """Whether the outbox holds a message with ``key`` that went out."""
    with read_connection(engine) as conn:
        row = conn.execute(select(deliveries.c.id).where(deliveries.c.key == key,
                                                         deliveries.c.status == "sent").limit(1)).first()
    return row is not None


def report_send_moment(period_end: dt.date, settings: Settings) -> dt.datetime:
    """When the report of the period ending on ``period_end`` is due: the first ``send_day``
    after the period, at ``send_time``."""
    d = period_end + dt.timedelta(days=1)
    while d.day != settings.report.send_day:
        d += dt.timedelta(days=1)
    return dt.datetime.combine(d, settings.report.send_time, tzinfo=settings.agent.timezone)


@dataclass(frozen=True)
class Outbox:
    """One message's outbox rows, by channel, read once: what went, what may have, what is being
    sent now."""

    status: dict[str, str]
    #: channels a process is sending now: the row is being prepared or sent, with no failure
    #: recorded (an attempt that ended in doubt records why), and younger than the slowest send
    #: the configuration allows (older: its process died)
    under_way: frozenset[str]

    @classmethod
    def of(cls, engine: Engine, settings: Settings, key: str) -> Outbox:
        from sync_agent.status import in_doubt_after

        d = deliveries.c
        since = dt.datetime.now(dt.UTC) - in_doubt_after(settings)
        with read_connection(engine) as conn:
            rows = conn.execute(select(d.channel, d.status, d.error, d.updated_at).where(d.key == key)).all()
        return cls({r.channel: r.status for r in rows}, frozenset(
            r.channel for r in rows
            if r.status in ("preparing", "sending") and r.error is None and r.updated_at > since))

    def being_sent(self, channels: Sequence[str] | None = None) -> bool:
        return bool(self.under_way if channels is None else self.under_way & set(channels))

    def left_sending(self) -> bool:
        """A row 'sending' that nobody is sending now: it may have gone."""
        return "sending" in self.status.values() and not self.under_way

    def sent_on_all(self, channels: Sequence[str]) -> bool:
        return bool(channels) and all(self.status.get(c) == "sent" for c in channels)

    def unsent(self, channels: Sequence[str]) -> tuple[list[str], list[str]]:
        """Of ``channels``, those not gone and not being sent now: (left in doubt, the others)."""
        idle = [c for c in channels if c not in self.under_way]
        return ([c for c in idle if self.status.get(c) == "sending"],
                [c for c in idle if self.status.get(c) not in ("sent", "sending")])


def fully_sent(engine: Engine, settings: Settings, key: str) -> bool:
    """Whether ``key`` went on every configured channel (a digest that went on one channel and
    not another is not)."""
    from sync_agent.notifiers import load_notifiers

    return Outbox.of(engine, settings, key).sent_on_all([n.channel for n in load_notifiers(settings)])


def due_unsent_report(engine: Engine, settings: Settings, now: dt.datetime) -> Any:
    """The latest complete period whose report is due and not sent, or None."""
    from sync_agent.report.period import Period

    tz = settings.agent.timezone
    period = Period.latest_complete(now.astimezone(tz).date(), settings.agent.period_start_day)
    if now < report_send_moment(period.end, settings):
        return None
    # one 'sending' that is not being sent now may have gone: status shows it in doubt, for a
    # person to check and resend (one being sent now: the catch-up meets it and tries later)
    outbox = Outbox.of(engine, settings, f"report:{period.label}")
    held = {"sent", "sending"} & set(outbox.status.values())
    return None if held and not outbox.being_sent() else period


# --- the daemon -----------------------------------------------------------------------------

class Daemon:
    """The scheduler, its jobs, the stop event, and the single-instance lock."""

    def __init__(self, settings: Settings, engine: Engine, *, every_seconds: float | None = None,
                 time_scale: float = 1.0, shutdown_budget: float = SHUTDOWN_BUDGET,
                 catch_up_delay: dt.timedelta = CATCH_UP_DELAY,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.tz = settings.agent.timezone
        self.every_seconds = every_seconds
        self.time_scale = time_scale
        self.shutdown_budget = shutdown_budget
        self.catch_up_delay = catch_up_delay
        self.clock = clock or (lambda: dt.datetime.now(self.tz))
        self.calendar = WorkingCalendar(settings.calendar)
        #: set on SIGTERM/SIGINT: no job starts any more, running syncs stop at a page boundary
        self.stop = threading.Event()
        self._guard = threading.Lock()
        self._running: dict[str, float] = {}
        self._reconcile_pending = False
        self._reconcile_running = False
        #: the reception register's sync is running; ``_reconcile_after_reception``: a source's
        #: changes wait for its end to be reconciled (see ``_sync``)
        self._reception_syncing = False
        self._reconcile_after_reception = False
        self._retries: dict[tuple[str, str], int] = {}
        #: of those, the failures a wait may not mend; and the last failure's text
        self._unsure: dict[tuple[str, str], int] = {}
        self._last_error: dict[tuple[str, str], str] = {}
        self._signal: int | None = None
        self._lock_lost = False
        self._lock: StoreLock | None = None
        self.specs: list[JobSpec] = []
        n_jobs = len(settings.source_names) + 4
        self.scheduler = BackgroundScheduler(
            timezone=self.tz,
            # one thread per job: a job never waits in a queue behind another one, so "no new
            # jobs after stop" only has to be checked at the start of each job
            executors={"default": ThreadPoolExecutor(max_workers=n_jobs)},
            job_defaults={
                # after a stall (host asleep, clock jump) run a job once, not once per missed slot
                "coalesce": True,
                # a slow sync must not overlap its next run (the store lock would refuse it anyway)
                "max_instances": 1,
                "misfire_grace_time": 60,
            },
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_error, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)

    # --- lifecycle ----------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Take the store's daemon lock or raise ``AlreadyRunning`` with a clear message."""
        try:
            # a few tries: `sync-agent status` takes the lock for an instant to see if it is held
            for attempt in range(LOCK_TRIES):
                lock = try_lock(self.engine, DAEMON_LOCK)
                if lock is not None:
                    self._lock = lock
                    return
                if attempt < LOCK_TRIES - 1:
                    time.sleep(0.25)
            self._lock = acquire_or_fail(self.engine, DAEMON_LOCK, "the sync-agent daemon")
        except AlreadyRunning:
            holder = lock_holder(self.engine, DAEMON_LOCK)
            where = self.engine.url.render_as_string(hide_password=True)
            raise AlreadyRunning(
                f"another sync-agent daemon{f' ({holder})' if holder else ''} is already running "
                f"on this store ({where}); stop it first, or point this one at another database"
            ) from None

    def release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def start(self) -> None:
        """Build the jobs from the configuration and start the scheduler (lock already held)."""
        now = self.clock()
        self.specs = job_specs(self.settings, now, self.every_seconds, self.time_scale)
        for spec in self.specs:
            self.scheduler.add_job(
                self._job_function(spec), trigger=spec.trigger, id=spec.id, name=spec.description,
                misfire_grace_time=spec.misfire_grace_time, replace_existing=True,
            )
        # retries scheduled by a daemon that stopped are gone with it: their notes now say the
        # daemon gave up (a catch-up sends only the latest report and today's digest, and then
        # settles the note; an older one is left to a person, as status says)
        self._close_what_the_last_daemon_left(now)
        self._schedule_catch_ups(now)
        self._close_the_waits_no_catch_up_covers(now)
        self.scheduler.start()
        jobs = [{"id": j.id, "trigger": str(j.trigger),
                 "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
                for j in self.scheduler.get_jobs()]
        log.info("daemon_started", pid=os.getpid(), timezone=str(self.tz), jobs=jobs,
                 every_seconds=self.every_seconds,
                 time_scale=self.time_scale if self.time_scale != 1.0 else None)

    def request_stop(self, signum: int | None = None) -> None:
        """Safe from a signal handler: only sets flags; the main thread does the rest."""
        if self.stop.is_set() and signum is not None:
            # a second signal: the operator insists; every committed page is consistent
            _flush_logs()
            os._exit(0)
        self._signal = signum
        self.stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def wait(self) -> None:
        """Block the main thread until a stop is requested (interruptible by signals), making
        sure every ``LOCK_CHECK_EVERY`` seconds that this daemon still holds the store."""
        checked = time.monotonic()
        while not self.stop.wait(1.0):
            if time.monotonic() - checked >= LOCK_CHECK_EVERY:
                checked = time.monotonic()
                self._check_lock_aside()

    def _check_lock_aside(self) -> None:
        """``check_lock`` on a thread of its own, as a job the shutdown waits for: with the
        server unreachable a check may block ~30 s (connect and TCP timeouts), and the main
        thread must stay free to stop on a signal within the shutdown's budget."""
        with self._guard:
            if LOCK_CHECK_JOB in self._running:  # the last one still waits for the server
                return
            # running from now, not from when its thread starts: a shutdown in between would
            # release the lock under it
            self._running[LOCK_CHECK_JOB] = time.monotonic()

        def check() -> None:
            try:
                with structlog.contextvars.bound_contextvars(job=LOCK_CHECK_JOB):
                    self.check_lock()
            finally:
                with self._guard:
                    self._running.pop(LOCK_CHECK_JOB, None)
        threading.Thread(target=check, name="lock-check", daemon=True).start()

    def check_lock(self) -> None:
        """Stop (exit status 1) if another daemon took the store's lock while this one had lost
        it with its PostgreSQL session; a lock lost and free is taken again (``still_held``)."""
        if self._lock is not None and not self._lock.still_held():
            log.error("daemon_lock_lost", note="the store's server ended this daemon's session and another "
                                               "daemon took the store meanwhile: this one stops")
            self._lock_lost = True
            self.request_stop()

    def shutdown(self) -> int:
        """No new jobs; wait up to the budget for running ones; then leave (see module doc)."""
        started = time.monotonic()
        sig = signal.Signals(self._signal).name if self._signal else None
        with self._guard:
            running = sorted(self._running)
        log.info("shutdown_requested", signal=sig, running_jobs=running)
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = started + self.shutdown_budget
        while time.monotonic() < deadline:
            with self._guard:
                if not self._running:
                    break
            time.sleep(0.05)
        with self._guard:
            still = sorted(self._running)
        if still:
            log.warning("shutdown_budget_exceeded", still_running=still, budget_seconds=self.shutdown_budget,
                        note="leaving anyway: committed pages are consistent, the run is marked "
                             "interrupted at the next start")
            log.info("daemon_stopped", seconds=round(time.monotonic() - started, 3), forced=True)
            if LOCK_CHECK_JOB not in still:  # else it is using the lock's session: the exit ends both
                self.release_lock()
            _flush_logs()
            os._exit(1 if self._lock_lost else 0)
        log.info("daemon_stopped", seconds=round(time.monotonic() - started, 3), forced=False)
        self.release_lock()
        return 1 if self._lock_lost else 0

    def run(self) -> int:
        """Lock, start, wait for a signal, stop. Returns the exit status."""
        self.acquire_lock()
        try:
            self.install_signal_handlers()
            self.start()
            self.wait()
            return self.shutdown()
        finally:
            self.release_lock()

    # --- jobs ---------------------------------------------------------------------------------

    def _job_function(self, spec: JobSpec) -> Callable[[], None]:
        body: Callable[[], None]
        if spec.kind == "sync":
            source = spec.source or ""

            def body() -> None:
                self._sync(source)
        elif spec.kind == "reconcile":
            body = self._reconcile
        elif spec.kind == "digest":
            body = self._digest
        else:
            body = self._report
        return self._wrap(spec.id, body)

    def _wrap(self, job_id: str, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if self.stop.is_set():
                return
            with self._guard:
                self._running[job_id] = time.monotonic()
            started = time.monotonic()
            try:
                with structlog.contextvars.bound_contextvars(job=job_id):
                    body()
                    log.debug("job_finished", seconds=round(time.monotonic() - started, 3))
            finally:
                with self._guard:
                    self._running.pop(job_id, None)
        return run

    def _sync(self, source: str) -> None:
        from sync_agent.sync import SKIPPED, sync_source

        reception = source == RECEPTION_SOURCE
        if reception:
            with self._guard:
                self._reception_syncing = True
        changed = False
        try:
            result = sync_source(self.engine, self.settings, source, stop=self.stop)
            if result.status == SKIPPED:
                log.warning("sync_skipped", source=source, reason=result.error)
            changed = bool(result.inserted or result.updated or result.quarantined)
        finally:
            with self._guard:
                if reception:
                    self._reception_syncing = False
                    changed = changed or self._reconcile_after_reception
                    self._reconcile_after_reception = False
                elif changed and self._reception_syncing:
                    # the sources sync side by side, and the reception register is being read: a
                    # reconciliation now would flag as bypassed every dossier whose reception
                    # record is in its pages still to come (thousands on a first load), and clear
                    # the flags a minute later. Its end reconciles these changes too.
                    self._reconcile_after_reception, changed = True, False
            if changed:
                self.request_reconcile()

    def request_reconcile(self) -> None:
        """Run reconciliation soon; if it is running now, it runs once more when it ends."""
        with self._guard:
            self._reconcile_pending = True
            if self._reconcile_running:
                return
        if self.stop.is_set():
            return
        try:
            self.scheduler.modify_job(RECONCILE_JOB, next_run_time=self.clock())
        except Exception:  # the scheduler is shutting down
            log.debug("reconcile_not_scheduled")

    def _reconcile(self) -> None:
        from sync_agent.reconcile import reconcile

        with self._guard:
            if self._reconcile_running:
                return
            if self._reception_syncing:  # the hourly run too: the reception register's end runs it
                self._reconcile_after_reception = True
                return
            self._reconcile_running = True
            self._reconcile_pending = False
        try:
            while True:
                reconcile(self.engine, self.tz)
                # decide and clear "running" under one lock: a sync that commits after this
                # sees "not running" and wakes the job again, so no request is ever lost
                with self._guard:
                    if not self._reconcile_pending or self.stop.is_set():
                        self._reconcile_running = False
                        return
                    self._reconcile_pending = False
        except BaseException:
            with self._guard:
                self._reconcile_running = False
            raise

    def _digest(self, day: dt.date | None = None) -> None:
        """Today's digest; ``day``: a retry's, which sends nothing once that day is over (it would
        send the next day's digest early; the next working day's carries its dossiers)."""
        from sync_agent.alerts import build_digest, send_digest
        from sync_agent.reconcile import reconcile

        now = self.clock()
        today = now.date()
        if day is not None and day != today:
            from sync_agent.alerts import digest_key

            log.info("digest_retry_dropped", date=day.isoformat(),
                     reason="the day is over: the next working day's digest carries its dossiers")
            if fully_sent(self.engine, self.settings, digest_key(day)):  # sent by hand meanwhile
                self._settle(DIGEST_JOB, day.isoformat())
                return
            key = (DIGEST_JOB, day.isoformat())
            error = self._last_error.get(key)
            doubt, others = self._unsent_channels(digest_key(day))
            self._note_retry(DIGEST_JOB, {"job": DIGEST_JOB, "what": day.isoformat(),
                                          **({"error": error} if error else {}),
                                          **({"in_doubt": True, "channels": doubt} if doubt else {}),
                                          **({"other_channels": others} if others else {}),
                                          "attempts": max(self._retries.get(key, 0) - 1, 0),
                                          "gave_up_at": now.isoformat()})
            return
        if not self.calendar.is_working_day(today):
            log.info("digest_skipped", date=today.isoformat(), reason="not a working day",
                     holiday=self.calendar.holiday_name(today))
            return
        try:
            # records a sync stored before now but whose reconciliation is still queued would get
            # cases dated before this digest's end once it ran, after the digest: in no digest at all
            reconcile(self.engine, self.tz)
            digest = build_digest(self.engine, self.settings, today, now=now)
            result = send_digest(self.engine, self.settings, digest, now=now)
        except Exception as exc:  # the store busy or its server restarting: tried again
            if _may_pass(exc):
                self._retry_later(DIGEST_JOB, today, partial(self._digest, today), now, error=one_line(exc))
            else:
                self._give_up(DIGEST_JOB, today.isoformat(), one_line(exc), now)
            raise
        if result.ok:
            self._settle(DIGEST_JOB, today.isoformat())
            return
        # channels that went are not repeated (the outbox), the failed ones are tried again, if
        # a wait may mend one of them (not one in doubt, not a refusal)
        failed = "; ".join(o.error for o in result.failed if o.error) or "delivery failed"
        # a person's --send under way (its row young): it goes, or fails, there; tried again after
        busy = Outbox.of(self.engine, self.settings, digest.key).being_sent(
            [o.channel for o in result.failed if o.claimed_elsewhere])
        if busy or any(o.may_pass for o in result.failed):
            self._retry_later(DIGEST_JOB, today, partial(self._digest, today), now, error=failed)
        else:
            self._give_up(DIGEST_JOB, today.isoformat(), failed, now,
                          in_doubt=any(o.in_doubt for o in result.failed),
                          channels=[o.channel for o in result.failed if o.in_doubt],
                          others=[o.channel for o in result.failed if not o.in_doubt])

    def _report(self, period: Period | None = None) -> None:
        """Send the latest complete period's report, or ``period``'s (a report waiting keeps its
        period: a wait past the next period's end must not skip it)."""
        from sync_agent.mailer import DeliveryInDoubt, MailInDoubt, MailPermanentError
        from sync_agent.report import send_period_report
        from sync_agent.report.period import Period

        now = self.clock()
        period = period or Period.latest_complete(now.date(), self.settings.agent.period_start_day)
        try:
            if self._report_must_wait(period, now):
                self._settle(REPORT_JOB, period.label)  # the wait, in status, says what comes next
                return
            result = send_period_report(self.engine, self.settings, period, now=now)
        except (DeliveryInDoubt, MailInDoubt, MailPermanentError) as exc:
            if isinstance(exc, DeliveryInDoubt) and Outbox.of(
                    self.engine, self.settings, f"report:{period.label}").being_sent(["email"]):
                # another process (a person's --send) is sending it now: it goes, or fails, there
                self._retry_later(REPORT_JOB, now.date(), partial(self._report, period), now,
                                  what=period.label, error=one_line(exc))
                raise
            # a person must look: trying again cannot help (or could send it twice)
            self._give_up(REPORT_JOB, period.label, one_line(exc), now,
                          in_doubt=isinstance(exc, (DeliveryInDoubt, MailInDoubt)))
            raise
        except Exception as exc:
            self._retry_later(REPORT_JOB, now.date(), partial(self._report, period), now, what=period.label,
                              error=one_line(exc), transient=_may_pass(exc))
            raise
        self._settle(REPORT_JOB, period.label)
        log.info("report_job_finished", period=period.label, status=result.status,
                 message_id=result.message_id)

    def _report_must_wait(self, period: Period, now: dt.datetime) -> bool:
        """Whether the store cannot report ``period`` yet, and if so try again in ``REPORT_WAIT``.

        The report goes to the city once and is not resent by itself: sent while a source has
        not been read past the period's end (a first sync still running, a source down since
        before it ended), its figures would be wrong for good. It waits instead, as long as it
        takes, and says so in the log and in ``status``. Once it may go, the records stored so
        far are reconciled first, so the cases show every one of them.
        """
        from sync_agent.reconcile import reconcile
        from sync_agent.report_readiness import mark_report_waiting, sources_behind

        behind = sources_behind(self.engine, self.settings, period)
        mark_report_waiting(self.engine, period, behind, now)
        if not behind:
            reconcile(self.engine, self.tz)
            return False
        retry_at = now + REPORT_WAIT
        log.warning("report_waiting_for_sources", period=period.label, sources=list(behind),
                    retry_at=retry_at.isoformat())
        wait_id = f"{REPORT_JOB}:wait:{period.label}"
        self.scheduler.add_job(self._wrap(wait_id, partial(self._report, period)),
                               trigger=DateTrigger(retry_at, timezone=self.tz),
                               id=wait_id, replace_existing=True, misfire_grace_time=None)
        return True

    def _retry_later(self, job_id: str, day: dt.date, body: Callable[[], None], now: dt.datetime,
                     what: str | None = None, error: str | None = None, transient: bool = True) -> None:
        """One more try of a failed delivery job in a while (see ``DELIVERY_RETRY_DELAY``): ``day``
        is the digest's; ``what`` the report's period (tries are counted by it, across days), for
        the command ``status`` gives; ``error`` what failed; not ``transient``: a failure a wait
        may not mend, tried ``UNSURE_RETRIES`` times."""
        what = what or (day.isoformat() if job_id == DIGEST_JOB else None)
        key = (job_id, what or day.isoformat())
        shown = redact_message(error) if error else None
        # a digest's tries are of its day only; a report's stay by period until it goes (_settle)
        keep = (lambda k: k[0] != job_id or k == key) if job_id == DIGEST_JOB else (lambda k: True)
        with self._guard:
            attempts = self._retries.get(key, 0) + 1
            unsure = self._unsure.get(key, 0) + (0 if transient else 1)
            self._retries = {k: v for k, v in self._retries.items() if keep(k)}
            self._unsure = {k: v for k, v in self._unsure.items() if keep(k)}
            self._last_error = {k: v for k, v in self._last_error.items() if keep(k)}
            self._retries[key], self._unsure[key] = attempts, unsure
            if shown:
                self._last_error[key] = shown
        when = now + min(DELIVERY_RETRY_DELAY * 2 ** min(attempts - 1, 16), DELIVERY_RETRY_MAX_DELAY)
        day_over = job_id == DIGEST_JOB and when.astimezone(self.tz).date() != day
        hopeless = unsure > UNSURE_RETRIES
        if day_over or hopeless or self.stop.is_set():
            # stopping: the next start's catch-up sends a report still due (and today's digest)
            reason = ("the day is over: the next digest carries its items" if day_over
                      else "a wait may not mend this failure" if hopeless else "stopping")
            log.error("delivery_retries_exhausted", job=job_id, attempts=attempts - 1, reason=reason, error=shown,
                      hint="see `sync-agent status`; send by hand with `alerts --send` or `report --send`")
            channels: dict[str, Any] = {}
            if job_id == DIGEST_JOB:  # which channels to send by hand, and how (if the store answers)
                from sync_agent.alerts import digest_key

                with contextlib.suppress(Exception):
                    doubt, others = self._unsent_channels(digest_key(day))
                    channels = {**({"in_doubt": True, "channels": doubt} if doubt else {}),
                                **({"other_channels": others} if others else {})}
            self._note_retry(job_id, {"job": job_id, **({"what": what} if what else {}),
                                      **({"error": shown} if shown else {}), **channels,
                                      "attempts": attempts - 1, "gave_up_at": now.isoformat()})
            return
        # one retry per report period (the next period's failure must not replace this one's); a
        # retry runs however late it comes (a host asleep): a digest's, the next day, drops itself
        retry_id = _per_period(f"{job_id}:retry", job_id, what)
        self.scheduler.add_job(self._wrap(retry_id, body), trigger=DateTrigger(when, timezone=self.tz),
                               id=retry_id, replace_existing=True, misfire_grace_time=None)
        log.warning("delivery_retry_scheduled", job=job_id, at=when.isoformat(), attempt=attempts)
        self._note_retry(job_id, {"job": job_id, **({"what": what} if what else {}),
                                  **({"error": shown} if shown else {}), "attempt": attempts,
                                  "at": when.isoformat()})

    def _give_up(self, job_id: str, what: str, error: str, now: dt.datetime, in_doubt: bool = False,
                 channels: Sequence[str] = (), others: Sequence[str] = ()) -> None:
        """A delivery no retry may mend (or that may have gone already: ``in_doubt``): no more
        tries, and ``status`` says why instead of a retry that will not come."""
        key = (job_id, what)
        shown = redact_message(error)
        retry_id = _per_period(f"{job_id}:retry", job_id, what)
        with contextlib.suppress(Exception):  # a retry scheduled for an earlier failure
            self.scheduler.remove_job(retry_id)
        log.error("delivery_given_up", job=job_id, what=what, error=shown, in_doubt=in_doubt,
                  hint="see `sync-agent status`; send by hand once the cause is fixed")
        self._note_retry(job_id, {"job": job_id, "what": what, "error": shown,
                                  **({"in_doubt": True} if in_doubt else {}),
                                  **({"channels": list(channels)} if channels else {}),
                                  **({"other_channels": list(others)} if others else {}),
                                  "attempts": max(self._retries.get(key, 0), 0), "gave_up_at": now.isoformat()})

    def _close_what_the_last_daemon_left(self, now: dt.datetime) -> None:
        """At start: the retries and waits of a daemon that stopped are gone with it. Its notes now
        say it gave up (in doubt where the outbox row may have gone), keeping their time, so that a
        delivery sent by hand meanwhile settles them (the waits: ``_close_the_waits_no_catch_up_covers``)."""

        with read_connection(self.engine) as conn:
            rows = conn.execute(select(agent_state.c.name, agent_state.c.value, agent_state.c.updated_at)
                                .where(agent_state.c.name.startswith(DELIVERY_RETRY_STATE, autoescape=True))).all()
        for name, value, noted_at in rows:
            note = json.loads(value)
            if "at" not in note:
                continue
            gave_up = {k: v for k, v in note.items() if k not in ("at", "attempt")}
            gave_up.update(attempts=max(int(note.get("attempt", 1)) - 1, 0), gave_up_at=now.isoformat())
            what = note.get("what")
            if what and note.get("job") in (REPORT_JOB, DIGEST_JOB):
                key = f"report:{what}" if note["job"] == REPORT_JOB else f"alerts:{what}"
                doubt, others = self._unsent_channels(key) if note["job"] == DIGEST_JOB else (
                    (["email"], []) if Outbox.of(self.engine, self.settings, key).left_sending() else ([], []))
                if doubt:
                    gave_up.update(in_doubt=True, channels=doubt)
                if others and note["job"] == DIGEST_JOB:
                    gave_up.update(other_channels=others)
            with write_transaction(self.engine) as conn:
                # its own time kept: a delivery sent by hand while the daemon was down settles it
                write_state(conn, name, json.dumps(gave_up), noted_at)

    def _close_the_waits_no_catch_up_covers(self, now: dt.datetime) -> None:
        """A report that waited for its sources when the daemon stopped, and that no catch-up now
        checks again (only the latest period's is, when one was scheduled), becomes a note to send
        it by hand (in doubt where its row may have gone), in the transaction that forgets the
        wait; a person's send of it under way settles that note once it goes. One that went, and
        a new install's (the report the ward filed by hand), are forgotten without a note."""
        from sync_agent.report.period import Period
        from sync_agent.report_readiness import REPORT_WAITING_STATE

        latest = Period.latest_complete(now.astimezone(self.tz).date(), self.settings.agent.period_start_day)
        caught_up = self.scheduler.get_job(f"{REPORT_JOB}:catch-up") is not None
        with read_connection(self.engine) as conn:
            waits = read_states(conn, REPORT_WAITING_STATE)
        for name, value in waits.items():
            wait = json.loads(value)
            label = str(wait.get("period"))
            key = f"report:{label}"
            if label == latest.label and caught_up:
                continue  # the catch-up checks it again
            new_install = label == latest.label and not self._synced_by(
                report_send_moment(latest.end, self.settings))  # filed by hand: report_catch_up_skipped
            note = None
            outbox = Outbox.of(self.engine, self.settings, key)
            if "sent" not in outbox.status.values() and not new_install:
                note = {"job": REPORT_JOB, "what": label, "attempts": 0, "gave_up_at": now.isoformat(),
                        "error": f"waited for {', '.join(wait.get('sources', []))} when the daemon stopped"}
                if outbox.left_sending():
                    note.update(in_doubt=True, channels=["email"])
            with write_transaction(self.engine) as conn:
                if note is not None:
                    name_of_note = _per_period(DELIVERY_RETRY_STATE + REPORT_JOB, REPORT_JOB, label)
                    write_state(conn, name_of_note, json.dumps(note), dt.datetime.now(dt.UTC))
                forget_state(conn, name)

    def _unsent_channels(self, key: str) -> tuple[list[str], list[str]]:
        """The configured channels ``key`` has not gone on and nobody is sending now: (those left
        in doubt, the others)."""
        from sync_agent.notifiers import load_notifiers

        return Outbox.of(self.engine, self.settings, key).unsent([n.channel for n in load_notifiers(self.settings)])

    def _settle(self, job_id: str, what: str) -> None:
        """``what`` went (or waits, for a report): forget its tries and its note."""
        key = (job_id, what)
        with self._guard:
            for table in (self._retries, self._unsure, self._last_error):
                table.pop(key, None)
        self._note_retry(job_id, None, what=what)

    def _note_retry(self, job_id: str, value: dict[str, Any] | None, what: str | None = None) -> None:
        """Keep what ``status`` shows of a failed delivery (``None``: it went, forget it): one note
        per report period (one period's success does not hide another's failure), one for the
        digest. The retry itself lives in the scheduler; a store that cannot be written must not
        stop it."""
        what = what or (value or {}).get("what")
        name = _per_period(DELIVERY_RETRY_STATE + job_id, job_id, what)
        try:
            with write_transaction(self.engine) as conn:
                if value is None:
                    forget_state(conn, name)
                else:
                    # the real time, not the job's: what went in this run must not count as later
                    write_state(conn, name, json.dumps(value), dt.datetime.now(dt.UTC))
        except Exception as exc:
            log.warning("delivery_retry_not_noted", job=job_id, error=f"{type(exc).__name__}: {exc}")

    def _synced_by(self, moment: dt.datetime | None) -> bool:
        """Whether the store's first sync run started by ``moment``: the agent was there then."""
        with read_connection(self.engine) as conn:
            first = conn.execute(select(func.min(sync_runs.c.started_at))).scalar()
        return first is not None and moment is not None and first <= moment

    def _schedule_catch_ups(self, now: dt.datetime) -> None:
        """Send at start what came due while the daemon was down (the outbox says what went)."""
        when = now + self.catch_up_delay
        if any(s.kind == "report" for s in self.specs):
            try:
                period = due_unsent_report(self.engine, self.settings, now)
            except ImportError:  # pragma: no cover - the report package is part of the agent
                period = None
            due_at = None if period is None else report_send_moment(period.end, self.settings)
            if period is not None and not self._synced_by(due_at):
                # a new install: the ward sent this one by hand before the agent existed
                log.info("report_catch_up_skipped", period=period.label,
                         reason="the agent first synced after this report fell due",
                         hint=f"to send it anyway: sync-agent report --period {period.label} --send")
            elif period is not None:
                self.scheduler.add_job(self._wrap(f"{REPORT_JOB}:catch-up", partial(self._report, period)),
                                       trigger=DateTrigger(when, timezone=self.tz),
                                       id=f"{REPORT_JOB}:catch-up", misfire_grace_time=None)
                log.info("report_catch_up_scheduled", period=period.label, at=when.isoformat())
        digest = next((s for s in self.specs if s.kind == "digest"), None)
        if digest is not None:
            today = now.date()
            due = dt.datetime.combine(today, self.settings.alerts.time, tzinfo=self.tz)
            from sync_agent.alerts import digest_key

            if (now > due and self.calendar.is_working_day(today)
                    and not fully_sent(self.engine, self.settings, digest_key(today))):
                self.scheduler.add_job(self._wrap(f"{DIGEST_JOB}:catch-up", partial(self._digest, today)),
                                       trigger=DateTrigger(when, timezone=self.tz),
                                       id=f"{DIGEST_JOB}:catch-up", misfire_grace_time=None)
                log.info("digest_catch_up_scheduled", date=today.isoformat(), at=when.isoformat())

    # --- scheduler events ---------------------------------------------------------------------

    def _on_missed(self, event: JobEvent) -> None:
        run_time = getattr(event, "scheduled_run_time", None)
        once = any(part in event.job_id for part in (":retry", ":catch-up", ":wait:"))
        log.warning("job_missed", job=event.job_id,
                    scheduled=run_time.isoformat() if run_time else None,
                    note="later than its misfire grace time; " + (
                        "a one-time job: not run (a digest's next day carries it)" if once
                        else "the next run is on schedule"))

    def _on_error(self, event: JobExecutionEvent) -> None:
        exc = event.exception
        # a failure of the world outside (SMTP or a source down, the store busy) is said by its
        # error, and a retry repeats it for hours; a traceback is kept for the agent's own faults
        outside = isinstance(exc, WorkFailed | SourceError) or _may_pass(exc) or machine_failure(exc)
        log.error("job_failed", job=event.job_id, error=one_line(exc) if outside else f"{type(exc).__name__}: {exc}",
                  **({} if outside else {"traceback": event.traceback}))

    def _on_max_instances(self, event: JobSubmissionEvent) -> None:
        log.warning("job_skipped_still_running", job=event.job_id)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()


def run_daemon(settings: Settings, engine: Engine, every_seconds: float | None = None) -> int:
    """Run until SIGTERM/SIGINT; the ``run`` command's body."""
    return Daemon(settings, engine, every_seconds=every_seconds).run()


__all__: Sequence[str] = ["Daemon", "JobSpec", "job_specs", "next_working_digest", "run_daemon"]


def _may_pass(exc: BaseException) -> bool:
    """Whether a failed report may go through on a later try: SMTP down or busy (4xx), a store
    busy or its server unreachable, a full disk; not a refusal for good, a read-only or missing
    database, an error of the agent's own."""
    from sqlalchemy.exc import DBAPIError

    from sync_agent.mailer import worth_retrying

    if worth_retrying(exc) or disk_full(exc) or server_state(exc):  # space freed, the server back up
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        text = str(exc.orig).lower()
        return any(word in text for word in ("database is locked", "database table is locked", "busy",
                                             "could not connect", "connection refused", "server closed",
                                             "terminating connection", "deadlock detected",
                                             # at login (a restart, connections used up): no SQLSTATE
                                             "the database system is", "too many connections",
                                             "too many clients", "connection slots are reserved"))
    return False


def _per_period(name: str, job_id: str, what: str | None) -> str:
    """``name`` of a report's retry job or note, one per period (the next period's must not
    replace this one's); a digest has one."""
    return f"{name}:{what}" if job_id == REPORT_JOB and what else name

