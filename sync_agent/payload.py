"""Source payloads as JSON: read from a source's answer, and kept as one canonical text.

``dossiers.raw_payload`` and ``quarantine.raw_payload`` hold it, and a record's content hash
covers it, so the same payload must give the same text every time: keys sorted, no spaces,
characters as they are (UTF-8, not ``\\u`` escapes). orjson writes it several times faster than
the standard library, which matters because every record of every sync is written. Anything
orjson refuses (an integer beyond 64 bits, a lone surrogate, a key that is not a string) goes
through the standard library instead. The two write the same text for every decoded JSON value
except floats the standard library writes with an exponent (``1e-07``, orjson ``1e-7``) and NaN
or Infinity (not JSON; orjson writes ``null``). A stored payload holding one of those gets a new
text once after an upgrade: its record counts as updated once, and a quarantined one is kept
again as a new quarantine row rather than counted into the old one.

A lone surrogate (``"\\ud800"`` in a source's JSON: a character cut in half, as a system that
counts UTF-16 units may cut one) is the one thing the text keeps as JSON's escape: as a
character it is not Unicode, no database takes it as UTF-8, and every payload holding one
failed its page.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: what the store wrote before orjson, and still writes for what orjson refuses
_STANDARD = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str,
                             check_circular=False)


class StoredPayload(dict[str, Any]):
    """A redacted payload together with its canonical text (``payload_json``).

    The redaction already writes the text to check it (see ``privacy.redact_payload_json``); the
    store takes it from here instead of writing it a second time. Never changed after it is made.
    """

    __slots__ = ("json",)

    def __init__(self, items: dict[str, Any], text: str) -> None:
        super().__init__(items)
        self.json = text

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoredPayload, (dict(self), self.json))


#: a UTF-16 surrogate on its own: what a text holds where a source's JSON escaped half a character
_SURROGATE = re.compile("[\ud800-\udfff]")


#: how deep a payload is kept when it is too deep to be written whole: the interpreter's
#: recursion limit stops both the standard library's writer and the redaction's walk long before
#: a JSON reader's, so a source can send what neither could handle
MAX_NESTING = 100
#: what stands for a list or object deeper than that
DEEPER = f"[nested deeper than {MAX_NESTING} levels: not kept]"


def cut_nesting(value: Any, depth: int = MAX_NESTING) -> Any:
    """``value`` with every list or object below ``depth`` levels replaced by ``DEEPER``."""
    if isinstance(value, dict | list) and depth <= 0:
        return DEEPER
    if isinstance(value, dict):
        return {k: cut_nesting(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [cut_nesting(v, depth - 1) for v in value]
    return value


def _standard(value: Any) -> str:
    """The standard library's text, with any lone surrogate written as its escape (the same
    value once read back, and text a database can store); a payload too deep to write whole is
    written cut (``cut_nesting``) rather than failing its page."""
    try:
        text = _STANDARD.encode(value)
    except RecursionError:
        text = _STANDARD.encode(cut_nesting(value))
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def orjson_bytes(value: Any) -> bytes | None:
    """The canonical text (UTF-8) of ``value`` made only of JSON types (dicts, lists, strings,
    numbers, booleans, ``None``; no ``default=str``), or ``None`` when orjson refuses it."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return None


def payload_json(value: Any) -> str:
    """The canonical text of ``value`` (see the module docstring)."""
    if value.__class__ is StoredPayload:
        text: str = value.json
        return text
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode("utf-8")
    except orjson.JSONEncodeError:
        return _standard(value)


#: every byte but an ASCII digit made a space: a long run of digits then shows as zeros
_DIGIT_SHAPE = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_BOM = b"\xef\xbb\xbf"
#: orjson reads an integer of 19 digits or more past the 64-bit range as a float, losing digits
_LONG_NUMBER = b"0" * 19


def decode_json(body: bytes) -> Any:
    """``json.loads(body.decode("utf-8"))``: the same values, or the same error, but for two
    things that would fail the whole page (and so every run of its source) for one record's
    sake: a leading byte-order mark is skipped (RFC 8259 lets a reader ignore it), and a byte
    that is not UTF-8 is read as Python's stand-in for it, a lone surrogate (``\\udce0``), which
    the store quarantines in a field it keeps and escapes in the raw payload elsewhere.

    A page of records is decoded about twice as fast by orjson. It is used when it gives what
    the standard library gives: a body with a run of 19 digits or more, or one orjson refuses
    (NaN, a lone surrogate, invalid UTF-8, nesting deeper than 1024, not JSON at all), goes
    through the standard library, whose answer or error is the one the caller gets. One
    difference: nesting a few hundred levels deep, past what the interpreter's recursion limit
    lets the standard library read, is read instead of failing.
    """
    if body[:3] == _BOM:
        body = body[3:]
    if _LONG_NUMBER not in body.translate(_DIGIT_SHAPE):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body.decode("utf-8", "surrogateescape"))
