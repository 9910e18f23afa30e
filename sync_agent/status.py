"""``sync-agent status``: is the agent healthy, at a glance, with or without the daemon.

The ward's IT officer checks this first when a figure looks wrong. Everything is read from the
store and the configuration: whether a daemon holds the store's lock, each source's last
success, cursor, lag and failures in a row, the open flags, and when each job fires next,
computed from the same triggers the daemon builds (so it works when the daemon is down).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from sync_agent.calendar import WorkingCalendar
from sync_agent.config import Settings
from sync_agent.daemon import (
    DAEMON_LOCK,
    DELIVERY_RETRY_STATE,
    DIGEST_JOB,
    REPORT_JOB,
    JobSpec,
    job_specs,
    next_working_digest,
)
from sync_agent.locks import LockHolder, is_held
from sync_agent.locks import holder as lock_holder
from sync_agent.mailer import FAILED, PREPARING, SENDING, SENT
from sync_agent.redaction import redact_message
from sync_agent.report_readiness import report_waiting
from sync_agent.store import runs as run_store
from sync_agent.store.engine import read_connection
from sync_agent.store.quarantined import HeldCounts, held_counts
from sync_agent.store.tables import agent_state, deliveries
from sync_agent.store.tables import sync_runs as runs_table


@dataclass(frozen=True)
class SourceStatus:
    """One source's health."""

    source: str
    enabled: bool
    every_minutes: int
    last_success: dt.datetime | None
    cursor: dt.datetime | None
    lag: dt.timedelta | None  # now minus the cursor: how old the newest stored change may be
    failures_in_a_row: int
    last_status: str | None
    last_run_at: dt.datetime | None
    last_error: str | None
    stale: bool
    #: its records quarantined and not superseded: missing from every figure until fixed
    quarantined: int = 0
    #: held records an operator acknowledged: still missing, no longer to check (not in the above)
    quarantined_acknowledged: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "enabled": self.enabled, "every_minutes": self.every_minutes,
            "last_success": _iso(self.last_success), "cursor": _iso(self.cursor),
            "lag_seconds": None if self.lag is None else int(self.lag.total_seconds()),
            "failures_in_a_row": self.failures_in_a_row, "last_status": self.last_status,
            "last_run_at": _iso(self.last_run_at), "last_error": self.last_error, "stale": self.stale,
            "quarantined": self.quarantined, "quarantined_acknowledged": self.quarantined_acknowledged,
        }


@dataclass(frozen=True)
class NextJob:
    id: str
    description: str
    next_run: dt.datetime | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "next_run": _iso(self.next_run),
                "note": self.note or None}


@dataclass(frozen=True)
class LastDelivery:
    """The newest outbox row of a kind (the digest, the report): did the last one go out?"""

    key: str
    channel: str
    status: str
    at: dt.datetime
    #: left ``sending`` for longer than any send takes: it may have gone, only a person can tell
    in_doubt: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "channel": self.channel, "status": self.status, "at": self.at.isoformat(),
                "in_doubt": self.in_doubt}

    def resend_command(self) -> str:
        """What resends it on purpose (``--force``), on its channel alone."""
        kind, _, rest = self.key.partition(":")
        if kind == "report":
            return f"sync-agent report --period {rest} --send --force"
        return f"sync-agent alerts --date {rest} --send --force --channel {shlex.quote(self.channel)}"


@dataclass(frozen=True)
class AgentStatus:
    now: dt.datetime
    daemon_running: bool
    #: the process holding the daemon lock, when it can be told
    daemon: LockHolder | None
    sources: tuple[SourceStatus, ...]
    open_flags: Mapping[str, int] = field(default_factory=dict)
    next_jobs: tuple[NextJob, ...] = ()
    last_digest: LastDelivery | None = None
    last_report: LastDelivery | None = None
    #: the report waiting for its sources: ``{"period", "sources", "since"}`` (see the daemon)
    report_waiting: Mapping[str, Any] | None = None
    #: failed deliveries: ``{"job", "attempt", "at"}`` while the daemon will try again,
    #: ``{"job", "attempts", "gave_up_at"}`` once it gave up (a digest whose day is over, a report
    #: failing in a way a wait may not mend); with ``what`` (the period, the digest's day) and
    #: ``error`` (the last failure) when known
    delivery_retries: tuple[Mapping[str, Any], ...] = ()
    #: every delivery left ``sending`` too long (see ``in_doubt_deliveries``)
    in_doubt: tuple[LastDelivery, ...] = ()

    @property
    def healthy(self) -> bool:
        return all(s.failures_in_a_row == 0 and not s.stale for s in self.sources if s.enabled)

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "daemon": {"running": self.daemon_running, "pid": self.daemon.pid if self.daemon else None,
                       "host": self.daemon.host if self.daemon else None},
            "healthy": self.healthy,
            "sources": [s.as_json() for s in self.sources],
            "open_flags": dict(self.open_flags),
            "next_jobs": [j.as_json() for j in self.next_jobs],
            "last_digest": self.last_digest.as_json() if self.last_digest else None,
            "last_report": self.last_report.as_json() if self.last_report else None,
            "report_waiting": dict(self.report_waiting) if self.report_waiting else None,
            "delivery_retries": [dict(r) for r in self.delivery_retries],
            "in_doubt": [r.as_json() for r in self.in_doubt],
        }


def _iso(v: dt.datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def daemon_state(engine: Engine) -> tuple[bool, LockHolder | None]:
    """(running, its process): a daemon is running when the store's daemon lock is held.

    Told without taking the lock: a daemon starting at the instant ``status`` held it would
    refuse to start, as if another one ran."""
    if not is_held(engine, DAEMON_LOCK):
        return False, None
    return True, lock_holder(engine, DAEMON_LOCK)


def open_flag_counts(engine: Engine) -> dict[str, int]:
    """Open flags per kind, every known kind present (zero included)."""
    from sync_agent import flags as flag_store

    with read_connection(engine) as conn:
        return flag_store.open_flag_counts(conn)


#: the least time a row stays ``sending`` before it is called in doubt (see ``in_doubt_after``)
IN_DOUBT_AFTER = dt.timedelta(minutes=15)
#: SMTP operations one attempt may wait on, each up to ``smtp.timeout`` (connect, greeting, TLS,
#: login, envelope, data, quit)
_SMTP_STEPS = 7
#: attempts a webhook makes (``WebhookNotifier``'s default), each up to its timeout plus a pause
_WEBHOOK_ATTEMPTS = 4


def in_doubt_after(settings: Settings) -> dt.timedelta:
    """Longer than the slowest send the configuration allows, every retry and pause included: a
    row still ``sending`` after this belongs to a process that died, or that lost the line after
    the message text went out."""
    from sync_agent.mailer import BACKOFF_MAX

    smtp = settings.smtp
    longest = smtp.max_attempts * (_SMTP_STEPS * smtp.timeout + BACKOFF_MAX) if smtp else 0.0
    for hook in settings.alerts.webhooks:
        longest = max(longest, _WEBHOOK_ATTEMPTS * (hook.timeout + BACKOFF_MAX))
    return max(IN_DOUBT_AFTER, dt.timedelta(seconds=longest))


def last_delivery(engine: Engine, prefix: str, tz: dt.tzinfo, now: dt.datetime | None = None,
                  doubt_after: dt.timedelta = IN_DOUBT_AFTER) -> LastDelivery | None:
    """The newest outbox row whose key starts with ``prefix`` (``alerts:``, ``report:``)."""
    d = deliveries.c
    with read_connection(engine) as conn:
        r = conn.execute(select(d.key, d.channel, d.status, d.updated_at).where(d.key.startswith(prefix))
                         .order_by(d.updated_at.desc(), d.id.desc()).limit(1)).first()
    if r is None:
        return None
    in_doubt = r.status == SENDING and (now or dt.datetime.now(tz)) - r.updated_at > doubt_after
    return LastDelivery(r.key, redact_message(r.channel), r.status, r.updated_at.astimezone(tz), in_doubt)


def in_doubt_deliveries(engine: Engine, tz: dt.tzinfo, now: dt.datetime,
                        doubt_after: dt.timedelta = IN_DOUBT_AFTER) -> tuple[LastDelivery, ...]:
    """Every outbox row left ``sending`` past ``doubt_after``, whatever came after it: each needs
    a person, and a later row of the same kind must not hide it."""
    d = deliveries.c
    with read_connection(engine) as conn:
        rows = conn.execute(select(d.key, d.channel, d.updated_at)
                            .where(d.status == SENDING, d.updated_at < now - doubt_after)
                            .order_by(d.updated_at, d.id)).all()
    return tuple(LastDelivery(r.key, redact_message(r.channel), SENDING, r.updated_at.astimezone(tz), True)
                 for r in rows)


def next_jobs(settings: Settings, engine: Engine, now: dt.datetime) -> tuple[NextJob, ...]:
    """When each configured job fires next.

    Cron jobs come straight from their triggers (the digest skipping non-working days). An
    interval's phase depends on when the daemon started, so a sync's next run is estimated as
    its last run plus the interval ("due now" when that is past).
    """
    calendar = WorkingCalendar(settings.calendar)
    out = []
    with read_connection(engine) as conn:
        last_started = dict(conn.execute(
            select(runs_table.c.source, func.max(runs_table.c.started_at)).group_by(runs_table.c.source)
        ).all())
    spec: JobSpec
    for spec in job_specs(settings, now):
        if spec.kind == "sync" and spec.every is not None:
            last = last_started.get(spec.source)
            if last is None:
                out.append(NextJob(spec.id, spec.description, now, "never synced: at the daemon's start"))
                continue
            when = last.astimezone(settings.agent.timezone) + spec.every
            out.append(NextJob(spec.id, spec.description, max(when, now),
                               "due now" if when <= now else "estimated from the last run"))
        elif spec.kind == "reconcile":
            out.append(NextJob(spec.id, spec.description, None, "follows the syncs"))
        elif spec.kind == "digest":
            out.append(NextJob(spec.id, spec.description, next_working_digest(spec, calendar, now)))
        else:
            out.append(NextJob(spec.id, spec.description, spec.next_fire_time(now)))
    return tuple(out)


def _shown_note(note: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery note as ``status`` shows it: its channels named as everywhere else, masked."""
    return {k: [redact_message(str(c)) for c in v] if k in ("channels", "other_channels") and isinstance(v, list)
            else v for k, v in note.items()}


def collect_status(engine: Engine, settings: Settings, now: dt.datetime | None = None) -> AgentStatus:
    """Everything ``status`` shows."""
    tz = settings.agent.timezone
    now = (now or dt.datetime.now(tz)).astimezone(tz)
    stale_after = dt.timedelta(hours=settings.report.stale_after_hours)
    sources = []
    with read_connection(engine) as conn:
        held = held_counts(conn)
        for cs in settings.connectors:
            h = run_store.source_health(conn, cs.name)
            last = h.last_run
            if last is not None:
                [last] = run_store.seen_now(engine, [last])
            sources.append(SourceStatus(
                source=cs.name, enabled=cs.enabled, every_minutes=cs.every_minutes,
                last_success=h.last_success and h.last_success.astimezone(tz),
                cursor=h.cursor and h.cursor.astimezone(tz),
                lag=None if h.cursor is None else max(dt.timedelta(0), now - h.cursor),
                failures_in_a_row=h.failures_in_a_row,
                last_status=last.status if last else None,
                last_run_at=last.started_at.astimezone(tz) if last else None,
                last_error=last.error if last and last.status != run_store.SUCCESS else None,
                stale=cs.enabled and (h.last_success is None or now - h.last_success > stale_after),
                quarantined=held.get(cs.name, HeldCounts()).to_check,
                quarantined_acknowledged=held.get(cs.name, HeldCounts()).acknowledged,
            ))
    running, holder = daemon_state(engine)
    doubt = in_doubt_after(settings)
    return AgentStatus(now=now, daemon_running=running, daemon=holder, sources=tuple(sources),
                       open_flags=open_flag_counts(engine), next_jobs=next_jobs(settings, engine, now),
                       last_digest=last_delivery(engine, "alerts:", tz, now, doubt),
                       last_report=last_delivery(engine, "report:", tz, now, doubt),
                       report_waiting=report_waiting(engine), delivery_retries=delivery_retries(engine),
                       in_doubt=in_doubt_deliveries(engine, tz, now, doubt))


def delivery_retries(engine: Engine) -> tuple[dict[str, Any], ...]:
    """What the daemon noted of its failed deliveries (see ``Daemon._retry_later``), less those a
    later delivery of the same kind made moot (a person sent it by hand, the next day's digest
    went); their channels named as ``status`` shows them, masked."""
    d = deliveries.c
    out = []
    with read_connection(engine) as conn:
        notes = conn.execute(select(agent_state.c.value, agent_state.c.updated_at)
                             .where(agent_state.c.name.startswith(DELIVERY_RETRY_STATE, autoescape=True))
                             .order_by(agent_state.c.name)).all()
        for value, noted_at in notes:
            note = json.loads(value)
            prefix = _KIND_PREFIX.get(note.get("job", ""), "")
            # a report is settled by its own period's; a digest by any later one (it carries the
            # window the failed one left open)
            same = (d.key == f"{prefix}{note['what']}") if note.get("what") and note.get("job") == REPORT_JOB \
                else d.key.startswith(prefix, autoescape=True)
            went_since = conn.execute(select(d.id).where(same, d.status == SENT, d.sent_at > noted_at)
                                      .limit(1)).first()
            if went_since is None:
                out.append(_shown_note(note))
    return tuple(out)


#: the outbox keys of each delivery job
_KIND_PREFIX = {DIGEST_JOB: "alerts:", REPORT_JOB: "report:"}


def _by_hand(note: Mapping[str, Any]) -> str:
    """How a person sends what the daemon gave up on (one that may have gone already: only after
    checking that it did not, and with ``--force``, which the outbox otherwise refuses)."""
    force = " --force" if note.get("in_doubt") else ""
    check = "check with the recipients that it did not arrive, then " if force else ""
    if note.get("job") == REPORT_JOB:
        period = f" --period {note['what']}" if note.get("what") else ""
        return f"{check}sync-agent report{period} --send{force}"
    if note.get("job") == DIGEST_JOB:
        day = f" --date {note['what']}" if note.get("what") else ""
        # --force resends every channel: only the ones in doubt, by name; the others without it
        doubt = [f"{check}sync-agent alerts --send{day}{force} --channel {shlex.quote(c)}"
                 for c in note.get("channels", [])] if force else []
        others = [f"sync-agent alerts --send{day} --channel {shlex.quote(c)}" for c in note.get("other_channels", [])]
        commands = "; ".join(doubt + others) or f"{check}sync-agent alerts --send{day}{force}"
        return f"{commands} (the next working day's digest carries its dossiers anyway)"
    return "see the log"


def _ago(td: dt.timedelta | None) -> str:
    if td is None:
        return "-"
    s = int(td.total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 3 * 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def render_text(st: AgentStatus) -> str:
    """The ``status`` screen."""
    def t(v: dt.datetime | None) -> str:
        return v.strftime("%Y-%m-%d %H:%M:%S") if v else "never"

    lines = [f"sync-agent status at {st.now:%Y-%m-%d %H:%M:%S %z}"]
    if st.daemon_running:
        lines.append(f"daemon: running{f' ({st.daemon})' if st.daemon else ''}")
    else:
        lines.append("daemon: not running")
    lines.append("")
    lines.append(f"{'source':<20} {'last success':<19}  {'cursor':<19}  {'lag':>7}  {'fails':>5}  last run")
    for s in st.sources:
        if not s.enabled:
            lines.append(f"{s.source:<20} disabled")
            continue
        tail = s.last_status or "no runs yet"
        if s.last_error:
            tail += f": {s.last_error}"
        if s.stale:
            tail += "  [STALE]"
        if s.quarantined:
            tail += f"  [{s.quarantined} quarantined: sync-agent quarantine --source {s.source}]"
        if s.quarantined_acknowledged:
            tail += f"  [{s.quarantined_acknowledged} quarantined, acknowledged]"
        lines.append(f"{s.source:<20} {t(s.last_success):<19}  {t(s.cursor):<19}  {_ago(s.lag):>7}  "
                     f"{s.failures_in_a_row:>5}  {tail}")
    lines.append("")
    total = sum(st.open_flags.values())
    lines.append(f"open flags: {total}" + (" (" + ", ".join(f"{k} {n}" for k, n in st.open_flags.items())
                                            + ")" if st.open_flags else ""))
    for label, last in (("last digest", st.last_digest), ("last report", st.last_report)):
        if last is not None:
            state = (f"{last.status} since {t(last.at)}, no confirmation yet"
                     if last.status == SENDING and not last.in_doubt else f"{last.status} at {t(last.at)}")
            lines.append(f"{label}: {last.key} [{last.channel}] {state}")
    report = st.last_report
    if report is not None and report.status in (PREPARING, FAILED) and not any(
            r.get("job") == REPORT_JOB for r in st.delivery_retries):
        lines.append(f"{report.key} has not gone: {report.resend_command().removesuffix(' --force')}")
    for row in st.in_doubt:
        lines.append(f"{row.key} [{row.channel}] may have been sent: no confirmation since {t(row.at)}; "
                     f"ask the recipients, and if it did not arrive: {row.resend_command()}")
    if st.report_waiting:
        w = st.report_waiting
        since = t(dt.datetime.fromisoformat(w["since"]))
        lines.append(f"report {w['period']} WAITING since {since}: not read past the period's end yet: "
                     f"{', '.join(w['sources'])}")
    for r in st.delivery_retries:
        def local(key: str, r: Mapping[str, Any] = r) -> str:
            return t(dt.datetime.fromisoformat(r[key]).astimezone(st.now.tzinfo))

        failure = f" ({r['error']})" if r.get("error") else ""
        if "at" in r and not st.daemon_running:  # its retry went with it
            lines.append(f"{r['job']}: delivery failed{failure}; the daemon stopped before its try at "
                         f"{local('at')}: its next start catches up the latest report and today's digest "
                         f"if still due and not in doubt; otherwise: {_by_hand(r)}")
        elif "at" in r:
            lines.append(f"{r['job']}: delivery failed{failure}; the daemon tries again at {local('at')} "
                         f"(try {r['attempt']})")
        else:
            lines.append(f"{r['job']}: delivery failed{failure}; the daemon gave up after {r['attempts']} more "
                         f"tries at {local('gave_up_at')}; send it by hand: {_by_hand(r)}")
    lines.append("")
    lines.append("next jobs:")
    for j in st.next_jobs:
        when = j.next_run.strftime("%Y-%m-%d %H:%M %z") if j.next_run else "-"
        note = f"  ({j.note})" if j.note else ""
        lines.append(f"  {j.id:<28} {when:<23} {j.description}{note}")
    return "\n".join(lines)
