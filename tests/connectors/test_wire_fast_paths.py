"""The fast paths of ``connectors.wire`` (plain ``dict.get`` for flat keys, split-once dotted
keys, a digits-only time parser) against the plain implementations they replace."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import wire
from connectors.civil_status import mapping as civil_status
from connectors.household_business import mapping as household_business
from connectors.one_stop import mapping as one_stop
from sync_agent.errors import RecordError

from .conftest import TZ


def reference_lookup(item: Mapping[str, Any], key: str) -> Any:
    value: Any = item
    walked: list[str] = []
    for part in key.split("."):
        if wire.is_none(value):
            return None
        if not isinstance(value, Mapping):
            raise RecordError(f"field {'.'.join(walked)}: expected an object, got {type(value).__name__}")
        value = value.get(part)
        walked.append(part)
    return value


def reference_text(item: Mapping[str, Any], key: str) -> str | None:
    value = reference_lookup(item, key)
    if wire.is_none(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"field {key}: expected text, got {type(value).__name__}")


def reference_parse(fmt: wire.LocalTimeFormat, value: str) -> dt.datetime:
    m = fmt.regex.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"not in the form {fmt.pattern}")
    g = {k: int(v) for k, v in m.groupdict().items()}
    return dt.datetime(g["Y"], g["m"], g["d"], g["H"], g["M"], g["S"], tzinfo=TZ)


def outcome(f: Any, *args: Any) -> Any:
    try:
        return ("value", f(*args))
    except (RecordError, ValueError) as exc:
        return (type(exc).__name__, str(exc) if isinstance(exc, RecordError) else "")


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(alphabet=" \t12ab", max_size=4))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=2),
                                                       st.dictionaries(st.sampled_from("abc"), inner, max_size=3)),
                      max_leaves=8)


@settings(max_examples=400)
@given(st.dictionaries(st.sampled_from("abc"), values, max_size=3),
       st.sampled_from(["a", "b", "a.b", "a.b.c", "c.a", "z", "a.z"]))
def test_lookup_and_text_are_the_plain_walk(item: dict[str, Any], key: str) -> None:
    assert outcome(wire.lookup, item, key) == outcome(reference_lookup, item, key)
    assert outcome(wire.text, item, key) == outcome(reference_text, item, key)


digit_times = st.one_of(
    st.text(alphabet="0123456789", min_size=12, max_size=16),
    st.text(alphabet="0123456789 ٠١٢٣+-_x\t²", min_size=10, max_size=17),
    st.builds(lambda d: d.strftime("%Y%m%d%H%M%S"), st.datetimes(min_value=dt.datetime(1000, 1, 1))),
)


@settings(max_examples=600)
@given(digit_times)
def test_the_digits_only_parser_reads_as_the_regex(value: str) -> None:
    parse = one_stop.TIME_FORMAT.parser(TZ)
    assert outcome(parse, value) == outcome(reference_parse, one_stop.TIME_FORMAT, value)


@pytest.mark.parametrize("fmt", [civil_status.TIME_FORMAT, household_business.TIME_FORMAT])
def test_formats_with_separators_keep_the_regex(fmt: wire.LocalTimeFormat) -> None:
    assert wire._digits_only(fmt) is None
    moment = dt.datetime(2026, 1, 20, 8, 30, 5, tzinfo=TZ)
    assert fmt.parser(TZ)(fmt.format(moment, TZ)) == moment


def test_a_regex_that_says_more_than_its_template_keeps_the_regex() -> None:
    fmt = wire.LocalTimeFormat(
        pattern="yyyyMMddHHmmss",
        regex=re.compile(r"(?P<Y>[0-9]{4})(?P<m>\d{2})(?P<d>\d{2})(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"),
        template="{Y:04d}{m:02d}{d:02d}{H:02d}{M:02d}{S:02d}",
    )
    assert wire._digits_only(fmt) is None
    with pytest.raises(ValueError):
        fmt.parse("٢٠٢٦01200830٠٠", TZ)
