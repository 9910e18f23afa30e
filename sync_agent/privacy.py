"""Personal data handling: citizens' ID numbers never leave a connector in clear.

The ID number is only needed to recognise the same applicant across systems, so a keyed hash
(HMAC-SHA256 with a secret key from the environment) is enough and cannot be reversed by
someone who copies the database.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from sync_agent.payload import StoredPayload, cut_nesting, orjson_bytes, payload_json

# A Vietnamese personal ID (CCCD) has 12 digits; old ID cards have 9. Anything that looks like
# one in free text is masked; a longer digit run (a dossier code, a timestamp) is left alone. A
# run is of digits of any script (a full-width keyboard types ０７９…), and ends at any of them.
# It may also start right after an escape Python wrote (an error message quotes a bad value
# that way: a newline before the ID becomes "\n", and the ID then follows a letter).
_ID_IN_TEXT = re.compile(
    r"(?:(?<![A-Za-z\d])|(?<=\\[abfnrtv])|(?<=\\x[0-9a-fA-F]{2})|(?<=\\u[0-9a-fA-F]{4})"
    r"|(?<=\\U[0-9a-fA-F]{8}))(\d{9}|\d{12})(?![A-Za-z\d])")
#: the same for a text without a backslash, where no escape can stand (its one lookbehind is
#: tried at every character, the five above two and a half times slower)
_ID_PLAIN = re.compile(r"(?<![A-Za-z\d])(\d{9}|\d{12})(?![A-Za-z\d])")
ID_PLACEHOLDER = "[id-redacted]"
#: nine digits in a row, which anything ID-shaped contains: a text without them is cleared by
#: this, which the regex engine scans twice as fast (``_ID_IN_TEXT`` opens with a lookbehind,
#: tried at every character)
_DIGIT_RUN = re.compile(r"\d\d{8}")
#: SHA-256's block size, to which HMAC pads its key
_BLOCK = 64


class IdHasher:
    """Keyed hash of ID numbers; one instance per configured key."""

    __slots__ = ("_inner", "_last", "_outer")

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the ID hash key must not be empty")
        # HMAC-SHA256 as RFC 2104 (and ``hmac``) computes it, with the two hashes of the padded
        # key done once here: ``hmac.digest`` redoes them, and fetches SHA-256, for every number
        secret = key.encode("utf-8")
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        secret = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
        # the last number and its hash: a mapping asks for the applicant key, then the payload's
        # redaction for the same number (one tuple, replaced whole, so threads may share it)
        self._last: tuple[str, str] = ("", "")

    def __call__(self, id_number: str | None) -> str | None:
        """The applicant key for an ID number, or ``None`` when there is no number."""
        if id_number is None:
            return None
        # str.split() drops exactly the characters str.isspace() calls whitespace
        digits = "".join(str(id_number).split())
        if not digits:
            return None
        last = self._last
        if last[0] == digits:
            return last[1]
        inner = self._inner.copy()
        # "surrogatepass": a byte that was not UTF-8 (read as a lone surrogate) is hashed too,
        # rather than failing the page with the number in its message; valid text is unchanged
        inner.update(digits.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        key = outer.hexdigest()[:32]
        self._last = (digits, key)
        return key


def _id_pattern(text: str) -> re.Pattern[str]:
    return _ID_IN_TEXT if "\\" in text else _ID_PLAIN


def id_spans(text: str) -> list[tuple[int, int]]:
    """Where ``redact_text`` would mask: the spans of the ID-shaped runs in ``text``."""
    if _DIGIT_RUN.search(text) is None:
        return []
    return [m.span() for m in _id_pattern(text).finditer(text)]


def redact_text(text: str) -> str:
    """Mask anything shaped like an ID number in free text (log lines, error messages)."""
    if _DIGIT_RUN.search(text) is None:  # the cheap test first (every log line comes here)
        return text
    return _id_pattern(text).sub(ID_PLACEHOLDER, text)


def redact_payload(value: Any, id_keys: frozenset[str], hasher: IdHasher) -> Any:
    """Copy of a JSON payload with every ``id_keys`` field replaced by its keyed hash.

    Free-text strings elsewhere are masked too: a citizen may type their ID number into a
    dossier summary. This runs once per record on every sync, so the walk only copies and
    collects the strings; they are searched together, in one regex pass over their join, and
    masked one by one only in the rare payload that has something to mask. The separator is
    not alphanumeric, so each string meets the regex's lookarounds exactly as on its own.
    """
    strings: list[str] = []
    out = _hash_ids(value, id_keys, hasher, strings)
    if not strings:
        return out
    joined = _JOIN.join(strings)
    if _DIGIT_RUN.search(joined) is not None and _id_pattern(joined).search(joined) is not None:
        return _mask_strings(out, hasher)
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    for s in strings:
        if len(s) <= _CLEAN_LONGEST:
            _CLEAN[s] = None
    return out


def redact_payload_json(value: Any, id_keys: frozenset[str], hasher: IdHasher) -> Any:
    """``redact_payload(value, …)``, as a ``StoredPayload`` carrying its canonical text when it
    is a JSON object (anything else as ``redact_payload`` gives it).

    A typical payload is decoded JSON whose ID fields sit at the top and whose text holds
    nothing ID-shaped. For it, the walk is replaced by checks on the canonical text, which has to
    be written anyway: the top-level ID fields are hashed in a shallow copy, the copy is written
    (a value of no JSON type, such as a mapping that is not a dict, makes orjson refuse), and the
    text is accepted as it is when (1) no ID key appears in it but those at the top, so no nested
    object has one, and (2) it provably holds no ID-shaped digit run in any string
    (``_clean_text``). Otherwise the walk runs, exactly as before. Either way the result is what
    ``redact_payload`` returns.
    """
    if value.__class__ is dict:
        copy = dict(value)
        for k in id_keys:
            if k in copy:
                copy[k] = _id_field(copy[k], hasher)
        data = orjson_bytes(copy)
        if data is not None and _clean_text(data) and all(
            data.count(quoted) == (1 if k in copy else 0) for k, quoted in _quoted(id_keys)
        ):
            return StoredPayload(copy, data.decode("utf-8"))
    try:
        out = redact_payload(value, id_keys, hasher)
    except RecursionError:  # nested deeper than the walk can go: kept cut, not the page's failure
        out = redact_payload(cut_nesting(value), id_keys, hasher)
    return StoredPayload(out, payload_json(out)) if out.__class__ is dict else out


def id_number_text(value: str | int | float) -> str:
    """An ID field's value as text. A whole number has lost its leading zeros, which every
    CCCD has (its province's code, 001-096) and many a CMND: 10 or 11 digits are given back a
    CCCD's 12, 8 a CMND's 9. Text is taken as written (only a number can have lost them)."""
    if isinstance(value, int) and value.__class__ is not bool and value >= 0:
        digits = str(value)
        return {10: "00", 11: "0", 8: "0"}.get(len(digits), "") + digits
    return str(value)


def _id_field(value: Any, hasher: IdHasher) -> Any:
    """An ID field's value as stored: a number (even a float, as a careless export writes one)
    or its text by its keyed hash, the same key the mapping derives from it; anything else
    (nothing, ``true``, a nested value) is left to the rest of the redaction."""
    if isinstance(value, str | int | float) and value.__class__ is not bool:
        key = hasher(id_number_text(value))
        return f"hmac:{key}" if key else value
    return value


def _clean_text(data: bytes) -> bool:
    """True only if no string written in ``data`` (canonical JSON, UTF-8) has an ID-shaped part.

    ``_ID_IN_TEXT`` over the strings one by one, done on the whole text with byte operations
    (the regex engine takes ten times longer on it). When the text has no backslash, its strings
    are written character for character between quotes; when it has no decimal digit but ASCII
    ones, ``\\d`` means ``[0-9]``; then a digit run of exactly 9 or 12 between non-alphanumeric
    characters somewhere in the text is the only way a string can match. A run found in a key or
    a number also answers False: the walk then decides, so erring that way costs time only.
    """
    shape = data.translate(_SHAPE)
    if b"!" in shape or _SHARED_LEAD_DIGIT.search(data) is not None:
        return False  # an escape, or perhaps a decimal digit beyond ASCII
    return b" 000000000 " not in shape and b" 000000000000 " not in shape


#: the first byte of every decimal digit beyond ASCII in UTF-8 (Arabic-Indic, N'Ko, the Indic
#: scripts, Thai, Lao, Tibetan, the ones after U+A000, fullwidth, and all planes past the BMP);
#: a test checks the list against the running Python's Unicode database
DIGIT_LEADS = b"\xd9\xdb\xdf\xe0\xea\xef\xf0\xf1\xf2\xf3\xf4"
#: ``\xe1`` starts decimal digits (Myanmar, Khmer, Mongolian, …) and also the Vietnamese letters
#: of U+1E00–U+1EFF, whose second byte is ``\xb8``–``\xbb``: only its other second bytes count
_SHARED_LEAD_DIGIT = re.compile(rb"\xe1[^\xb8-\xbb]")


def _shape_table() -> bytes:
    """ASCII digits → ``0``, ASCII letters → ``a``, a backslash or a ``DIGIT_LEADS`` byte → ``!``,
    anything else → space."""
    table = bytearray(b" " * 256)
    table[ord("0"):ord("9") + 1] = b"0" * 10
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        table[c] = ord("a")
    for c in b"\\" + DIGIT_LEADS:
        table[c] = ord("!")
    return bytes(table)


_SHAPE = _shape_table()
_QUOTED: dict[frozenset[str], tuple[tuple[str, bytes], ...]] = {}


def _quoted(id_keys: frozenset[str]) -> tuple[tuple[str, bytes], ...]:
    """Each ID key as the canonical text writes it as a key."""
    found = _QUOTED.get(id_keys)
    if found is None:
        found = _QUOTED[id_keys] = tuple((k, orjson_bytes(k) or b"\x00") for k in id_keys)
    return found


#: joins a payload's strings for the one search; any non-alphanumeric character would do
_JOIN = "\x00"

#: Strings recently found to hold nothing ID-shaped. Procedure, field, office and file names
#: repeat in every page, and skipping them more than halves the text the regex must scan. It
#: is bounded (emptied when full), so memory stays flat however many records pass.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX = 4096
_CLEAN_LONGEST = 200


def _hash_ids(value: Any, id_keys: frozenset[str], hasher: IdHasher, strings: list[str]) -> Any:
    """The copy with ID fields hashed; every other string is left as it is, and collected
    unless it is known to be clean."""
    kind = type(value)
    if kind is str:
        strings.append(value)
        return value
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.__class__ is not str:
                k = _text_key(k, value, out)
            if not k.isalpha() and k not in _CLEAN:
                strings.append(k)  # a key may be an ID number too (a map keyed by applicant)
            vkind = type(v)
            if k in id_keys and isinstance(v, str | int | float) and vkind is not bool:
                out[k] = _id_field(v, hasher)
            elif vkind is str:
                # a run of ASCII digits alone (a time, a code) is ID-shaped by its length only
                if v not in _CLEAN and not (v.isascii() and v.isdecimal() and len(v) != 9 and len(v) != 12):
                    strings.append(v)
                out[k] = v
            elif vkind is int or vkind is float:
                _collect_number(v, strings)
                out[k] = v
            elif vkind is bool or v is None:
                out[k] = v
            else:
                out[k] = _hash_ids(v, id_keys, hasher, strings)
        return out
    if isinstance(value, list):
        return [_hash_ids(v, id_keys, hasher, strings) for v in value]
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, int | float) and kind is not bool:
        _collect_number(value, strings)
    return value


def _text_key(key: Any, obj: Mapping[Any, Any], out: Mapping[str, Any]) -> str:
    """A key that is not text, as JSON writes keys: ``1`` → ``"1"``, ``None`` → ``"null"``,
    ``True`` → ``"true"``, anything else by ``str()``.

    Decoded JSON has only text keys, but a connector may build a payload from something else
    (a map keyed by ID number, say). As text, such a key is searched and masked like any other,
    and the payload can be written sorted. Should that text already be a key of the object
    (``1`` beside ``"1"``), a number is added, `` (2)``, `` (3)``…: no value is lost.
    """
    text = json.dumps(key) if key is None or isinstance(key, int | float) else str(key)  # bool is an int
    candidate, n = text, 1
    while candidate in out or candidate in obj:
        n += 1
        candidate = f"{text} ({n})"
    return candidate


def _collect_number(value: float, strings: list[str]) -> None:
    """An ID number sent as a JSON number (no ID key tells it apart) is masked like one in text.

    Only an ID-shaped number is collected, so the clean-string cache never fills with numbers.
    """
    # an integer needs nine digits to hold a run of nine; a float's fraction may hold one alone
    if value.__class__ is int and -100_000_000 < value < 100_000_000:
        return
    text = str(value)
    if _id_pattern(text).search(text) is not None:
        strings.append(text)


def _mask_strings(value: Any, hasher: IdHasher) -> Any:
    """Every string of an already ID-hashed copy through ``redact_text`` (the hashes cannot match),
    an ID-shaped number replaced by the placeholder, and an ID-shaped part of a key by its keyed
    hash: two keys must stay two keys, or a value would be lost."""
    if isinstance(value, dict):
        return {_mask_key(k, hasher): _mask_strings(v, hasher) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v, hasher) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float) and value.__class__ is not bool and _ID_PLAIN.search(str(value)):
        return ID_PLACEHOLDER
    return value


def _mask_key(key: str, hasher: IdHasher) -> str:
    # the walk's copy has only text keys (``_text_key``)
    return _id_pattern(key).sub(lambda m: f"hmac:{hasher(m.group())}", key)


def clean_text_fields(procedure_name: str | None, field_name: str | None,
                      applicant_name: str | None) -> tuple[str | None, str | None, str | None]:
    """A record's free-text fields (the procedure's, the field's and the applicant's names) as
    they may be stored: ID-shaped digits masked, and the applicant's full name, where the
    procedure's or field's name repeats it, masked as emails show it. These columns are shown in
    emails and webhooks as they are. Run for every record: the name is split once, and a text
    without a digit run costs one search."""
    name = _without_ids(applicant_name)
    # a full name only: one word may be part of another (the given name "An" in "An Khánh")
    words = name.split() if name else []
    given = unicodedata.normalize("NFC", words[-1]).casefold() if len(words) > 1 else None
    return _clean_field(procedure_name, words, given), _clean_field(field_name, words, given), name


def _without_ids(text: str | None) -> str | None:
    if text and _DIGIT_RUN.search(text) is not None:
        return _id_pattern(text).sub(ID_PLACEHOLDER, text)
    return text


def _clean_field(text: str | None, words: list[str], given: str | None) -> str | None:
    text = _without_ids(text)
    if not text or given is None:
        return text
    if not unicodedata.is_normalized("NFC", text):  # decomposed accents, as some systems send
        text = unicodedata.normalize("NFC", text)
    if given in text.casefold():  # the cheap test first: a regex is built only then
        name = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(unicodedata.normalize("NFC", w)) for w in words)
                          + r"(?!\w)", re.IGNORECASE)
        text = name.sub(mask_name(" ".join(words)), text)
    return text


def mask_name(name: str | None) -> str:
    """Mask a Vietnamese full name for emails: keep the family name's initial and the given name.

    ``Nguyễn Văn An`` becomes ``N. V. An``: enough for staff to recognise a dossier they hold,
    not enough to identify a citizen from a forwarded email.
    """
    if not name or not name.strip():
        return ""
    parts = name.split()
    if len(parts) == 1:
        word = parts[0]
        return word[0] + "*" * (len(word) - 1)
    return " ".join(p[0] + "." for p in parts[:-1]) + " " + parts[-1]
