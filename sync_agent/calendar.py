"""Working days of a Vietnamese ward office.

Deadlines that staff care about ("due within two working days") and the daily digest (sent on
working days only) follow the office's calendar, not the civil one: weekends and public
holidays are off, lunar Tết included; the government also moves days around every year (a day
off bridged to a holiday, a Saturday worked to make up for it). The ``holidays`` package knows
the statutory holidays and the decreed swaps it has been taught; ``[calendar]`` in the
configuration adds the ones announced after the package was released.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import holidays

from sync_agent.config import CalendarSettings

_ONE_DAY = dt.timedelta(days=1)
# a year has at most ~250 working days; a loop asked to walk further than this is a bug
_MAX_STEPS = 366 * 20


class WorkingCalendar:
    """Is a date a working day, and counting in working days.

    Precedence: a configured extra day off always wins; then a configured make-up Saturday (or
    one the package knows) is a working day; then public holidays and weekends are off.
    """

    def __init__(self, settings: CalendarSettings | None = None) -> None:
        s = settings or CalendarSettings()
        self._days_off = frozenset(s.extra_days_off)
        self._working_saturdays = frozenset(s.working_saturdays)
        # holidays.VN fills years lazily on lookup and is not thread-safe while doing so
        self._vn: Any = holidays.country_holidays("VN")
        self._guard = threading.Lock()

    def holiday_name(self, d: dt.date) -> str | None:
        """The public holiday's name on ``d`` (in English, as the package has it), or None."""
        with self._guard:
            name = self._vn.get(d)
        return None if name is None else str(name)

    def is_working_day(self, d: dt.date) -> bool:
        """Whether the ward office works on ``d``."""
        if d in self._days_off:
            return False
        if d in self._working_saturdays:
            return True
        with self._guard:
            if d in self._vn:
                return False
            if d.weekday() >= 5:
                return d in self._vn.weekend_workdays
        return True

    def add_working_days(self, d: dt.date, n: int) -> dt.date:
        """The date ``n`` working days after ``d`` (before it for negative ``n``).

        ``d`` itself need not be a working day; ``n == 0`` returns ``d`` unchanged.
        """
        step = _ONE_DAY if n >= 0 else -_ONE_DAY
        remaining = abs(n)
        current = d
        steps = 0
        while remaining:
            current += step
            steps += 1
            if steps > _MAX_STEPS:  # pragma: no cover - a calendar with no working days
                raise ValueError("no working days found within 20 years")
            if self.is_working_day(current):
                remaining -= 1
        return current

    def working_days_between(self, a: dt.date, b: dt.date) -> int:
        """Working days in ``(a, b]``: how many working days from ``a`` until ``b``.

        Negative when ``b`` is before ``a`` (working days in ``(b, a]``, negated), so
        ``add_working_days(a, working_days_between(a, b))`` is the last working day on or
        before ``b``.
        """
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        current = a
        while current < b:
            current += _ONE_DAY
            if self.is_working_day(current):
                count += 1
        return count

    def previous_working_day(self, d: dt.date) -> dt.date:
        """The last working day strictly before ``d``."""
        return self.add_working_days(d, -1)
