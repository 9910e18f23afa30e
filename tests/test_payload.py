"""orjson reads and writes payloads as the standard library did (``sync_agent.payload``): the same
values from a source's answer, and the same stored text, so content hashes stored by an earlier
version stay valid."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_agent.payload import DEEPER, MAX_NESTING, StoredPayload, cut_nesting, decode_json, payload_json


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
    for value in ({"n": 2**70}, {"n": -(2**70)}, {1: "a"}):
        assert payload_json(value) == standard(value)


def test_a_lone_surrogate_is_kept_as_its_escape_which_reads_back_the_same() -> None:
    value = {"ChuHoSo": "Nguyễn Văn \ud83d", "\udc00": ["\udfff"]}
    text = payload_json(value)
    assert text == '{"ChuHoSo":"Nguyễn Văn \\ud83d","\\udc00":["\\udfff"]}'
    assert json.loads(text) == value
    text.encode("utf-8")  # what a database stores: the character itself would not encode


def test_a_stored_payload_gives_its_text_and_keeps_it_when_pickled() -> None:
    stored = StoredPayload({"MaHoSo": "H31.11311-251201-0053"}, '{"MaHoSo":"H31.11311-251201-0053"}')
    assert payload_json(stored) == stored.json == standard(dict(stored))
    copy = pickle.loads(pickle.dumps(stored))
    assert copy == stored and copy.json == stored.json


# any JSON value, floats and integers of every size included
any_json = st.recursive(
    st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(any_json, st.booleans())
def test_an_answer_decodes_to_the_standard_librarys_values(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    decoded = decode_json(body)
    assert decoded == json.loads(body.decode("utf-8"))
    assert repr(decoded) == repr(json.loads(body.decode("utf-8")))  # 1 stays 1, 1.0 stays 1.0


@pytest.mark.parametrize("body", [b"[18446744073709551616]", b"[-9223372036854775809]", b"[1e400]",
                                  b'{"a": NaN}', b'["\\ud800"]', b'{"a": 1, "a": 2}'])
def test_what_orjson_reads_otherwise_is_read_by_the_standard_library(body: bytes) -> None:
    assert repr(decode_json(body)) == repr(json.loads(body.decode("utf-8")))


@pytest.mark.parametrize("body", [b"", b"<html>502</html>", b'{"a": 1', b"{'a': 1}", b'{"a": 1,}', b'["\x01"]',
                                  b'{"a": "Nguy\xe1\xbb', b"\xef\xbb\xbf"])
def test_what_is_not_json_fails_as_it_did(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body.decode("utf-8"))
    # a body cut inside a character fails as JSON cut short rather than as UTF-8: both are the
    # ValueError the HTTP layer takes for a body worth another try
    with pytest.raises(ValueError):
        decode_json(body)


def test_a_byte_order_mark_before_the_answer_is_skipped() -> None:
    assert decode_json(b'\xef\xbb\xbf{"data": []}') == {"data": []}


def test_a_byte_that_is_not_utf8_is_read_as_a_lone_surrogate_not_as_a_failed_page() -> None:
    # a Latin-1 "à" in one record's name: that record is quarantined, the page's others stored
    assert decode_json(b'{"data": [{"ChuHoSo": "Phan Th\xe0nh Duy"}, {"ChuHoSo": "An"}]}') == {
        "data": [{"ChuHoSo": "Phan Th\udce0nh Duy"}, {"ChuHoSo": "An"}]}


def nested(depth: int) -> Any:
    value: Any = "đáy"
    for _ in range(depth):
        value = [value]
    return value


def test_a_payload_too_deep_to_write_whole_is_written_cut_not_failed() -> None:
    payload = {"MaHoSo": "H31", "GhiChu": nested(5000)}
    text = payload_json(payload)
    assert json.loads(text) == cut_nesting(payload)
    assert DEEPER in text


def test_cut_nesting_keeps_what_lies_within_its_depth() -> None:
    assert cut_nesting(nested(MAX_NESTING)) == nested(MAX_NESTING)
    cut: Any = DEEPER  # the 101st list, in place of what it held
    for _ in range(MAX_NESTING):
        cut = [cut]
    assert cut_nesting(nested(MAX_NESTING + 1)) == cut
