"""Property tests: every wire time format round-trips, and no input makes a mapping raise."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext
from connectors.residence import mapping
from sync_agent.model import DossierRecord, QuarantinedRecord
from sync_agent.privacy import IdHasher

from . import samples
from .conftest import TZ
from .sources import SOURCES, Source, put

CONTEXT = ConnectorContext(ward_code="11311", timezone=TZ, hasher=IdHasher("k"))
PARAMS = pytest.mark.parametrize("source", SOURCES, ids=str)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# whole seconds: the wire formats carry no fraction
local_times = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=TZ)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
any_zone = st.one_of(
    offsets, st.just(dt.UTC), st.just(ZoneInfo("Asia/Ho_Chi_Minh")), st.just(ZoneInfo("Europe/Paris"))
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@PARAMS
@FAST
@given(moment=local_times)
def test_local_times_round_trip_through_the_wire_format(source: Source, moment: dt.datetime) -> None:
    wire = source.render(moment)
    parsed = source.mapping.parse_time(wire, CONTEXT)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()
    assert source.mapping.format_time(moment, CONTEXT) == wire


@FAST
@given(
    moment=st.datetimes(
        min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 12, 31), timezones=any_zone
    )
)
def test_iso_times_with_any_offset_are_the_same_instant_in_ward_time(moment: dt.datetime) -> None:
    moment = moment.replace(microsecond=0)
    for wire in (moment.isoformat(), moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")):
        parsed = mapping.parse_time(wire, CONTEXT)
        # compared in UTC: PEP 495 makes == between zones False for ambiguous local times
        assert parsed.astimezone(dt.UTC) == moment.astimezone(dt.UTC)
        assert parsed.tzinfo is TZ


@PARAMS
@FAST
@given(moment=local_times)
def test_a_generated_update_time_lands_in_the_record(source: Source, moment: dt.datetime) -> None:
    item = put(source.sample(), source.updated_field, source.render(moment))
    out = source.mapping.normalise_item(item, CONTEXT)
    assert isinstance(out, DossierRecord)
    assert out.source_updated_at == moment


def _parses(source: Source, text: str) -> bool:
    try:
        source.mapping.parse_time(text, CONTEXT)
    except (ValueError, OverflowError):
        return False
    return True


@PARAMS
@FAST
@given(data=st.data(), garbage=st.one_of(st.text(max_size=30), st.from_regex(r"\d{8,16}", fullmatch=True)))
def test_garbage_in_any_date_field_quarantines_naming_the_field(
    source: Source, data: Any, garbage: str
) -> None:
    assume(garbage.strip() and not _parses(source, garbage))
    field = data.draw(st.sampled_from(source.time_fields))
    item = put(source.sample(), field, garbage)
    out = source.mapping.normalise_item(item, CONTEXT)
    assert isinstance(out, QuarantinedRecord)
    assert field in out.reason
    assert samples.ID_NUMBER not in out.reason


@pytest.mark.parametrize(
    ("source_name", "bad"),
    [
        ("one_stop", "2026012009000"),  # 13 digits
        ("one_stop", "20261320090000"),  # month 13
        ("one_stop", "2026-01-20 09:00:00"),
        ("civil_status", "2026-01-20 09:00:00"),
        ("civil_status", "20/01/2026"),
        ("civil_status", "31/02/2026 09:00:00"),
        ("residence", "2026-01-20T09:00:00"),  # no offset: refused, not guessed
        ("residence", "2026-01-20"),
        ("residence", "20/01/2026 09:00:00"),
        ("household_business", "2026-01-20T09:00:00+07:00"),
        ("household_business", "2026-01-20 25:00:00"),
    ],
)
def test_near_miss_dates_are_refused(source_name: str, bad: str) -> None:
    source = next(s for s in SOURCES if s.name == source_name)
    out = source.mapping.normalise_item(put(source.sample(), source.updated_field, bad), CONTEXT)
    assert isinstance(out, QuarantinedRecord)
    assert source.updated_field in out.reason and repr(bad) in out.reason
    assert out.source_updated_at is None


@PARAMS
@FAST
@given(item=json_values)
def test_no_input_makes_a_mapping_raise(source: Source, item: Any) -> None:
    out = source.mapping.normalise_item(item, CONTEXT)
    assert isinstance(out, DossierRecord | QuarantinedRecord)


@PARAMS
@FAST
@given(data=st.data())
def test_any_field_replaced_by_any_json_never_raises(source: Source, data: Any) -> None:
    item = source.sample()
    key = data.draw(st.sampled_from(sorted(item)))
    item[key] = data.draw(json_values)
    out = source.mapping.normalise_item(item, CONTEXT)
    assert isinstance(out, DossierRecord | QuarantinedRecord)
    assert samples.ID_NUMBER not in repr(out.raw)
