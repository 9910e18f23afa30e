"""The stored text of a payload is the text the standard library wrote before orjson took over,
so content hashes stored by an earlier version stay valid (``sync_agent.payload``)."""

from __future__ import annotations

import json
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync_agent.payload import StoredPayload, payload_json


def standard(value: Any) -> str:
    """The text as the store wrote it with the standard library."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


# what decoded JSON holds; floats as sources write them (no exponent, see the module docstring)
json_values = st.recursive(
    st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**64 - 1), st.booleans(), st.none(),
              st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: "e" not in repr(f))),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_the_text_is_the_standard_librarys(value: Any) -> None:
    assert payload_json(value) == standard(value)


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    for value in ({"n": 2**70}, {"n": -(2**70)}, {"s": "\ud800"}, {1: "a"}):
        assert payload_json(value) == standard(value)


def test_a_stored_payload_gives_its_text_and_keeps_it_when_pickled() -> None:
    stored = StoredPayload({"MaHoSo": "H31.11311-251201-0053"}, '{"MaHoSo":"H31.11311-251201-0053"}')
    assert payload_json(stored) == stored.json == standard(dict(stored))
    copy = pickle.loads(pickle.dumps(stored))
    assert copy == stored and copy.json == stored.json
