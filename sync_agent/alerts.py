"""The daily digest: what the Centre's staff must look at this morning.

The ministries' systems send no alert for a new dossier or one close to its deadline (the
report's problem 2), so the agent does: every working morning, the dossiers new since the last
digest (per source), those due within a few working days, those already overdue, and the flags
raised since the last digest. "Since the last digest" is a point in time kept in
``agent_state`` and moved only after a digest was really sent, so a failed send loses nothing,
in the same transaction as the outbox records it sent, so a crash repeats nothing.

Items are cases (one dossier seen by several systems counts once). Names are masked and no ID
number is ever carried: the digest goes out by email and webhook.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, func, or_, select

from sync_agent.calendar import WorkingCalendar
from sync_agent.config import Settings
from sync_agent.errors import UsageError
from sync_agent.flags import details_text as flag_details_text
from sync_agent.locks import is_held, sync_lock_name
from sync_agent.model import RECEPTION_SOURCE
from sync_agent.privacy import mask_name, redact_text
from sync_agent.redaction import redact_message
from sync_agent.report.vn import FLAG_LABELS, STATUS_LABELS, source_label
from sync_agent.report.vn import date as vn_date
from sync_agent.report.vn import number as vn_number
from sync_agent.report_readiness import report_waiting
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.runs import RUNNING, get_run, last_success
from sync_agent.store.state import forget_state, read_state, read_states, write_state, write_state_once
from sync_agent.store.tables import case_links, cases, deliveries, dossiers, flags, sync_runs

if TYPE_CHECKING:
    from sync_agent.notifiers import Notifier, NotifyOutcome

log = structlog.get_logger("sync_agent.alerts")

#: ``agent_state`` row holding the end instant of the last digest that was sent
LAST_DIGEST_STATE = "alerts.last_digest_at"
#: open statuses (domain.md); a case awaiting the citizen's supplement is not running late
OPEN_STATUSES = ("received", "in_progress", "awaiting_supplement", "awaiting_payment", "suspended")
CLOCK_STOPPED = ("awaiting_supplement",)
#: rows per section in the email; the JSON and webhook carry them all
EMAIL_ROWS_PER_SECTION = 100

@dataclass(frozen=True)
class DigestItem:
    """One dossier (case) in a digest section."""

    source: str
    procedure_code: str
    procedure_name: str | None = None
    reception_code: str | None = None
    source_id: str | None = None
    case_id: int | None = None
    field_name: str | None = None
    status: str | None = None
    applicant: str = ""
    received_on: dt.date | None = None
    due_on: dt.date | None = None
    first_seen_at: dt.datetime | None = None
    working_days_left: int | None = None
    days_overdue: int | None = None

    @property
    def code(self) -> str:
        """What staff search for: the reception code, else the source system's own id."""
        return self.reception_code or self.source_id or (f"#{self.case_id}" if self.case_id else "?")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "case_id": self.case_id, "reception_code": self.reception_code, "source": self.source,
            "source_id": self.source_id, "procedure_code": self.procedure_code,
            "procedure_name": self.procedure_name, "field_name": self.field_name,
            "status": self.status, "applicant": self.applicant,
            "received_on": _iso(self.received_on), "due_on": _iso(self.due_on),
        }
        if self.first_seen_at is not None:
            out["first_seen_at"] = self.first_seen_at.isoformat()
        if self.working_days_left is not None:
            out["working_days_left"] = self.working_days_left
        if self.days_overdue is not None:
            out["days_overdue"] = self.days_overdue
        return out


@dataclass(frozen=True)
class FlagItem:
    """A flag raised since the last digest, with the dossier it is about.

    ``details`` is what reconciliation recorded (a JSON object, or older free text), already
    masked for ID numbers.
    """

    flag_id: int
    kind: str
    raised_at: dt.datetime
    dossier: DigestItem
    details: Mapping[str, Any] | str | None = None

    def as_json(self) -> dict[str, Any]:
        details = dict(self.details) if isinstance(self.details, Mapping) else self.details
        return {"flag_id": self.flag_id, "kind": self.kind, "raised_at": self.raised_at.isoformat(),
                "details": details, **self.dossier.as_json()}

    def details_text(self) -> str:
        """The details in Vietnamese, for the email."""
        if not self.details:
            return ""
        if isinstance(self.details, str):
            return self.details
        return flag_details_text(dict(self.details))


@dataclass(frozen=True)
class StaleSource:
    """An enabled source not synced successfully for ``[report] stale_after_hours``: what the
    digest lists of it may be missing (its last success, in ward time; ``None``: never)."""

    source: str
    last_success: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "last_success": None if self.last_success is None
                else self.last_success.isoformat()}


@dataclass(frozen=True)
class Digest:
    """One day's digest; ``key`` names it in the outbox so it is never sent twice."""

    date: dt.date
    since: dt.datetime
    until: dt.datetime
    new: tuple[DigestItem, ...] = ()
    due_soon: tuple[DigestItem, ...] = ()
    overdue: tuple[DigestItem, ...] = ()
    new_flags: tuple[FlagItem, ...] = ()
    ward_code: str = ""
    ward_name: str = ""
    due_within_working_days: int = 2
    first: bool = field(default=False)
    #: the window ends before the digest was made, at the start of a sync that was running then
    cut_short: bool = False
    #: dossiers first seen in the window that had already ended before it (a source's history
    #: loaded by its first sync): not listed as new, only counted in the texts
    backfilled: int = 0
    #: sources whose data is old when the digest is made (a source down shows no new dossier)
    stale_sources: tuple[StaleSource, ...] = ()
    #: (period label, sources) of a monthly report that waits for sources behind its period
    report_waiting: tuple[str, tuple[str, ...]] | None = None
    #: when it was made (its window may end earlier, cut short): the sources are told as then
    made_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        return digest_key(self.date)

    @property
    def is_empty(self) -> bool:
        return not (self.new or self.due_soon or self.overdue or self.new_flags)

    def new_by_source(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.new:
            out[item.source] = out.get(item.source, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (kv[0] != RECEPTION_SOURCE, kv[0])))

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "due_soon": len(self.due_soon), "overdue": len(self.overdue),
                "new_flags": len(self.new_flags)}

    def as_json(self) -> dict[str, Any]:
        """The shape of ``alerts --format json`` (operations.md), with the sources' state added."""
        waiting = self.report_waiting
        return {
            "date": self.date.isoformat(),
            "new": [i.as_json() for i in self.new],
            "due_soon": [i.as_json() for i in self.due_soon],
            "overdue": [i.as_json() for i in self.overdue],
            "new_flags": [f.as_json() for f in self.new_flags],
            "stale_sources": [s.as_json() for s in self.stale_sources],
            "report_waiting": None if waiting is None else {"period": waiting[0], "sources": list(waiting[1])},
        }


def digest_key(day: dt.date) -> str:
    return f"alerts:{day.isoformat()}"


def _iso(d: dt.date | None) -> str | None:
    return None if d is None else d.isoformat()


# --- state ----------------------------------------------------------------------------------

def last_digest_at(conn: Connection) -> dt.datetime | None:
    """When the window of the last sent digest ended, or None before the first one."""
    value = read_state(conn, LAST_DIGEST_STATE)
    if not value:
        return None
    when = dt.datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


#: ``agent_state`` name prefix of each day's digest window, by digest key: the window is fixed when
#: the digest is first sent, so that a channel sent later (a retry, ``--channel``) carries what the
#: others carried, and "since the last digest" never passes what one of them did not
WINDOW_STATE = "digest_window:"
#: days a digest's window is kept (an older day's digest can no longer be resent)
WINDOW_KEPT_DAYS = 60


@dataclass(frozen=True)
class _Window:
    since: dt.datetime
    until: dt.datetime
    first: bool
    cut_short: bool
    made_at: dt.datetime  # its end when saved before this was kept


def _parse_window(value: str | None) -> _Window | None:
    if not value:
        return None
    w = json.loads(value)
    until = dt.datetime.fromisoformat(w["until"])
    return _Window(dt.datetime.fromisoformat(w["since"]), until, bool(w.get("first")), bool(w.get("cut_short")),
                   dt.datetime.fromisoformat(w["made_at"]) if w.get("made_at") else until)


def _saved_window(conn: Connection, key: str) -> _Window | None:
    return _parse_window(read_state(conn, WINDOW_STATE + key))


def digest_window_saved(engine: Engine, day: dt.date) -> bool:
    """Whether ``day``'s digest went (or was tried) on a window that is still kept."""
    with read_connection(engine) as conn:
        return _saved_window(conn, digest_key(day)) is not None


def _fix_window(engine: Engine, settings: Settings, digest: Digest, now: dt.datetime | None) -> Digest:
    """``digest`` on its day's window: saved now if this is the day's first send, else the saved
    one (the digest rebuilt on it when it was built on another). Two first sends at once (the
    daemon's and a person's) keep the first one's window: every channel carries the same digest."""
    at = now or dt.datetime.now(dt.UTC)
    window = {"since": digest.since.isoformat(), "until": digest.until.isoformat(), "first": digest.first,
              "cut_short": digest.cut_short, "made_at": (digest.made_at or digest.until).isoformat()}
    with write_transaction(engine) as conn:
        saved = _parse_window(write_state_once(conn, WINDOW_STATE + digest.key, json.dumps(window), at))
        for name in read_states(conn, WINDOW_STATE):
            day = dt.date.fromisoformat(name.rsplit(":", 1)[-1])
            if (digest.date - day).days > WINDOW_KEPT_DAYS:
                forget_state(conn, name)
    if saved is None or (saved.since, saved.until, saved.made_at) == (
            digest.since, digest.until, digest.made_at or digest.until):
        return digest
    return build_digest(engine, settings, digest.date)


def mark_digest_sent(engine: Engine, digest: Digest, now: dt.datetime | None = None) -> None:
    """Move "since the last digest" to the end of ``digest``'s window (only ever forward)."""
    with write_transaction(engine) as conn:
        _move_since(conn, digest, now)


def _move_since(conn: Connection, digest: Digest, now: dt.datetime | None) -> None:
    current = last_digest_at(conn)
    if current is not None and current >= digest.until:
        return
    write_state(conn, LAST_DIGEST_STATE, digest.until.astimezone(dt.UTC).isoformat(),
                now or dt.datetime.now(dt.UTC))


def default_since(settings: Settings, calendar: WorkingCalendar, today: dt.date) -> dt.datetime:
    """Before any digest was sent: since the previous working day's digest time."""
    prev = calendar.previous_working_day(today)
    return dt.datetime.combine(prev, settings.alerts.time, tzinfo=settings.agent.timezone)


# --- building -------------------------------------------------------------------------------

def _own_id() -> Any:
    """The source system's own id of the record that gave the case its reception facts."""
    return (select(func.min(dossiers.c.source_id))
            .where(case_links.c.case_id == cases.c.id, dossiers.c.id == case_links.c.dossier_id,
                   dossiers.c.source == cases.c.reception_source)
            .scalar_subquery())


def _case_columns() -> list[Any]:
    own_id = _own_id()
    return [cases.c.id, cases.c.case_key, cases.c.reception_code, cases.c.reception_source, cases.c.procedure_code,
            cases.c.procedure_name, cases.c.field_name, cases.c.status, cases.c.applicant_name,
            cases.c.received_on, cases.c.due_on, cases.c.first_seen_at, own_id.label("own_id")]


def _key_source_id(case_key: str | None) -> str | None:
    """``src:<source>:<source id>`` names its record even when the record is not at hand."""
    if case_key and case_key.startswith("src:"):
        return case_key.split(":", 2)[-1]
    return None


def _item(r: Any, **extra: Any) -> DigestItem:
    return DigestItem(
        case_id=r.id, reception_code=r.reception_code, source=r.reception_source,
        source_id=r.own_id or _key_source_id(r.case_key), procedure_code=r.procedure_code,
        procedure_name=r.procedure_name,
        field_name=r.field_name, status=r.status, applicant=mask_name(r.applicant_name),
        received_on=r.received_on, due_on=r.due_on, **extra,
    )


def build_digest(engine: Engine, settings: Settings, today: dt.date,
                 now: dt.datetime | None = None) -> Digest:
    """The digest for ``today``, covering what appeared between the last sent digest and ``now``."""
    tz = settings.agent.timezone
    now = now or dt.datetime.now(tz)
    made_at = now
    calendar = WorkingCalendar(settings.calendar)
    within = settings.alerts.due_within_working_days
    horizon = calendar.add_working_days(today, within)
    with read_connection(engine) as conn:
        saved = _saved_window(conn, digest_key(today))
        if saved is not None:  # the day's digest went (or was tried) on this window: keep it
            since, now, first, cut_short = saved.since, saved.until, saved.first, saved.cut_short
            made_at = saved.made_at  # and tell the sources as they were then
        else:
            last = last_digest_at(conn)
            since = last if last is not None else default_since(settings, calendar, today)
            since, first = min(since, now), last is None
            syncing = in_flight_since(engine, conn, now)
            cut_short = syncing is not None and syncing < now
            if syncing is not None:  # the texts show the window in the zone of its end
                now = max(since, min(now, syncing)).astimezone(now.tzinfo)
        cols = _case_columns()
        seen = (cases.c.first_seen_at > since) & (cases.c.first_seen_at <= now)
        # a dossier that had already ended before the window is history being loaded (the first
        # sync of a source brings a year of it), not news: counted, not listed
        # (a dossier refused at reception before the window likewise)
        history = ((cases.c.ended_on.is_not(None) & (cases.c.ended_on < since.astimezone(tz).date()))
                   | ((cases.c.status == "not_accepted") & (cases.c.submitted_at < since)))
        new_rows = conn.execute(
            select(*cols).where(seen, ~history)
            .order_by(cases.c.reception_source, cases.c.first_seen_at, cases.c.id)
        ).all()
        backfilled = int(conn.execute(select(func.count()).select_from(cases).where(seen, history))
                         .scalar_one())
        open_ = cases.c.status.in_(OPEN_STATUSES) & cases.c.status.not_in(CLOCK_STOPPED)
        due_rows = conn.execute(
            select(*cols).where(open_, cases.c.due_on >= today, cases.c.due_on <= horizon)
            .order_by(cases.c.due_on, cases.c.id)
        ).all()
        overdue_rows = conn.execute(
            select(*cols).where(open_, cases.c.due_on < today).order_by(cases.c.due_on, cases.c.id)
        ).all()
        flag_items = _new_flags(conn, since, now, tz)
        stale = _stale_sources(conn, settings, made_at)
    waiting = report_waiting(engine)
    return Digest(
        date=today, since=since, until=now,
        # instants in the ward's time, as domain.md gives every time (the store reads them in UTC)
        new=tuple(_item(r, first_seen_at=r.first_seen_at.astimezone(tz)) for r in new_rows),
        due_soon=tuple(_item(r, working_days_left=calendar.working_days_between(today, r.due_on))
                       for r in due_rows),
        overdue=tuple(_item(r, days_overdue=(today - r.due_on).days) for r in overdue_rows),
        new_flags=flag_items,
        ward_code=settings.agent.ward_code, ward_name=settings.agent.ward_name,
        due_within_working_days=within, first=first, cut_short=cut_short, backfilled=backfilled,
        stale_sources=stale,
        report_waiting=None if waiting is None else (str(waiting["period"]), tuple(waiting["sources"])),
        made_at=made_at,
    )


def _stale_sources(conn: Connection, settings: Settings, now: dt.datetime) -> tuple[StaleSource, ...]:
    """The enabled sources whose last successful sync by ``now`` is older than
    ``stale_after_hours`` (the report's measure), in the configuration's order."""
    stale_after = dt.timedelta(hours=settings.report.stale_after_hours)
    tz = settings.agent.timezone
    out = []
    for cs in settings.connectors:
        if not cs.enabled:
            continue
        last = last_success(conn, cs.name, by=now)
        if last is None or now - last > stale_after:
            out.append(StaleSource(cs.name, None if last is None else last.astimezone(tz)))
    return tuple(out)


#: a run left ``running`` this long ago is a dead one whatever its lock file says
IN_FLIGHT_AT_MOST = dt.timedelta(hours=12)


def in_flight_since(engine: Engine, conn: Connection, now: dt.datetime) -> dt.datetime | None:
    """When the earliest sync that was running at ``now`` started, if one was.

    A sync dates the records of a page before it commits them, so a record can be dated before
    a digest's end (``now``, read before the digest's own reconciliation) and be committed after
    that reconciliation read the queue: its case would come later, dated before the end, and the
    next digest starts at that end. A digest's window therefore ends no later than the start of
    any sync that started by ``now`` and either still runs or finished after ``now``: what it
    stored goes in the next digest. A run left ``running`` by a process that is gone is not one.
    """
    r = sync_runs.c
    rows = conn.execute(
        select(r.id, r.source, r.started_at, r.status)
        .where(r.started_at <= now, r.started_at > now - IN_FLIGHT_AT_MOST,
               or_(r.status == RUNNING, r.finished_at > now))
    ).all()
    alive: dict[str, bool] = {}
    starts = []
    for run_id, source, started, status in rows:
        if status == RUNNING:
            if source not in alive:
                alive[source] = is_held(engine, sync_lock_name(source))
            # its lock free: the process is gone, or the sync finished after this snapshot was
            # taken (it holds the lock until its run is recorded): a fresh read tells which
            if not alive[source] and not _finished_after(engine, run_id, now):
                continue
        starts.append(started)
    return min(starts) if starts else None


def _finished_after(engine: Engine, run_id: int, moment: dt.datetime) -> bool:
    with read_connection(engine) as conn:
        run = get_run(conn, run_id)
    return run is not None and run.status != RUNNING and run.finished_at is not None and run.finished_at > moment


def _new_flags(conn: Connection, since: dt.datetime, now: dt.datetime, tz: dt.tzinfo) -> tuple[FlagItem, ...]:
    """Open flags raised in ``(since, now]``, with their case, or their record when caseless."""
    own_id = _own_id()
    d = dossiers.alias("d")
    rows = conn.execute(
        select(flags.c.id.label("flag_id"), flags.c.kind, flags.c.raised_at, flags.c.details,
               flags.c.subject_key,
               cases.c.id, cases.c.case_key, cases.c.reception_code, cases.c.reception_source,
               cases.c.procedure_code,
               cases.c.procedure_name, cases.c.field_name, cases.c.status, cases.c.applicant_name,
               cases.c.received_on, cases.c.due_on, own_id.label("own_id"),
               d.c.source.label("d_source"), d.c.source_id.label("d_source_id"),
               d.c.reception_code.label("d_reception_code"), d.c.procedure_code.label("d_procedure_code"),
               d.c.procedure_name.label("d_procedure_name"), d.c.field_name.label("d_field_name"),
               d.c.status.label("d_status"), d.c.applicant_name.label("d_applicant_name"),
               d.c.received_on.label("d_received_on"), d.c.due_on.label("d_due_on"))
        .select_from(flags.outerjoin(cases, cases.c.id == flags.c.case_id)
                     .outerjoin(d, d.c.id == flags.c.dossier_id))
        .where(flags.c.state == "open", flags.c.raised_at > since, flags.c.raised_at <= now)
        .order_by(flags.c.raised_at, flags.c.id)
    ).all()
    out = []
    for r in rows:
        if r.id is not None:
            item = _item(r)
        elif r.d_source is not None:
            item = DigestItem(
                source=r.d_source, source_id=r.d_source_id, reception_code=r.d_reception_code,
                procedure_code=r.d_procedure_code, procedure_name=r.d_procedure_name,
                field_name=r.d_field_name, status=r.d_status, applicant=mask_name(r.d_applicant_name),
                received_on=r.d_received_on, due_on=r.d_due_on,
            )
        else:  # the subject is gone from the store; say what the flag says
            source, _, sid = str(r.subject_key).removeprefix("src:").partition(":")
            item = DigestItem(source=source or "?", source_id=sid or r.subject_key, procedure_code="")
        out.append(FlagItem(flag_id=r.flag_id, kind=r.kind, raised_at=r.raised_at.astimezone(tz), dossier=item,
                            details=_details(r.details)))
    return tuple(out)


def _details(text: str | None) -> Mapping[str, Any] | str | None:
    """A flag's details: the JSON object reconciliation writes, or free text; ID numbers masked."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return redact_text(text)
    if isinstance(value, dict):
        return {str(k): redact_text(v) if isinstance(v, str) else v for k, v in value.items()}
    return redact_text(text)


# --- rendering ------------------------------------------------------------------------------

def subject(digest: Digest) -> str:
    """The email subject: the ward, the date and the counts, readable in a phone's inbox."""
    c = {k: vn_number(v) for k, v in digest.counts().items()}
    # the first digest's flags are those of the whole history: not "new" in a phone's inbox
    flags_word = "cảnh báo (đối chiếu lần đầu toàn bộ dữ liệu)" if digest.first else "cảnh báo mới"
    # "0 mới" from a source that is down is not "no new dossier"
    stale = " (có hệ thống chưa cập nhật dữ liệu)" if digest.stale_sources else ""
    return (f"[{digest.ward_name}] Bản tin hồ sơ ngày {vn_date(digest.date)}: {c['new']} mới, "
            f"{c['due_soon']} sắp đến hạn, {c['overdue']} quá hạn, {c['new_flags']} {flags_word}{stale}")


def summary_text(digest: Digest) -> str:
    """One short Vietnamese sentence (an SMS gateway's message)."""
    c = {k: vn_number(v) for k, v in digest.counts().items()}
    stale = (f" Lưu ý: {len(digest.stale_sources)} hệ thống chưa cập nhật dữ liệu, số liệu có thể thiếu."
             if digest.stale_sources else "")
    # as the subject says it: the first digest's flags are the whole history's, not a day's
    flags_word = "cảnh báo (đối chiếu lần đầu toàn bộ dữ liệu)" if digest.first else "cảnh báo mới"
    return (f"{digest.ward_name} {vn_date(digest.date)}: {c['new']} hồ sơ mới, {c['due_soon']} hồ sơ "
            f"sắp đến hạn ({digest.due_within_working_days} ngày làm việc), {c['overdue']} hồ sơ quá hạn, "
            f"{c['new_flags']} {flags_word}.{stale}")


#: said by the first digest ever sent: its flags are those the first reconciliation of the whole
#: history raised (the demo's: 1.527), not a day's worth, and staff should not read them as one
FIRST_DIGEST_NOTE = ("Đây là bản tin đầu tiên kể từ khi cài đặt phần mềm: mục “Cảnh báo mới” gồm tất cả cảnh "
                     "báo phát hiện khi đối chiếu lần đầu toàn bộ dữ liệu đã nạp, kể cả hồ sơ của các tháng "
                     "trước, không phải cảnh báo phát sinh trong ngày.")


def _cut_short_note(digest: Digest, zone: dt.tzinfo) -> str:
    end = digest.until.astimezone(zone)
    return (f"Bản tin chỉ tính đến {end:%H:%M} ngày {end:%d/%m/%Y} vì từ lúc đó có hệ thống đang đồng bộ dữ "
            "liệu, chưa xong khi lập bản tin; hồ sơ và cảnh báo mới sau thời điểm đó sẽ có trong bản tin tiếp theo.")


def _source_notes(digest: Digest, zone: dt.tzinfo) -> list[str]:
    """What staff must know of the data behind the digest: stale sources, a report waiting."""
    notes = []
    for s in digest.stale_sources:
        label = source_label(s.source)
        if s.last_success is None:
            notes.append(f"Lưu ý: dữ liệu hệ thống {label} chưa đồng bộ thành công lần nào; bản tin có thể chưa "
                         "có hoặc chưa đủ hồ sơ của hệ thống này. Đề nghị cán bộ CNTT kiểm tra bằng lệnh "
                         "sync-agent status.")
        else:
            last = s.last_success.astimezone(zone)
            notes.append(f"Lưu ý: dữ liệu hệ thống {label} chưa được cập nhật kể từ {last:%H:%M} ngày "
                         f"{last:%d/%m/%Y}; bản tin có thể thiếu hồ sơ mới của hệ thống này, tình trạng và ngày "
                         "hẹn trả của hồ sơ có thể đã thay đổi. Đề nghị cán bộ CNTT kiểm tra bằng lệnh "
                         "sync-agent status.")
    if digest.report_waiting is not None:
        period, behind = digest.report_waiting
        year, month = period.split("-")
        labels = [source_label(s) for s in behind]
        names = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " và " + labels[-1]
        notes.append(f"Lưu ý: báo cáo tháng {month}/{year} chưa được gửi vì đang chờ dữ liệu của hệ thống {names} "
                     "được đồng bộ đến hết kỳ báo cáo; báo cáo sẽ được gửi tự động sau đó.")
    return notes


def _backfill_note(digest: Digest) -> str:
    return (f"Ngoài ra {vn_number(digest.backfilled)} hồ sơ đã kết thúc từ trước được nạp lần đầu từ các hệ thống "
            "(dữ liệu cũ), không liệt kê ở đây.")


def _item_line(i: DigestItem) -> str:
    parts = [i.code, i.procedure_name or i.procedure_code]
    if i.applicant:
        parts.append(i.applicant)
    parts.append(source_label(i.source))
    if i.due_on:
        parts.append(f"hẹn trả {vn_date(i.due_on)}")
    if i.working_days_left is not None:
        parts.append("đến hạn hôm nay" if i.working_days_left == 0
                     else f"còn {i.working_days_left} ngày làm việc")
    if i.days_overdue is not None:
        parts.append(f"quá hạn {vn_number(i.days_overdue)} ngày")
    if i.status:
        parts.append(STATUS_LABELS.get(i.status, i.status))
    return " | ".join(parts)


def _sections(digest: Digest, zone: dt.tzinfo) -> list[tuple[str, str, Sequence[DigestItem | FlagItem]]]:
    """(title, what one item is called, items) per section."""
    since = digest.since.astimezone(zone)
    # the first digest has no previous one to count from: it names where its window starts
    new_since = f"kể từ {since:%H:%M} ngày {since:%d/%m/%Y}" if digest.first else "kể từ bản tin trước"
    return [
        (f"Hồ sơ mới {new_since} ({vn_number(len(digest.new))})", "hồ sơ", digest.new),
        (f"Hồ sơ sắp đến hạn trong {digest.due_within_working_days} ngày làm việc "
         f"({vn_number(len(digest.due_soon))})", "hồ sơ", digest.due_soon),
        (f"Hồ sơ quá hạn, chưa giải quyết ({vn_number(len(digest.overdue))})", "hồ sơ", digest.overdue),
        (f"Cảnh báo mới ({vn_number(len(digest.new_flags))})", "cảnh báo", digest.new_flags),
    ]


def _window(digest: Digest, zone: dt.tzinfo) -> str:
    return (f"Từ {digest.since.astimezone(zone):%H:%M} ngày {digest.since.astimezone(zone):%d/%m/%Y} "
            f"đến {digest.until.astimezone(zone):%H:%M} ngày {digest.until.astimezone(zone):%d/%m/%Y}")


def render_text(digest: Digest, limit: int | None = None, tz: dt.tzinfo | None = None) -> str:
    """The plain-text digest (the ``alerts`` command and the email's text part)."""
    zone = tz or digest.until.tzinfo or dt.UTC
    lines = [
        f"BẢN TIN HỒ SƠ NGÀY {vn_date(digest.date)} - {digest.ward_name}",
        _window(digest, zone),
        "",
    ]
    if digest.cut_short:
        lines += [_cut_short_note(digest, zone), ""]
    for note in _source_notes(digest, zone):
        lines += [note, ""]
    if digest.first:
        lines += [FIRST_DIGEST_NOTE, ""]
    by_source = digest.new_by_source()
    if by_source:
        lines.append("Hồ sơ mới theo hệ thống: " + ", ".join(
            f"{source_label(s)}: {vn_number(n)}" for s, n in by_source.items()))
        lines.append("")
    if digest.backfilled:
        lines.append(_backfill_note(digest))
        lines.append("")
    for title, noun, items in _sections(digest, zone):
        lines.append(title)
        if not items:
            lines.append("  (không có)")
        shown = items if limit is None else items[:limit]
        for it in shown:
            if isinstance(it, FlagItem):
                lines.append(f"  - {FLAG_LABELS.get(it.kind, it.kind)}: {_item_line(it.dossier)}"
                             + (f" ({it.details_text()})" if it.details else ""))
            else:
                lines.append(f"  - {_item_line(it)}")
        if limit is not None and len(items) > limit:
            lines.append(f"  ... và {vn_number(len(items) - limit)} {noun} khác (danh sách đầy đủ: "
                         "cán bộ CNTT xem trên máy chủ)")
        lines.append("")
    lines.append("Tên người nộp đã được che một phần. Thư này do phần mềm đồng bộ dữ liệu gửi tự động.")
    return "\n".join(lines)


def render_html(digest: Digest, limit: int | None = EMAIL_ROWS_PER_SECTION) -> str:
    """The email's HTML part: one table per section."""
    e = html.escape
    zone = digest.until.tzinfo or dt.UTC
    out = [
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\">",
        f"<title>{e(subject(digest))}</title></head>",
        "<body style=\"font-family: Arial, sans-serif; font-size: 14px\">",
        f"<h2>Bản tin hồ sơ ngày {vn_date(digest.date)} - {e(digest.ward_name)}</h2>",
        f"<p>{_window(digest, zone)}.</p>",
    ]
    if digest.cut_short:
        out.append(f"<p>{e(_cut_short_note(digest, zone))}</p>")
    for note in _source_notes(digest, zone):
        out.append(f"<p style=\"color:#b42318\"><b>{e(note)}</b></p>")
    if digest.first:
        out.append(f"<p><b>{e(FIRST_DIGEST_NOTE)}</b></p>")
    by_source = digest.new_by_source()
    if by_source:
        out.append("<p>Hồ sơ mới theo hệ thống: " + ", ".join(
            f"{e(source_label(s))}: <b>{vn_number(n)}</b>" for s, n in by_source.items()) + "</p>")
    if digest.backfilled:
        out.append(f"<p>{e(_backfill_note(digest))}</p>")
    head = ("<tr><th>Mã hồ sơ</th><th>Thủ tục</th><th>Người nộp</th><th>Hệ thống</th>"
            "<th>Ngày hẹn trả</th><th>Tình trạng</th></tr>")
    for title, noun, items in _sections(digest, zone):
        out.append(f"<h3>{e(title)}</h3>")
        if not items:
            out.append("<p><i>Không có.</i></p>")
            continue
        rows = []
        shown = items if limit is None else items[:limit]
        for it in shown:
            dossier = it.dossier if isinstance(it, FlagItem) else it
            state = STATUS_LABELS.get(dossier.status or "", dossier.status or "")
            if isinstance(it, FlagItem):  # the dossier's status too, as the text part says it
                flag = FLAG_LABELS.get(it.kind, it.kind) + (f": {it.details_text()}" if it.details else "")
                state = f"{state} · {flag}" if state else flag
            elif dossier.days_overdue is not None:
                state += f" (quá hạn {vn_number(dossier.days_overdue)} ngày)"
            elif dossier.working_days_left is not None:
                state += f" (còn {dossier.working_days_left} ngày làm việc)"
            rows.append(
                f"<tr><td>{e(dossier.code)}</td>"
                f"<td>{e(dossier.procedure_name or dossier.procedure_code)}</td>"
                f"<td>{e(dossier.applicant)}</td><td>{e(source_label(dossier.source))}</td>"
                f"<td>{vn_date(dossier.due_on, '-')}</td><td>{e(state)}</td></tr>"
            )
        out.append("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\" "
                   "style=\"border-collapse: collapse\">" + head + "".join(rows) + "</table>")
        if limit is not None and len(items) > limit:
            out.append(f"<p>... và {vn_number(len(items) - limit)} {noun} khác (danh sách đầy đủ: "
                       "cán bộ CNTT xem trên máy chủ).</p>")
    out.append("<p style=\"color: #666\">Tên người nộp đã được che một phần. "
               "Thư này do phần mềm đồng bộ dữ liệu gửi tự động.</p></body></html>")
    return "\n".join(out)


def webhook_payload(digest: Digest) -> dict[str, Any]:
    """The JSON a webhook receives: a one-line summary for an SMS gateway, and the whole digest."""
    items = (*digest.new, *digest.due_soon, *digest.overdue, *(f.dossier for f in digest.new_flags))
    named = {i.source for i in items} | {s.source for s in digest.stale_sources} | set(
        digest.report_waiting[1] if digest.report_waiting else ())
    return {
        "type": "sync_agent.alerts.digest",
        "key": digest.key,
        "ward": {"code": digest.ward_code, "name": digest.ward_name},
        "summary": summary_text(digest),
        "counts": digest.counts(),
        "new_by_source": digest.new_by_source(),
        # the names staff read for the sources the digest mentions (its items carry the store's)
        "source_labels": {s: source_label(s) for s in sorted(named - {"?"})},
        "digest": digest.as_json(),
    }


# --- sending --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DigestSendResult:
    """What ``send_digest`` did on each channel."""

    key: str
    outcomes: tuple[NotifyOutcome, ...] = ()

    @property
    def ok(self) -> bool:
        """Every channel has the digest (now or before)."""
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)

    @property
    def sent_now(self) -> bool:
        return any(o.status == "sent" for o in self.outcomes)

    @property
    def failed(self) -> tuple[NotifyOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)


def _named(configured: Sequence[Notifier], name: str) -> list[Notifier]:
    """The channel ``name`` names: as configured, or as ``status`` shows it (a webhook's URL with
    its secrets masked), which must then be one channel's alone."""
    exact = [n for n in configured if n.channel == name]
    chosen = exact or [n for n in configured if redact_message(n.channel) == name]
    if not chosen:
        names = ", ".join(redact_message(n.channel) for n in configured)
        raise UsageError(f"no channel {name}; configured: {names}")
    if len(chosen) > 1:  # one would be sent again with the other
        raise UsageError(f"{len(chosen)} channels are shown as {name} once their secrets are masked: "
                         "name the one meant by its whole URL")
    return chosen


def send_digest(engine: Engine, settings: Settings, digest: Digest, *, force: bool = False,
                now: dt.datetime | None = None, notifiers: Sequence[Notifier] | None = None,
                only: str | None = None) -> DigestSendResult:
    """Deliver ``digest`` on every configured channel (``only``: on that one), each at most once
    (``force`` resends).

    "Since the last digest" moves to the end of this digest's window only when every channel
    succeeded and at least one really sent it now: a digest that already went out this morning
    does not swallow what arrived after it.
    """
    from sync_agent.notifiers import load_notifiers

    configured = list(notifiers) if notifiers is not None else load_notifiers(settings)
    if not configured:
        raise UsageError("no recipients or webhooks configured in [alerts]")
    chosen = configured if only is None else _named(configured, only)
    channels = {n.channel for n in configured}
    digest = _fix_window(engine, settings, digest, now)

    def with_the_last_channel(conn: Connection) -> None:
        # "since" moves in the transaction that records the last channel as sent: a process
        # killed between two transactions would leave the digest delivered and its window open,
        # and the next digest would announce all of it again
        d = deliveries.c
        sent = {ch for ch, status in conn.execute(select(d.channel, d.status).where(d.key == digest.key))
                if status == "sent"}
        if channels <= sent:
            _move_since(conn, digest, now)

    outcomes = tuple(n.deliver(engine, digest, force=force, now=now, on_sent=with_the_last_channel)
                     for n in chosen)
    result = DigestSendResult(key=digest.key, outcomes=outcomes)
    # done already in the outbox's transaction, unless that part failed or a notifier has its own
    if result.ok and result.sent_now and only is None:
        mark_digest_sent(engine, digest, now)
    elif result.ok and result.sent_now:
        with write_transaction(engine) as conn:
            with_the_last_channel(conn)
    # "sent" only when something went now: a second --send logs that it had already gone
    event = "digest_send_failed" if not result.ok else "digest_sent" if result.sent_now else "digest_already_sent"
    log.log(20 if result.ok else 40, event, key=digest.key, counts=digest.counts(),
            since=digest.since.astimezone(digest.until.tzinfo).isoformat(), until=digest.until.isoformat(),
            # "channel: status" lines, not a mapping: two channels masked alike stay two
            channels=[f"{o.channel}: {o.status}" for o in outcomes],
            errors=[o.error for o in result.failed] or None)
    return result


__all__ = [
    "LAST_DIGEST_STATE",
    "Digest",
    "DigestItem",
    "DigestSendResult",
    "FlagItem",
    "build_digest",
    "digest_key",
    "digest_window_saved",
    "last_digest_at",
    "mark_digest_sent",
    "render_html",
    "render_text",
    "send_digest",
    "subject",
    "summary_text",
    "webhook_payload",
]
