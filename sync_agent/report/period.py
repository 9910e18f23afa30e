"""Reporting periods: ``YYYY-MM`` runs from day ``d`` of the previous month to day ``d - 1``.

The ward reports from the 15th to the 14th (``domain.md``, "Counting rules for a period"), so a
calendar month is the wrong unit; every other module asks this one where a period starts and
ends. Boundaries are local calendar dates: the store keeps ``received_on``/``due_on``/``ended_on``
as dates in the ward's time zone, so 00:00:00 on the first day and 23:59:59 on the last day are
both inside the period by construction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_LABEL = re.compile(r"^(\d{4})-(\d{2})$")
DEFAULT_START_DAY = 15


def _month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One reporting period; ``start`` and ``end`` are both inclusive local dates."""

    label: str
    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, label: str, start_day: int = DEFAULT_START_DAY) -> Period:
        """``"2026-02"`` with start day 15 is 15/01/2026 to 14/02/2026; ``ValueError`` if malformed."""
        m = _LABEL.match(label.strip())
        if not m:
            raise ValueError(f"period must be YYYY-MM, got {label!r}")
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12 or year < 1900:
            raise ValueError(f"period must be YYYY-MM with a month 01-12, got {label!r}")
        return cls.of(year, month, start_day)

    @classmethod
    def of(cls, year: int, month: int, start_day: int = DEFAULT_START_DAY) -> Period:
        """The period labelled ``year-month``."""
        if not 1 <= start_day <= 28:
            raise ValueError(f"period start day must be 1-28, got {start_day}")
        py, pm = _month_before(year, month)
        start = dt.date(py, pm, start_day)
        end = dt.date(year, month, start_day) - dt.timedelta(days=1)
        return cls(label=f"{year:04d}-{month:02d}", start=start, end=end)

    @classmethod
    def containing(cls, day: dt.date, start_day: int = DEFAULT_START_DAY) -> Period:
        """The period that ``day`` falls in."""
        if day.day >= start_day:
            year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        else:
            year, month = day.year, day.month
        return cls.of(year, month, start_day)

    @classmethod
    def latest_complete(cls, today: dt.date, start_day: int = DEFAULT_START_DAY) -> Period:
        """The newest period that ended before ``today`` (on the 15th: the one ending the 14th)."""
        current = cls.containing(today, start_day)
        return current.previous(start_day)

    @property
    def year(self) -> int:
        return int(self.label[:4])

    @property
    def month(self) -> int:
        return int(self.label[5:])

    def previous(self, start_day: int | None = None) -> Period:
        """The period just before this one (same start day unless given)."""
        day = self.start.day if start_day is None else start_day
        py, pm = _month_before(self.year, self.month)
        return Period.of(py, pm, day)

    def first_instant(self, tz: ZoneInfo) -> dt.datetime:
        """S: 00:00:00 local on the first day."""
        return dt.datetime.combine(self.start, dt.time(0, 0), tzinfo=tz)

    def last_instant(self, tz: ZoneInfo) -> dt.datetime:
        """E: 23:59:59.999999 local on the last day."""
        return dt.datetime.combine(self.end, dt.time.max, tzinfo=tz)

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return self.label
