"""``redact_payload`` takes shortcuts (one regex pass over the joined strings, a cache of clean
strings, ASCII digit runs judged by length); it must give exactly what the plain recursive walk
gave, string by string, for any payload."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
from collections import UserDict
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_agent import privacy
from sync_agent.payload import StoredPayload, payload_json
from sync_agent.privacy import IdHasher, redact_payload, redact_payload_json, redact_text

KEYS = frozenset({"SoGiayToChuHoSo", "id_number"})
HASHER = IdHasher("test-key")


def reference_hash(key: str, id_number: str | None) -> str | None:
    """The hasher as first written."""
    if id_number is None:
        return None
    digits = "".join(ch for ch in str(id_number) if not ch.isspace())
    if not digits:
        return None
    return hmac.new(key.encode("utf-8"), digits.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


ID_SHAPED = re.compile(
    r"(?:(?<![A-Za-z\d])|(?<=\\[abfnrtv])|(?<=\\x[0-9a-fA-F]{2})|(?<=\\u[0-9a-fA-F]{4})"
    r"|(?<=\\U[0-9a-fA-F]{8}))(\d{9}|\d{12})(?![A-Za-z\d])")


def reference_id_text(value: Any) -> str:
    """An ID field's value as text, a whole number given back the zeros it lost: 10 or 11 digits
    are a CCCD's 12, 8 a CMND's 9."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return {10: "00", 11: "0", 8: "0"}.get(len(str(value)), "") + str(value)
    return str(value)


def reference(value: Any, id_keys: frozenset[str]) -> Any:
    """``redact_payload`` written plainly: an ID field (text or number) by its keyed hash, every
    other string through the regex on its own, an ID-shaped number by the placeholder, and an
    ID-shaped part of a key by its keyed hash."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        taken: set[str] = set()
        keys = {k: reference_key(k, value, taken) for k in value}
        for k, v in value.items():
            masked = ID_SHAPED.sub(lambda m: f"hmac:{reference_hash('test-key', m.group())}", keys[k])
            if k in id_keys and isinstance(v, str | int | float) and not isinstance(v, bool):
                key = reference_hash("test-key", reference_id_text(v))
                out[masked] = f"hmac:{key}" if key else v
            else:
                out[masked] = reference(v, id_keys)
        return out
    if isinstance(value, list):
        return [reference(v, id_keys) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and ID_SHAPED.search(str(value)):
        return privacy.ID_PLACEHOLDER
    return value


def reference_key(key: Any, obj: Mapping[Any, Any], taken: set[str]) -> str:
    """A key as JSON text (``json.dumps`` for ``None``, booleans and numbers, else ``str``); a
    key that is not text and whose text is taken (by a text key of the object, or by another
    such key before it) gets `` (2)``, `` (3)``…"""
    if isinstance(key, str):
        return key
    text = json.dumps(key) if key is None or isinstance(key, bool | int | float) else str(key)
    n, candidate = 1, text
    while candidate in taken or any(isinstance(k, str) and k == candidate for k in obj):
        n += 1
        candidate = f"{text} ({n})"
    taken.add(candidate)
    return candidate


# text made of what matters to the regex: digits (ASCII and not), letters, separators, escapes
_ALPHABET = "0123456789" * 4 + "aZ \t\n\x00\x01-./:\"\\ệĐ" + "٠١٢٣" + "²" + "ựḀ၁က１𝟏"
texts = st.one_of(
    st.text(alphabet=_ALPHABET, max_size=40),
    st.sampled_from(["", " ", "001203004567", "123456789", "1234567890", "20260120083000", "x 123456789 y",
                     "\n123456789", "\x01123456789", "١٢٣٤٥٦٧٨٩", "123456789١", "Nguyễn Văn An", "9", "10"]),
    st.integers(min_value=0, max_value=10**13).map(str),
)
leaves = st.one_of(texts, st.integers(min_value=-(10**13), max_value=10**13), st.booleans(), st.none(),
                   st.floats(allow_nan=False))
keys = st.one_of(st.sampled_from([*sorted(KEYS), "MaHoSo", "TrichYeuHoSo", "123456789"]), texts,
                 st.sampled_from([None, True, 1, 2.5, 123456789, 1203004567, 1_203_004_567_890]),
                 st.integers(min_value=0, max_value=10**13))
payloads = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(keys, inner, max_size=5)),
                        max_leaves=25)


@settings(max_examples=600, deadline=None)
@given(payloads)
def test_redaction_is_exactly_the_plain_walk(payload: Any) -> None:
    expected = reference(payload, KEYS)
    assert redact_payload(payload, KEYS, HASHER) == expected
    # again, now that clean strings are cached
    assert redact_payload(payload, KEYS, HASHER) == expected


objects = st.dictionaries(keys, payloads, max_size=6)


@settings(max_examples=600, deadline=None)
@given(objects)
def test_redaction_with_its_text_is_exactly_the_plain_walk(payload: dict[str, Any]) -> None:
    expected = reference(payload, KEYS)
    got = redact_payload_json(payload, KEYS, HASHER)
    assert isinstance(got, StoredPayload)
    assert got == expected
    assert got.json == payload_json(expected)


@pytest.mark.parametrize("text", ["số 001203004567", "a\n123456789", "a\"123456789", "x\\n123456789", "၁၂၃၄၅၆၇၈၉",
                                  "１２３４５６７８９", "𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"])
def test_text_the_byte_checks_cannot_clear_goes_through_the_walk(text: str) -> None:
    """An ID after an escape, or in digits beyond ASCII, is masked as the walk masks it."""
    payload = {"TrichYeuHoSo": text, "SoGiayToChuHoSo": "001203004567"}
    got = redact_payload_json(payload, KEYS, HASHER)
    assert got == reference(payload, KEYS)
    assert got.json == payload_json(reference(payload, KEYS))
    assert "001203004567" not in got.json


def test_a_mapping_that_is_not_a_dict_goes_through_the_walk() -> None:
    payload = {"HoSo": UserDict({"SoGiayToChuHoSo": "001203004567"})}
    got = redact_payload_json(payload, KEYS, HASHER)
    assert got == reference(payload, KEYS) == {"HoSo": {"SoGiayToChuHoSo": f"hmac:{HASHER('001203004567')}"}}
    assert "001203004567" not in got.json


def test_a_nested_id_field_is_hashed() -> None:
    got = redact_payload_json({"ThanhPhan": [{"SoGiayToChuHoSo": "001203004567"}]}, KEYS, HASHER)
    assert got == {"ThanhPhan": [{"SoGiayToChuHoSo": f"hmac:{HASHER('001203004567')}"}]}
    assert "001203004567" not in got.json


def test_the_digit_lead_bytes_cover_every_decimal_digit_beyond_ascii() -> None:
    """The byte checks of ``redact_payload_json`` hold for this Python's Unicode database."""
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if re.fullmatch(r"\d", char):
            lead, second = char.encode("utf-8")[:2]
            assert lead in privacy.DIGIT_LEADS or (lead == 0xE1 and not 0xB8 <= second <= 0xBB), hex(code)


@given(st.text(alphabet=" \t\n0123456789١٢", max_size=20))
def test_the_hasher_is_the_plain_hmac(number: str) -> None:
    assert HASHER(number) == reference_hash("test-key", number)
    assert HASHER(number) == reference_hash("test-key", number)  # the remembered one


@pytest.mark.parametrize("key", ["k", "test-key", "khóa bí mật", "x" * 64, "y" * 65, "ệ" * 40])
def test_the_hasher_is_the_plain_hmac_for_any_key(key: str) -> None:
    assert IdHasher(key)("001203004567") == reference_hash(key, "001203004567")


def test_the_clean_string_cache_stays_bounded() -> None:
    for i in range(3 * privacy._CLEAN_MAX):
        redact_payload({"TrichYeuHoSo": f"hồ sơ số {i}"}, KEYS, HASHER)
    assert len(privacy._CLEAN) <= privacy._CLEAN_MAX


def test_a_long_string_is_searched_every_time() -> None:
    text = "x" * (privacy._CLEAN_LONGEST + 1)
    redact_payload({"a": text}, KEYS, HASHER)
    assert text not in privacy._CLEAN


@pytest.mark.parametrize(("payload", "expected"), [
    ({"SoGiayToChuHoSo": 1203004567.0}, {"SoGiayToChuHoSo": f"hmac:{HASHER('1203004567.0')}"}),
    ({"CCCD": 123456789012}, {"CCCD": privacy.ID_PLACEHOLDER}),
    ({"DanhSach": [123456789, -123456789012, 1234567890, 0.123456789]},
     {"DanhSach": [privacy.ID_PLACEHOLDER, privacy.ID_PLACEHOLDER, 1234567890, privacy.ID_PLACEHOLDER]}),
    ({"001203004567": "An", "001203004568": "Bình"},
     {f"hmac:{HASHER('001203004567')}": "An", f"hmac:{HASHER('001203004568')}": "Bình"}),
    ({"TheoSo": {791203004567: "An", 1: "một", "1": "one"}},
     {"TheoSo": {f"hmac:{HASHER('791203004567')}": "An", "1 (2)": "một", "1": "one"}}),
])
def test_an_id_number_as_a_number_or_a_key_is_never_stored_in_clear(payload: dict[str, Any],
                                                                   expected: dict[str, Any]) -> None:
    """A float under an ID key is hashed; an ID-shaped number elsewhere is masked; an ID-shaped
    key is hashed, so two applicants' keys stay two keys, a number as a key too (written as
    text, as JSON writes keys, and numbered when that text is taken)."""
    got = redact_payload_json(payload, KEYS, HASHER)
    assert got == expected == reference(payload, KEYS)
    for number in ("123456789", "1203004567", "001203004567", "791203004567"):
        assert f'"{number}' not in got.json and f":{number}" not in got.json


@pytest.mark.parametrize(("text", "masked"), [
    ("CCCD：０７９１２３４５６７８９", "CCCD：[id-redacted]"),  # typed with a full-width keyboard
    ("CMND ٠١٢٣٤٥٦٧٨", "CMND [id-redacted]"),
    ("mã ０７９１２３４５６７８９０", "mã ０７９１２３４５６７８９０"),  # thirteen digits: not an ID
    ("1234567890١", "1234567890١"),  # eleven
])
def test_an_id_number_in_other_digits_is_masked_whole_or_not_at_all(text: str, masked: str) -> None:
    """A run of digits of any script is an ID when it has 9 or 12 digits; before, a run of 12
    full-width digits lost only its first 9 (the run's end was looked for among ASCII digits)."""
    assert redact_text(text) == masked


@pytest.mark.parametrize("escape", ["\\n", "\\t", "\\r", "\\x0b", "\\u200b", "\\U000e0001"])
def test_an_id_number_after_an_escape_python_wrote_is_masked(escape: str) -> None:
    """Python's own error messages quote a bad value as it writes it: a newline before an ID
    becomes "\\n", and the ID then follows a letter. Such text reaches quarantine reasons and
    the log from any exception."""
    try:
        int(f"ngày{escape.encode().decode('unicode_escape')}079123456789")
    except ValueError as exc:
        message = str(exc)
    assert "079123456789" in message  # as Python wrote it
    assert redact_text(message).endswith("'ngày" + escape + "[id-redacted]'")


@pytest.mark.parametrize(("number", "text"), [(79123456789, "079123456789"), (1123456789, "001123456789"),
                                            (12345678, "012345678"), (791234567890, "791234567890")])
def test_a_citizen_id_sent_as_a_json_number_keys_the_applicant_as_its_text_does(number: int, text: str) -> None:
    """A number drops leading zeros, and a CCCD begins with its province's code (001-096), a
    CMND often with 0: sent as a number by one system and as text by another, one applicant
    had two keys, and the inferred link between the two records was missed."""
    from sync_agent.privacy import id_number_text

    assert HASHER(id_number_text(number)) == HASHER(text)
    stored = redact_payload_json({"id_number": number}, KEYS, HASHER)
    assert stored == {"id_number": f"hmac:{HASHER(text)}"} == reference({"id_number": number}, KEYS)


def test_an_id_number_sent_as_text_is_taken_as_written() -> None:
    """Only a number can have lost its zeros: eleven digits of text are a typo, not a CCCD."""
    assert HASHER("07912345678") != HASHER("007912345678")
