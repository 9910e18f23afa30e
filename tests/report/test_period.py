"""Period boundaries: 2026-02 is 15/01/2026 to 14/02/2026 with the default start day."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_agent.report import Period
from tests.report.seed import ICT


def test_parse_default_start_day() -> None:
    p = Period.parse("2026-02")
    assert (p.label, p.start, p.end) == ("2026-02", dt.date(2026, 1, 15), dt.date(2026, 2, 14))
    assert Period.parse("2026-01", 15).start == dt.date(2025, 12, 15)


def test_start_day_one_is_the_calendar_month_before() -> None:
    p = Period.parse("2026-03", 1)
    assert (p.start, p.end) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


@pytest.mark.parametrize("bad", ["2026-13", "2026-2", "26-02", "2026/02", "", "2026-00"])
def test_malformed_label(bad: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(bad)


def test_latest_complete() -> None:
    assert Period.latest_complete(dt.date(2026, 2, 15)).label == "2026-02"
    assert Period.latest_complete(dt.date(2026, 2, 14)).label == "2026-01"
    assert Period.latest_complete(dt.date(2026, 1, 3)).label == "2025-12"
    assert Period.latest_complete(dt.date(2026, 12, 20)).label == "2026-12"


def test_instants() -> None:
    p = Period.parse("2026-02")
    assert p.first_instant(ICT) == dt.datetime(2026, 1, 15, 0, 0, tzinfo=ICT)
    assert p.last_instant(ICT).replace(microsecond=0) == dt.datetime(2026, 2, 14, 23, 59, 59, tzinfo=ICT)


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31)), st.integers(1, 28))
def test_periods_tile_the_calendar(day: dt.date, start_day: int) -> None:
    p = Period.containing(day, start_day)
    assert p.contains(day)
    nxt = Period.containing(p.end + dt.timedelta(days=1), start_day)
    assert nxt.start == p.end + dt.timedelta(days=1)
    assert nxt.previous() == p
    assert Period.parse(p.label, start_day) == p
    assert Period.latest_complete(day, start_day).end < day
