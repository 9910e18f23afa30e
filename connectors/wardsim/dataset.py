"""A deterministic, lazily generated year of a ward's dossiers, as the four source systems hold them.

Every dossier is drawn from its own ``random.Random`` seeded by (seed, index), so any dossier can be
regenerated on its own: the servers keep only each record's id and version times and render a
record's wire payload when a page asks for it. That is what lets a million records fit in memory
and start in seconds, and what makes the wire output byte-identical for the same seed, size and
``now``. Ground truth (which records form one dossier, which scenario it plays) comes from the
same draws, so tests can check the agent against it.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from connectors.wardsim import catalogue
from connectors.wardsim.catalogue import DEFAULT_WARD_CODE, DEFAULT_WARD_NAME, SOURCES, Procedure
from sync_agent.model import Status

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
#: Vietnam has no daylight saving: local time is always UTC+7
LOCAL_OFFSET = 7 * 3600
_DAY = 86400
_EPOCH_DATE = dt.date(1970, 1, 1)
_MORNING = (7 * 3600 + 1800, 4 * 3600)  # 07:30, four hours
_AFTERNOON = (13 * 3600 + 1800, 3 * 3600 + 1800)  # 13:30, three and a half hours
_WORK_SECONDS = _MORNING[1] + _AFTERNOON[1]
_MINUTE = 60
_FOREVER = 100 * 365 * _DAY
_HOUR = 3600


class Scenario(StrEnum):
    """What a dossier exercises in the agent's reconciliation (a dossier may play several)."""

    #: received at the Centre and processed in a ministry system; the ministry record cites the code
    LINKED = "linked"
    #: only in one_stop (chứng thực, đất đai, bảo trợ xã hội, or refused at reception)
    ONE_STOP_ONLY = "one_stop_only"
    #: only in a ministry system, citing no reception code (the report's problem 1)
    BYPASSED = "bypassed_reception"
    #: the ministry record cites no code but belongs to a one_stop record (same applicant ID, same
    #: procedure, received within two days)
    INFERRED_LINK = "inferred_link"
    #: the ministry record cites a reception code that no one_stop record has
    UNKNOWN_RECEPTION_CODE = "unknown_reception_code"
    #: the ministry says the dossier ended while the one_stop copy stayed open for days
    STALE_ONE_STOP = "stale_one_stop"
    #: the records show a completion time before the reception time
    COMPLETION_BEFORE_RECEPTION = "completion_before_reception"
    #: a counted dossier whose records carry no due date
    MISSING_DUE_DATE = "missing_due_date"
    #: some version became visible at its source later than its wire update time
    LATE_UPDATE = "late_update"
    #: refused at reception (one_stop status 3), never counted
    NOT_ACCEPTED = "not_accepted"


@dataclass(frozen=True, slots=True)
class Rates:
    """Probabilities the generator draws with; the defaults follow the seed report's ward."""

    online: float = 0.99
    postal: float = 0.002
    #: civil-status / residence dossiers filed on the ministry's own portal, never at the Centre
    portal_civil_status: float = 0.03
    portal_residence: float = 0.05
    #: household-business dossiers that came through the Centre (most bypass it)
    household_business_via_centre: float = 0.25
    #: of ministry dossiers received at the Centre
    inferred_link: float = 0.02
    unknown_reception_code: float = 0.005
    #: of ministry dossiers received at the Centre that ended
    stale_one_stop: float = 0.005
    completion_before_reception: float = 0.001
    missing_due_date: float = 0.002
    #: of the one_stop copies of ministry updates
    late_update: float = 0.02
    not_accepted: float = 0.002
    supplement: float = 0.015
    awaiting_payment: float = 0.3
    rejected: float = 0.0003
    withdrawn: float = 0.0003
    overdue: float = 0.0003
    on_time: float = 0.0005
    undelivered: float = 0.08
    digitised: float = 0.995
    data_reused: float = 0.996
    paid_online: float = 0.995

    @classmethod
    def scenario_heavy(cls) -> Rates:
        """Rates high enough that a few hundred dossiers hold every scenario (for tests)."""
        return cls(
            online=0.9,
            postal=0.03,
            portal_civil_status=0.1,
            portal_residence=0.1,
            inferred_link=0.1,
            unknown_reception_code=0.06,
            stale_one_stop=0.12,
            completion_before_reception=0.02,
            missing_due_date=0.02,
            late_update=0.1,
            not_accepted=0.02,
            supplement=0.05,
            rejected=0.01,
            withdrawn=0.01,
            overdue=0.01,
            on_time=0.02,
        )


@dataclass(frozen=True, slots=True)
class RecordVersion:
    """One version of one source record, in source-neutral terms; each simulator renders it.

    Times are UTC epoch seconds (``None``: not set); render them with ``format_local``.
    """

    source: str
    record_id: str
    ward_code: str
    #: one_stop: its own code; a ministry record: the code it cites, or None
    reception_code: str | None
    procedure: Procedure
    status: Status
    #: the one_stop ``TrangThaiHoSo`` used for a rejected dossier (rejection is shown by ``NgayTuChoi``)
    rejection_code: str
    channel: str  # "online" | "direct" | "postal"
    applicant_name: str
    applicant_id: str
    applicant_type: int
    business_name: str
    business_code: str
    summary: str
    submitted_at: int | None
    received_at: int | None
    due_at: int | None
    #: completion (resolved/delivered), rejection or withdrawal time as the record shows it
    ended_at: int | None
    delivered_at: int | None
    documents: tuple[tuple[str, bool], ...]
    results: tuple[tuple[str, str], ...]
    fee: int
    fee_name: str
    #: a zero-fee line is listed anyway (one_stop) / an explicit zero fee object (residence)
    fee_listed: bool
    paid_online: bool
    payment_gateway: str  # one_stop DuocThanhToanTrucTuyen: "1", "2" or "3"
    digitised: bool
    data_reused: bool
    processing_unit: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class RecordRef:
    """One source record of a case, and the reception code it carries (own or cited)."""

    source: str
    source_id: str
    reception_code: str | None


@dataclass(frozen=True, slots=True)
class CaseTruth:
    """What the agent should find about one dossier (a case) at the data set's ``now``.

    ``status``, ``due_at`` and ``ended_at`` are as the sources show them at ``now`` (``ended_at``
    may precede ``received_at`` in the data-quality scenario); ``received_at`` and ``channel`` are
    the reception facts (one_stop's when it has the dossier). ``digitised`` is the dossier's own
    property: one_stop only shows it once a result exists.
    """

    index: int
    field_code: str
    procedure_code: str
    scenarios: frozenset[Scenario]
    #: the one_stop code of the case, None when one_stop has no record of it
    reception_code: str | None
    records: tuple[RecordRef, ...]
    inferred: bool
    status: Status
    channel: str
    submitted_at: dt.datetime | None
    received_at: dt.datetime | None
    due_at: dt.datetime | None
    ended_at: dt.datetime | None
    #: when the ministry ended the dossier while one_stop stayed open, and when one_stop caught up
    #: (None: still stale at ``now``)
    stale_since: dt.datetime | None
    stale_until: dt.datetime | None
    digitised: bool
    data_reused: bool
    fee_required: bool
    paid_online: bool

    def record(self, source: str) -> RecordRef | None:
        return next((r for r in self.records if r.source == source), None)


@dataclass(frozen=True, slots=True)
class SourceSkeleton:
    """A source's records as the server indexes them: ids, and each version's update/visible times.

    Record ``k`` has versions ``ver_start[k]`` to ``ver_start[k + 1] - 1``; ``refs[k]`` is the
    dossier index that regenerates it.
    """

    ids: list[str]
    refs: array[int]
    ver_start: array[int]
    ver_updated: array[int]
    ver_visible: array[int]


class Renderer(Protocol):
    def __call__(self, version: RecordVersion) -> dict[str, Any]: ...


def to_datetime(ts: int | None) -> dt.datetime | None:
    """Epoch seconds to an aware local datetime."""
    return None if ts is None else dt.datetime.fromtimestamp(ts, TZ)


def to_epoch(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return int(moment.timestamp())


def format_local(ts: int, pattern: str) -> str:
    """Render epoch seconds in local time with a ``strftime`` pattern (fast: no tz lookups)."""
    return time.strftime(pattern, time.gmtime(ts + LOCAL_OFFSET))


# --- internal plan of one dossier ---------------------------------------------------------------

_ENDED = frozenset({Status.RESOLVED, Status.DELIVERED, Status.REJECTED, Status.WITHDRAWN})
_DATA_QUALITY = frozenset({Scenario.COMPLETION_BEFORE_RECEPTION, Scenario.MISSING_DUE_DATE})


# internal value types are NamedTuples: built a million times, and a frozen dataclass costs more

#: (when, status, due date at that point)
_Event = tuple[int, Status, int | None]


class _SourceView(NamedTuple):
    source: str
    record_id: str
    reception_code: str | None
    received_at: int | None
    #: (updated, visible, event index) per version
    versions: tuple[tuple[int, int, int], ...]


class _Plan(NamedTuple):
    number: int
    procedure: Procedure
    channel: str
    scenarios: frozenset[Scenario]
    own_code: str
    submitted_at: int
    received_at: int
    events: tuple[_Event, ...]
    ended_at: int | None
    ended_shown: int | None
    views: tuple[_SourceView, ...]
    stale_since: int | None
    stale_until: int | None
    details: _Details | None


class _Details(NamedTuple):
    name: str
    id_number: str
    applicant_type: int
    business_name: str
    business_code: str
    fee: int
    fee_listed: bool
    paid_online: bool
    gateway: str
    digitised: bool
    data_reused: bool
    rejection_code: str
    omit_withdrawal_time: bool


_SUBMITTED = Status.SUBMITTED
_NOT_ACCEPTED = Status.NOT_ACCEPTED
_RECEIVED = Status.RECEIVED
_IN_PROGRESS = Status.IN_PROGRESS
_AWAITING_SUPPLEMENT = Status.AWAITING_SUPPLEMENT
_AWAITING_PAYMENT = Status.AWAITING_PAYMENT
_RESOLVED = Status.RESOLVED
_DELIVERED = Status.DELIVERED
_REJECTED = Status.REJECTED
_WITHDRAWN = Status.WITHDRAWN
_S_ONE_STOP_ONLY = Scenario.ONE_STOP_ONLY
_S_BYPASSED = Scenario.BYPASSED
_S_INFERRED_LINK = Scenario.INFERRED_LINK
_S_UNKNOWN_RECEPTION_CODE = Scenario.UNKNOWN_RECEPTION_CODE
_S_LINKED = Scenario.LINKED
_S_NOT_ACCEPTED = Scenario.NOT_ACCEPTED
_S_MISSING_DUE_DATE = Scenario.MISSING_DUE_DATE
_S_COMPLETION_BEFORE_RECEPTION = Scenario.COMPLETION_BEFORE_RECEPTION
_S_STALE_ONE_STOP = Scenario.STALE_ONE_STOP
_S_LATE_UPDATE = Scenario.LATE_UPDATE


def _cumulative(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [c / total for c in accumulate(weights)]


def _pick(cum: list[float], u: float) -> int:
    return min(bisect_right(cum, u), len(cum) - 1)


def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


class WardDataset:
    """A ward's year of dossiers ending at ``now``; build it with ``generate``.

    Nothing per dossier is kept: ``skeleton`` walks all dossiers once per source (cached),
    ``version``/``item`` regenerate one dossier on demand.
    """

    def __init__(
        self,
        seed: int,
        size: int,
        now: dt.datetime,
        ward_code: str = DEFAULT_WARD_CODE,
        ward_name: str = DEFAULT_WARD_NAME,
        only: str | None = None,
        rates: Rates | None = None,
        days: int = 365,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if size < 0 or days < 1:
            raise ValueError("size must be >= 0 and days >= 1")
        if only is not None and only not in SOURCES:
            raise ValueError(f"unknown source {only!r} (known: {', '.join(SOURCES)})")
        self.seed = seed
        self.size = size
        self.now = now.astimezone(TZ).replace(microsecond=0)
        self.now_ts = to_epoch(self.now)
        self.ward_code = ward_code
        self.ward_name = ward_name
        self.only = only
        self.rates = rates or Rates()
        if only is not None:
            # one record per dossier in that source: cross-source scenarios make no sense there
            self.rates = replace(
                self.rates,
                inferred_link=0.0,
                unknown_reception_code=0.0,
                stale_one_stop=0.0,
                not_accepted=0.0,
                portal_civil_status=0.0,
                portal_residence=0.0,
                household_business_via_centre=1.0 if only == "one_stop" else 0.0,
            )
        self.days = days
        self.sources: tuple[str, ...] = (only,) if only else SOURCES
        self._build_calendar()
        self._build_catalogue()
        self._skeletons: dict[str, SourceSkeleton] = {}

    # --- set-up ---------------------------------------------------------------------------------

    def _build_calendar(self) -> None:
        grng = random.Random(f"wardsim-days:{self.seed}")
        last_day = (self.now_ts + LOCAL_OFFSET) // _DAY
        now_tod = (self.now_ts + LOCAL_OFFSET) % _DAY
        day_nos: list[int] = []
        weights: list[float] = []
        spans: list[int] = []
        for day_no in range(last_day - self.days + 1, last_day + 1):
            day = _EPOCH_DATE + dt.timedelta(days=day_no)
            jitter = grng.uniform(0.85, 1.15)
            if not catalogue.is_working_day(day):
                continue
            span = _WORK_SECONDS if day_no < last_day else _worked_before(now_tod)
            if span <= 0:
                continue
            day_nos.append(day_no)
            spans.append(span)
            weights.append(jitter * (1.15 if day.weekday() == 0 else 1.0) * span / _WORK_SECONDS)
        if not day_nos and self.size:
            raise ValueError("no working time in the requested window: widen days or move now")
        total = sum(weights) or 1.0
        firsts = [round(self.size * c / total) for c in accumulate([0.0, *weights])]
        self._day_nos = day_nos
        self._day_first = firsts[:-1]
        self._day_count = [b - a for a, b in pairwise(firsts)]
        self._day_span = spans
        self._day_label = [(_EPOCH_DATE + dt.timedelta(days=d)).strftime("%y%m%d") for d in day_nos]
        self._seq_width = max(4, len(str(max(self._day_count, default=0))))
        first = (day_nos[0] if day_nos else last_day) - 30
        self._workdays = [
            d
            for d in range(first, last_day + 400)
            if catalogue.is_working_day(_EPOCH_DATE + dt.timedelta(days=d))
        ]

    def _build_catalogue(self) -> None:
        fields = [f for f in catalogue.FIELD_WEIGHTS if self._field_allowed(f)]
        self._fields = fields
        self._field_cum = _cumulative([catalogue.FIELD_WEIGHTS[f] for f in fields])
        self._procs: dict[str, list[Procedure]] = {
            f: [p for p in catalogue.PROCEDURES if p.field_code == f] for f in fields
        }
        self._proc_cum = {f: _cumulative([p.weight for p in ps]) for f, ps in self._procs.items()}
        self._family_cum = _cumulative([w for _, w in catalogue.FAMILY_NAMES])
        self._middle_m_cum = _cumulative([w for _, w in catalogue.MIDDLE_NAMES_MALE])
        self._middle_f_cum = _cumulative([w for _, w in catalogue.MIDDLE_NAMES_FEMALE])
        self._province_cum = _cumulative([w for _, w in catalogue.PROVINCE_CODES])

    def _field_allowed(self, field_code: str) -> bool:
        if self.only is None or self.only == "one_stop":
            return True
        return catalogue.FIELD_MINISTRY[field_code] == self.only

    # --- time helpers -----------------------------------------------------------------------------

    def _add_working_days(self, ts: int, n: int) -> int:
        """The same local time of day, ``n`` working days later."""
        local = ts + LOCAL_OFFSET
        day_no, tod = divmod(local, _DAY)
        idx = bisect_right(self._workdays, day_no) - 1
        target = self._workdays[min(max(idx + n, 0), len(self._workdays) - 1)]
        return target * _DAY + tod - LOCAL_OFFSET

    def _working_time(self, day_ts: int, rng: random.Random) -> int:
        """A random time within working hours on the local day of ``day_ts``."""
        day_start = (day_ts + LOCAL_OFFSET) // _DAY * _DAY - LOCAL_OFFSET
        return day_start + _MORNING[0] + int(rng.random() * (_AFTERNOON[0] + _AFTERNOON[1] - _MORNING[0]))

    # --- one dossier ------------------------------------------------------------------------------

    def _plan(self, i: int, details: bool = True) -> _Plan:
        """One dossier's life: which systems hold it, its events, each record's versions."""
        if not 0 <= i < self.size:
            raise IndexError(i)
        rates = self.rates
        rng = random.Random(self.seed * (1 << 40) + i)
        r = rng.random
        uuid_bits = rng.getrandbits(128)
        field = self._fields[_pick(self._field_cum, r())]
        proc = self._procs[field][_pick(self._proc_cum[field], r())]
        ministry = catalogue.FIELD_MINISTRY[field]

        u = r()
        channel = "online" if u < rates.online else "postal" if u < rates.online + rates.postal else "direct"
        if channel == "postal" and ministry == "household_business":
            channel = "direct"

        # reception: index order is time order; the day's sequence number is the code's suffix
        day = bisect_right(self._day_first, i) - 1
        seq = i - self._day_first[day]
        offset = int((seq + r()) / self._day_count[day] * self._day_span[day])
        in_day = _MORNING[0] + offset if offset < _MORNING[1] else _AFTERNOON[0] + offset - _MORNING[1]
        t_recv = self._day_nos[day] * _DAY + in_day - LOCAL_OFFSET
        t_sub = t_recv - (300 + int(r() ** 2 * 18 * _HOUR)) if channel == "online" else t_recv
        label = self._day_label[day]
        own_code = f"H31.{self.ward_code}-{label}-{seq + 1:0{self._seq_width}d}"

        # which systems hold it, and how the ministry record links
        scenarios: set[Scenario] = set()
        held_os = True
        held_min = ministry is not None
        cites = held_min
        if ministry is None:
            scenarios.add(_S_ONE_STOP_ONLY)
        else:
            if ministry == "household_business":
                via_centre = r() < rates.household_business_via_centre
            else:
                portal = rates.portal_civil_status if ministry == "civil_status" else rates.portal_residence
                via_centre = r() >= portal
            if not via_centre:
                held_os = cites = False
                scenarios.add(_S_BYPASSED)
            else:
                u = r()
                if u < rates.inferred_link:
                    cites = False
                    scenarios.add(_S_INFERRED_LINK)
                elif u < rates.inferred_link + rates.unknown_reception_code:
                    held_os = False
                    scenarios.add(_S_UNKNOWN_RECEPTION_CODE)
                else:
                    scenarios.add(_S_LINKED)
        not_accepted = held_os and channel == "online" and r() < rates.not_accepted
        if not_accepted:
            held_min = cites = False
            scenarios = {_S_ONE_STOP_ONLY, _S_NOT_ACCEPTED}

        # the ministry's own reception (transfer from the Centre takes minutes, or a day when the
        # clerk forgot to cite the code)
        if held_os and held_min:
            transfer = (
                2 * _MINUTE + int(r() * 30 * _HOUR)
                if _S_INFERRED_LINK in scenarios
                else _MINUTE + int(r() * 14 * _MINUTE)
            )
        else:
            transfer = 0
        t_mrecv = t_recv + transfer
        missing_due = r() < rates.missing_due_date
        due = None if missing_due else self._add_working_days(t_recv, proc.working_days)

        events: list[_Event] = []
        if channel == "online":
            events.append((t_sub, _SUBMITTED, None))
        ended_at: int | None = None
        if not_accepted:
            events.append((t_recv, _NOT_ACCEPTED, None))
            ended_at = t_recv
        else:
            events.append((t_recv, _RECEIVED, due))
            t = t_mrecv + 2 * _MINUTE + int(r() * 38 * _MINUTE)
            events.append((t, _IN_PROGRESS, due))
            u = r()
            outcome = (
                _REJECTED
                if u < rates.rejected
                else _WITHDRAWN
                if u < rates.rejected + rates.withdrawn
                else _RESOLVED
            )
            waits: list[Status] = []
            if r() < rates.supplement:
                waits.append(_AWAITING_SUPPLEMENT)
            if field == "DATDAI" and proc.fee_direct and r() < rates.awaiting_payment:
                waits.append(_AWAITING_PAYMENT)
            for wait in waits:
                t += _HOUR + int(r() * 19 * _HOUR)
                events.append((t, wait, due))
                t += _DAY + int(r() * 5 * _DAY)
                # the clock restarts when the citizen supplements or pays
                due = None if missing_due else self._add_working_days(t, proc.working_days)
                events.append((t, _IN_PROGRESS, due))
            if outcome is not _RESOLVED:
                ended_at = t + _HOUR + int(r() * 47 * _HOUR)
                events.append((ended_at, outcome, due))
            else:
                ended_at = self._completion(t, due, proc, rng)
                events.append((ended_at, _RESOLVED, due))
                if r() >= rates.undelivered:
                    gap = (
                        5 * _MINUTE + int(r() * 115 * _MINUTE)
                        if channel == "online"
                        else _HOUR + int(r() * 71 * _HOUR)
                    )
                    events.append((ended_at + gap, _DELIVERED, due))
        if missing_due and not not_accepted:
            scenarios.add(_S_MISSING_DUE_DATE)
        events = [e for e in events if e[0] <= self.now_ts]
        final = events[-1][1]
        if final not in _ENDED:
            ended_at = None

        ended_shown = ended_at
        if final in (_RESOLVED, _DELIVERED) and r() < rates.completion_before_reception:
            ended_shown = t_recv - _DAY - int(r() * 2 * _DAY)
            scenarios.add(_S_COMPLETION_BEFORE_RECEPTION)

        # per-source versions
        views: list[_SourceView] = []
        stale_since = stale_until = None
        now_ts = self.now_ts
        if held_min and ministry is not None and ministry in self.sources:
            m_versions: list[tuple[int, int, int]] = []
            for k, (at, status, _due) in enumerate(events):
                if status is _SUBMITTED and (held_os or ministry != "household_business"):
                    continue  # the ministry sees the dossier from its reception, except HKD filings
                updated = t_mrecv if status is _RECEIVED else at
                if updated > now_ts:
                    break
                m_versions.append((updated, updated, k))
            if m_versions:
                if ministry == "civil_status":
                    mid = f"HT-{self.ward_code}-{label}-{i + 1:07d}"
                elif ministry == "residence":
                    mid = str(uuid.UUID(int=uuid_bits, version=4))
                else:
                    mid = f"HKD-{self.ward_code}-{label}-{i + 1:07d}"
                views.append(
                    _SourceView(ministry, mid, own_code if cites else None, t_mrecv, tuple(m_versions))
                )
            elif held_os:
                # transferred after ``now``: for the moment only the Centre has it
                scenarios = {_S_ONE_STOP_ONLY} | (scenarios & _DATA_QUALITY)
        if held_os and "one_stop" in self.sources:
            os_versions: list[tuple[int, int, int]] = []
            stale = held_min and final in _ENDED and r() < rates.stale_one_stop
            stale_delay = 0
            if stale:
                # the copy catches up after days, or stays stuck until someone fixes it by hand
                stale_delay = 36 * _HOUR + int(r() * 156 * _HOUR) if r() < 0.6 else _FOREVER
            last = 0
            late = False
            for k, (at, status, _due) in enumerate(events):
                updated = visible = at
                if held_min and status is not _SUBMITTED and status is not _RECEIVED:
                    # the Centre's system copies each ministry update some minutes later
                    updated = at + _MINUTE + int(r() * 29 * _MINUTE)
                    if stale and status in _ENDED:
                        stale_since = stale_since or at
                        updated = max(updated, at + stale_delay)
                    visible = updated
                    if r() < rates.late_update:
                        visible = min(updated + 5 * _MINUTE + int(r() * 50 * _MINUTE), now_ts)
                updated = max(updated, last + 1)
                if updated > now_ts:
                    break
                late = late or visible > updated
                last = updated
                os_versions.append((updated, max(visible, updated), k))
            if stale_since is not None:
                scenarios.add(_S_STALE_ONE_STOP)
                stale_until = next((u_ for u_, _, k in os_versions if events[k][1] in _ENDED), None)
            if late:
                scenarios.add(_S_LATE_UPDATE)
            views.insert(0, _SourceView("one_stop", own_code, own_code, t_recv, tuple(os_versions)))
        return _Plan(
            number=i,
            procedure=proc,
            channel=channel,
            scenarios=frozenset(scenarios),
            own_code=own_code,
            submitted_at=t_sub,
            received_at=t_recv,
            events=tuple(events),
            ended_at=ended_at,
            ended_shown=ended_shown,
            views=tuple(views),
            stale_since=stale_since,
            stale_until=stale_until,
            details=self._details(rng, proc, channel) if details else None,
        )

    def _completion(self, start: int, due: int | None, proc: Procedure, rng: random.Random) -> int:
        """Most dossiers end days before their due date (the seed: 4,871 of 4,874 early)."""
        rates = self.rates
        due_ref = due if due is not None else self._add_working_days(start, proc.working_days)
        u = rng.random()
        if u < rates.overdue:
            day = self._add_working_days(due_ref, 1 + int(rng.random() * 3))
        elif u < rates.overdue + rates.on_time:
            day = due_ref
        else:
            start_day = (start + LOCAL_OFFSET) // _DAY
            due_day = (due_ref + LOCAL_OFFSET) // _DAY
            room = due_day - start_day
            if room <= 1 or rng.random() < 0.88:
                return self._same_day(start, rng)
            day = self._add_working_days(start, 1 + int(rng.random() * max(room - 1, 1)))
            if (day + LOCAL_OFFSET) // _DAY >= due_day:
                return self._same_day(start, rng)
        return max(self._working_time(day, rng), start + 10 * _MINUTE)

    @staticmethod
    def _same_day(start: int, rng: random.Random) -> int:
        """Done the same day: within four hours, by 18:00 when there is time for it."""
        evening = (start + LOCAL_OFFSET) // _DAY * _DAY - LOCAL_OFFSET + 18 * _HOUR
        return start + _uniform_int(rng, 10 * _MINUTE, min(4 * _HOUR, max(30 * _MINUTE, evening - start)))

    # --- details (drawn after the plan, only when a record is rendered) --------------------------

    def _person(self, rng: random.Random) -> tuple[str, str]:
        r = rng.random
        female = r() < 0.55
        family = catalogue.FAMILY_NAMES[_pick(self._family_cum, r())][0]
        middles = catalogue.MIDDLE_NAMES_FEMALE if female else catalogue.MIDDLE_NAMES_MALE
        middle = middles[_pick(self._middle_f_cum if female else self._middle_m_cum, r())][0]
        givens = catalogue.GIVEN_NAMES_FEMALE if female else catalogue.GIVEN_NAMES_MALE
        given = givens[int(r() * len(givens))]
        province = catalogue.PROVINCE_CODES[_pick(self._province_cum, r())][0]
        age = 18 + int(r() * r() * 62) + int(r() * 10)
        year = self.now.year - age
        century = (0 if year < 2000 else 2) + (1 if female else 0)
        digits = f"{province}{century}{year % 100:02d}{int(r() * 1_000_000):06d}"
        return f"{family} {middle} {given}", digits

    def version(self, source: str, index: int, k: int = -1) -> RecordVersion:
        """Version ``k`` (default: the latest) of ``source``'s record of dossier ``index``."""
        plan = self._plan(index)
        view = next((v for v in plan.views if v.source == source), None)
        if view is None:
            raise KeyError(f"dossier {index} has no {source} record")
        return self._version(plan, view, k)

    def _details(self, rng: random.Random, proc: Procedure, channel: str) -> _Details:
        """Everything about the dossier that does not change between versions (drawn after the plan)."""
        r = rng.random
        name, id_number = self._person(rng)
        applicant_type = 2 if proc.field_code == "CHUNGTHUC" and r() < 0.04 else 1
        business_name = business_code = ""
        if proc.field_code == "DKKD":
            trade = catalogue.BUSINESS_TRADES[int(r() * len(catalogue.BUSINESS_TRADES))]
            business_name = f"{trade} {name.split(' ', 1)[1]}"
            business_code = f"31H8{int(r() * 1_000_000):06d}"
        pages = 1 + int(r() * r() * 10)
        fee = proc.fee_online if channel == "online" else proc.fee_direct
        if proc.code == "2.000815":  # copies are charged per page
            fee *= pages
        fee_listed = fee == 0 and r() < 0.5
        paid_online = fee > 0 and channel == "online" and r() < self.rates.paid_online
        gateway = ("1" if r() < 0.6 else "2") if paid_online else "3"
        digitised = r() < (self.rates.digitised if channel == "online" else 0.9)
        data_reused = r() < self.rates.data_reused
        rejection_code = ("10", "10", "8", "4")[int(r() * 4)]
        omit_withdrawal_time = r() < 0.5
        return _Details(
            name,
            id_number,
            applicant_type,
            business_name,
            business_code,
            fee,
            fee_listed,
            paid_online,
            gateway,
            digitised,
            data_reused,
            rejection_code,
            omit_withdrawal_time,
        )

    def _version(self, plan: _Plan, view: _SourceView, k: int, d: _Details | None = None) -> RecordVersion:
        d = d or plan.details
        assert d is not None
        proc = plan.procedure
        updated, _visible, event_idx = view.versions[k]
        at, status, due = plan.events[event_idx]
        ended_at = plan.ended_shown if status in _ENDED else None
        if status is Status.WITHDRAWN and d.omit_withdrawal_time and view.source != "one_stop":
            ended_at = None  # the ministries often leave the end time empty on a withdrawal
        resolved = status in (Status.RESOLVED, Status.DELIVERED)
        results: tuple[tuple[str, str], ...] = ()
        if resolved:
            url = f"https://dvc.haiphong.example/ketqua/{plan.own_code}.pdf" if d.digitised else ""
            results = ((proc.result, url),)
        if d.digitised:
            documents = tuple((name, True) for name in proc.documents)
        else:
            documents = (
                (proc.documents[0], len(proc.documents) > 1),
                *tuple((name, False) for name in proc.documents[1:]),
            )
        received = None if status in (Status.SUBMITTED, Status.NOT_ACCEPTED) else view.received_at
        registered = proc.kind != "DANG_KY_MOI" or resolved
        return RecordVersion(
            source=view.source,
            record_id=view.record_id,
            ward_code=self.ward_code,
            reception_code=view.reception_code,
            procedure=proc,
            status=status,
            rejection_code=d.rejection_code,
            channel=plan.channel,
            applicant_name=d.name,
            applicant_id=d.id_number,
            applicant_type=d.applicant_type,
            business_name=d.business_name,
            business_code=d.business_code if registered else "",
            summary=f"{proc.name} - {d.business_name or d.name}",
            submitted_at=plan.submitted_at,
            received_at=received,
            due_at=due if received is not None else None,
            ended_at=ended_at,
            delivered_at=at if status is Status.DELIVERED else None,
            documents=documents,
            results=results,
            fee=d.fee,
            fee_name=proc.fee_name,
            fee_listed=d.fee_listed,
            paid_online=d.paid_online,
            payment_gateway=d.gateway,
            digitised=d.digitised,
            data_reused=d.data_reused,
            processing_unit=catalogue.PROCESSING_UNITS[proc.field_code],
            updated_at=updated,
        )

    # --- the public read side ---------------------------------------------------------------------

    def skeleton(self, source: str) -> SourceSkeleton:
        """Every record of ``source`` with its version times (one pass over all dossiers, cached)."""
        if source not in self.sources:
            raise KeyError(f"{source} is not in this data set (sources: {', '.join(self.sources)})")
        if source not in self._skeletons:
            built = {
                s: SourceSkeleton([], array("q"), array("q", [0]), array("q"), array("q"))
                for s in self.sources
            }
            for i in range(self.size):
                for view in self._plan(i, details=False).views:
                    sk = built[view.source]
                    sk.ids.append(view.record_id)
                    sk.refs.append(i)
                    for updated, visible, _ in view.versions:
                        sk.ver_updated.append(updated)
                        sk.ver_visible.append(visible)
                    sk.ver_start.append(len(sk.ver_updated))
            self._skeletons.update(built)
        return self._skeletons[source]

    def count(self, source: str) -> int:
        """How many records ``source`` holds."""
        return len(self.skeleton(source).ids)

    def item(self, source: str, index: int, k: int = -1) -> dict[str, Any]:
        """The wire payload of version ``k`` (default: latest) of ``source``'s record of dossier ``index``."""
        return renderer(source)(self.version(source, index, k))

    def items(self, source: str, *, all_versions: bool = False) -> Iterator[tuple[dict[str, Any], int, int]]:
        """(wire item, updated, visible from) per version, record by record, oldest version first."""
        render = renderer(source)
        for i in range(self.size):
            plan = self._plan(i)
            for view in plan.views:
                if view.source != source:
                    continue
                details = plan.details
                ks = range(len(view.versions)) if all_versions else (len(view.versions) - 1,)
                for k in ks:
                    updated, visible, _ = view.versions[k]
                    yield render(self._version(plan, view, k, details)), updated, visible

    def write_jsonl(self, source: str, path: str | Path, *, all_versions: bool = True) -> int:
        """Write ``source``'s records as JSONL for ``SimServer.load_jsonl``; returns the line count.

        A version visible later than its wire update time carries ``_visible_from``.
        """
        n = 0
        with Path(path).open("w", encoding="utf-8") as out:
            for item, updated, visible in self.items(source, all_versions=all_versions):
                line = dict(item)
                if visible != updated:
                    line["_visible_from"] = dt.datetime.fromtimestamp(visible, TZ).isoformat()
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
        return n

    @cached_property
    def truth(self) -> Truth:
        return Truth(self)

    def case_truth(self, index: int) -> CaseTruth:
        """The ground truth of dossier ``index`` (see ``CaseTruth``)."""
        plan = self._plan(index)
        d = plan.details
        assert d is not None
        _at, final_status, final_due = plan.events[-1]
        has_one_stop = any(v.source == "one_stop" for v in plan.views)
        received: int | None = None
        if final_status not in (Status.SUBMITTED, Status.NOT_ACCEPTED):
            received = plan.received_at if has_one_stop or not plan.views else plan.views[0].received_at
        return CaseTruth(
            index=index,
            field_code=plan.procedure.field_code,
            procedure_code=plan.procedure.code,
            scenarios=plan.scenarios,
            reception_code=plan.own_code if has_one_stop else None,
            records=tuple(RecordRef(v.source, v.record_id, v.reception_code) for v in plan.views),
            inferred=Scenario.INFERRED_LINK in plan.scenarios,
            status=final_status,
            channel=plan.channel,
            submitted_at=to_datetime(plan.submitted_at),
            received_at=to_datetime(received),
            due_at=to_datetime(final_due) if received is not None else None,
            ended_at=to_datetime(plan.ended_shown if final_status in _ENDED else None),
            stale_since=to_datetime(plan.stale_since),
            stale_until=to_datetime(plan.stale_until),
            digitised=d.digitised,
            data_reused=d.data_reused,
            fee_required=d.fee > 0,
            paid_online=d.paid_online,
        )


def renderer(source: str) -> Renderer:
    """The function that turns a ``RecordVersion`` into ``source``'s wire item."""
    from connectors.wardsim.server import handler_class

    return handler_class(source).render


class Truth:
    """Ground truth of a data set: which records form one case, and which scenario each plays."""

    def __init__(self, dataset: WardDataset) -> None:
        self._ds = dataset
        self._by_record: dict[tuple[str, str], int] | None = None

    def __len__(self) -> int:
        return self._ds.size

    def case(self, index: int) -> CaseTruth:
        return self._ds.case_truth(index)

    def cases(self) -> Iterator[CaseTruth]:
        return (self._ds.case_truth(i) for i in range(self._ds.size))

    def case_of(self, source: str, source_id: str) -> CaseTruth | None:
        """The case a record belongs to (builds an id map on first use)."""
        if self._by_record is None:
            self._by_record = {}
            for src in self._ds.sources:
                sk = self._ds.skeleton(src)
                for rid, ref in zip(sk.ids, sk.refs, strict=True):
                    self._by_record[(src, rid)] = ref
        index = self._by_record.get((source, source_id))
        return None if index is None else self.case(index)

    def with_scenario(self, scenario: Scenario | str) -> list[CaseTruth]:
        wanted = Scenario(scenario)
        return [c for c in self.cases() if wanted in c.scenarios]

    def scenario_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {s.value: 0 for s in Scenario}
        for case in self.cases():
            for s in case.scenarios:
                counts[s.value] += 1
        return counts


def _worked_before(tod: int) -> int:
    """Working seconds of a day elapsed at local time of day ``tod``."""
    morning = min(max(tod - _MORNING[0], 0), _MORNING[1])
    afternoon = min(max(tod - _AFTERNOON[0], 0), _AFTERNOON[1])
    return morning + afternoon


def generate(
    seed: int,
    size: int,
    now: dt.datetime,
    ward_code: str = DEFAULT_WARD_CODE,
    *,
    ward_name: str = DEFAULT_WARD_NAME,
    only: str | None = None,
    rates: Rates | None = None,
    days: int = 365,
) -> WardDataset:
    """A ward's ``days`` of dossiers ending at ``now``.

    ``size`` is the number of dossiers (cases). With ``only=SOURCE`` the set holds only that
    source and every dossier has exactly one record there, so ``size`` is the exact record count
    (e.g. ``generate(1, 1_000_000, now, only="one_stop")`` for a benchmark).
    """
    return WardDataset(seed, size, now, ward_code, ward_name, only, rates, days)
