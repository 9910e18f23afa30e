"""The working-day calendar: weekends, Vietnamese public holidays (Tết), configured changes."""

from __future__ import annotations

import datetime as dt

from sync_agent.calendar import WorkingCalendar
from sync_agent.config import CalendarSettings

D = dt.date


def test_tet_2026_is_five_days_off_between_two_weekends() -> None:
    cal = WorkingCalendar()
    tet = [D(2026, 2, 16) + dt.timedelta(days=i) for i in range(5)]  # Mon 16 - Fri 20 February
    assert [cal.is_working_day(d) for d in tet] == [False] * 5
    assert cal.holiday_name(D(2026, 2, 17)) is not None
    assert cal.is_working_day(D(2026, 2, 13))  # Friday before
    assert not cal.is_working_day(D(2026, 2, 14)) and not cal.is_working_day(D(2026, 2, 15))
    assert cal.is_working_day(D(2026, 2, 23))  # Monday after
    # from the Friday before Tết, the next working day is the Monday after it
    assert cal.add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 23)
    assert cal.add_working_days(D(2026, 2, 13), 2) == D(2026, 2, 24)
    assert cal.working_days_between(D(2026, 2, 13), D(2026, 2, 23)) == 1
    assert cal.working_days_between(D(2026, 2, 12), D(2026, 2, 24)) == 3
    assert cal.add_working_days(D(2026, 2, 23), -1) == D(2026, 2, 13)
    assert cal.previous_working_day(D(2026, 2, 23)) == D(2026, 2, 13)


def test_other_statutory_holidays_and_plain_weekends() -> None:
    cal = WorkingCalendar()
    for d in (D(2026, 1, 1), D(2026, 4, 30), D(2026, 5, 1), D(2026, 9, 2)):
        assert not cal.is_working_day(d), d
    assert not cal.is_working_day(D(2026, 11, 28))  # a Saturday
    assert not cal.is_working_day(D(2026, 11, 29))  # a Sunday
    assert cal.is_working_day(D(2026, 11, 27))  # a Friday


def test_a_make_up_saturday_and_an_extra_day_off_from_the_configuration() -> None:
    plain = WorkingCalendar()
    saturday, bridge = D(2026, 1, 10), D(2026, 1, 2)  # the bridge day after New Year, made up on a Saturday
    assert not plain.is_working_day(saturday) and plain.is_working_day(bridge)
    cal = WorkingCalendar(CalendarSettings(extra_days_off=frozenset({bridge}),
                                           working_saturdays=frozenset({saturday})))
    assert cal.is_working_day(saturday)
    assert not cal.is_working_day(bridge)
    # one working day after Wed 31 December: not New Year (Thu 1), not the bridge (Fri 2): Mon 5
    assert cal.add_working_days(D(2025, 12, 31), 1) == D(2026, 1, 5)
    assert cal.working_days_between(D(2026, 1, 9), D(2026, 1, 12)) == 2  # Sat 10 and Mon 12


def test_make_up_saturdays_the_holidays_package_knows() -> None:
    cal = WorkingCalendar()
    # 26 April 2025 was worked to bridge 30 April - 4 May (holidays.VN knows the swap)
    assert cal.is_working_day(D(2025, 4, 26))
    assert not cal.is_working_day(D(2025, 5, 2))


def test_counting_is_symmetric_and_zero_is_identity() -> None:
    cal = WorkingCalendar()
    a, b = D(2026, 2, 2), D(2026, 3, 2)
    assert cal.working_days_between(a, b) == -cal.working_days_between(b, a)
    assert cal.add_working_days(D(2026, 2, 14), 0) == D(2026, 2, 14)
    n = cal.working_days_between(a, b)
    assert cal.add_working_days(a, n) == b  # b is a working Monday
