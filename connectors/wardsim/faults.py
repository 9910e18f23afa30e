"""Faults a simulator can be told to inject, switchable while it runs.

Each fault is what a real source does on a bad day: slow answers, 5xx, 429 with ``Retry-After``,
sessions that expire, bodies cut short, an HTML error page served as 200, pages that overlap, and
records a connector must quarantine. "Next N" faults hit the next N matching requests; rate faults
draw from a ``random.Random(seed)`` in request order, so a test replays the same failures.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

#: which requests a fault hits: data (pages of records), login (session/token), or any
Target = Literal["data", "login", "any"]
#: the broken records the bad-records fault mixes into pages
BadRecordKind = Literal["missing_id", "unknown_status", "bad_date"]
BAD_RECORD_KINDS: tuple[BadRecordKind, ...] = ("missing_id", "unknown_status", "bad_date")
TRANSIENT_STATUSES: tuple[int, ...] = (500, 502, 503, 504)


@dataclass(frozen=True, slots=True)
class Trigger:
    """A fault that fired for one request; the server acts on it."""

    kind: Literal["error", "throttle", "truncate", "html"]
    status: int = 200
    retry_after: int = 1
    http_date: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.status}" if self.kind in ("error", "throttle") else self.kind


@dataclass(slots=True)
class _Rule:
    trigger_kind: Literal["error", "throttle", "truncate", "html"]
    target: Target
    remaining: int | None  # None: rate-based, never used up
    rate: float
    statuses: tuple[int, ...] = (503,)
    retry_after: int = 1
    http_date: bool = False

    def matches(self, kind: str) -> bool:
        return self.target == "any" or self.target == kind


@dataclass(slots=True)
class _BadRecords:
    remaining: int | None
    rate: float
    kinds: tuple[BadRecordKind, ...]


@dataclass
class Faults:
    """The faults of one server. Methods return ``self`` so calls chain."""

    seed: int = 0
    on_expire: Callable[[], None] | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _rules: list[_Rule] = field(init=False, default_factory=list)
    _latency: dict[str, float] = field(init=False, default_factory=dict)
    _duplicates: bool = field(init=False, default=False)
    _bad: list[_BadRecords] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"wardsim-faults:{self.seed}")

    def reset(self, seed: int | None = None) -> Faults:
        """Clear every fault (and restart the draws, optionally from a new seed)."""
        with self._lock:
            self._rules.clear()
            self._latency.clear()
            self._duplicates = False
            self._bad.clear()
            if seed is not None:
                self.seed = seed
            self._rng = random.Random(f"wardsim-faults:{self.seed}")
        return self

    # --- switching faults on ------------------------------------------------------------------------

    def set_latency(self, seconds: float, target: Target = "any") -> Faults:
        """Delay every matching answer by ``seconds``; ``target="any"`` replaces every delay (0: none)."""
        with self._lock:
            if target == "any":
                self._latency.clear()
            self._latency[target] = seconds
        return self

    def fail_next(self, n: int = 1, status: int = 503, target: Target = "data") -> Faults:
        """Answer the next ``n`` matching requests with ``status`` (500, 502, 503, 504, or any)."""
        return self._add(_Rule("error", target, n, 1.0, (status,)))

    def fail_rate(
        self, rate: float, statuses: Sequence[int] = TRANSIENT_STATUSES, target: Target = "data"
    ) -> Faults:
        """Answer a seeded share of matching requests with one of ``statuses``."""
        return self._add(_Rule("error", target, None, rate, tuple(statuses)))

    def throttle_next(
        self, n: int = 1, retry_after: int = 1, *, http_date: bool = False, target: Target = "data"
    ) -> Faults:
        """429 with ``Retry-After`` (seconds, or an HTTP date that many seconds ahead) ``n`` times."""
        return self._add(_Rule("throttle", target, n, 1.0, (429,), retry_after, http_date))

    def throttle_rate(
        self, rate: float, retry_after: int = 1, *, http_date: bool = False, target: Target = "data"
    ) -> Faults:
        return self._add(_Rule("throttle", target, None, rate, (429,), retry_after, http_date))

    def truncate_next(self, n: int = 1, target: Target = "data") -> Faults:
        """Cut the next ``n`` successful JSON bodies in half (status stays 200)."""
        return self._add(_Rule("truncate", target, n, 1.0, (200,)))

    def truncate_rate(self, rate: float, target: Target = "data") -> Faults:
        return self._add(_Rule("truncate", target, None, rate, (200,)))

    def html_error_next(self, n: int = 1, target: Target = "data") -> Faults:
        """Serve an HTML error page with status 200 instead of the next ``n`` successful answers."""
        return self._add(_Rule("html", target, n, 1.0, (200,)))

    def html_error_rate(self, rate: float, target: Target = "data") -> Faults:
        return self._add(_Rule("html", target, None, rate, (200,)))

    def expire_sessions(self) -> Faults:
        """Invalidate every session/token now (one_stop: error_code -1; civil_status: 401)."""
        if self.on_expire is not None:
            self.on_expire()
        return self

    def set_duplicates(self, on: bool = True) -> Faults:
        """Repeat the last record of a page at the start of the next page."""
        with self._lock:
            self._duplicates = on
        return self

    def bad_records_next(self, n: int = 1, kinds: Sequence[BadRecordKind] = BAD_RECORD_KINDS) -> Faults:
        """Mix ``n`` broken records (cycling through ``kinds``) into the next data page(s)."""
        with self._lock:
            self._bad.append(_BadRecords(n, 1.0, tuple(kinds)))
        return self

    def bad_records_rate(self, rate: float, kinds: Sequence[BadRecordKind] = BAD_RECORD_KINDS) -> Faults:
        """After each served record, with probability ``rate``, a broken copy of it."""
        with self._lock:
            self._bad.append(_BadRecords(None, rate, tuple(kinds)))
        return self

    # --- used by the server -----------------------------------------------------------------------------

    @property
    def duplicates(self) -> bool:
        return self._duplicates

    def latency(self, kind: str) -> float:
        with self._lock:
            return max(self._latency.get("any", 0.0), self._latency.get(kind, 0.0))

    def before(self, kind: str) -> Trigger | None:
        """An error or throttle to answer with instead of handling the request."""
        return self._fire(kind, ("error", "throttle"))

    def after(self, kind: str) -> Trigger | None:
        """A corruption of a successful answer (truncation, HTML page)."""
        return self._fire(kind, ("truncate", "html"))

    def bad_records_for(self, n_records: int) -> list[tuple[int, BadRecordKind]]:
        """(position after which to insert, kind) of the broken records for a page of ``n_records``."""
        out: list[tuple[int, BadRecordKind]] = []
        if n_records == 0:
            return out
        with self._lock:
            for spec in self._bad:
                if spec.remaining is not None:
                    for j in range(spec.remaining):
                        out.append((self._rng.randrange(n_records), spec.kinds[j % len(spec.kinds)]))
                    spec.remaining = 0
                else:
                    for pos in range(n_records):
                        if self._rng.random() < spec.rate:
                            out.append((pos, spec.kinds[self._rng.randrange(len(spec.kinds))]))
            self._bad = [s for s in self._bad if s.remaining != 0]
        return sorted(out, key=lambda x: x[0])

    def _add(self, rule: _Rule) -> Faults:
        with self._lock:
            self._rules.append(rule)
        return self

    def _fire(self, kind: str, kinds: tuple[str, ...]) -> Trigger | None:
        with self._lock:
            for rule in self._rules:
                if rule.trigger_kind not in kinds or not rule.matches(kind):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                elif self._rng.random() >= rule.rate:
                    continue
                status = (
                    rule.statuses[self._rng.randrange(len(rule.statuses))]
                    if len(rule.statuses) > 1
                    else (rule.statuses[0])
                )
                return Trigger(rule.trigger_kind, status, rule.retry_after, rule.http_date)
        return None
