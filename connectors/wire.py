"""Reading wire values the way ``sources.md`` says, the same way in every mapping.

``""``, ``null`` and a missing field all mean "none"; a value of the wrong shape, a date that
does not parse or an unknown code is a ``RecordError`` whose message names the field and the
value (never an ID number), and the record is quarantined rather than half-written.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sync_agent.errors import RecordError
from sync_agent.model import COMPLETED, DossierRecord, QuarantinedRecord, Status
from sync_agent.privacy import IdHasher, id_number_text, redact_payload_json, redact_text

_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


def show(value: Any) -> str:
    """A value as it may appear in a quarantine reason: short, with ID-shaped digits masked."""
    # its text masked before ``repr``, which writes a newline as "\n": the ID would follow a letter
    text = redact_text(repr(_masked(value)))  # and before the cut, which could leave it short of a digit
    if len(text) > 60:  # and after it, which could leave a longer run twelve digits long
        text = redact_text(text[:57]) + "..."
    return text


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, Mapping):
        return {(redact_text(k) if isinstance(k, str) else k): _masked(v) for k, v in value.items()}
    return value


def is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


#: dotted keys split once: the mappings ask for the same few keys for every record
_PATHS: dict[str, tuple[str, ...]] = {}


def lookup(item: Mapping[str, Any], key: str) -> Any:
    """The value at ``key``; a dotted key walks nested objects (``"applicant.id_number"``).

    A missing or empty parent object means the value is missing too. Called for every field of
    every record, so a flat key on a plain ``dict`` (what JSON decodes to) is one ``get``.
    """
    if type(item) is dict and "." not in key:
        return item.get(key)
    parts = _PATHS.get(key)
    if parts is None:
        parts = _PATHS[key] = tuple(key.split("."))
    value: Any = item
    for i, part in enumerate(parts):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if type(value) is not dict and not isinstance(value, Mapping):
            raise RecordError(f"field {'.'.join(parts[:i])}: expected an object, got {type(value).__name__}")
        value = value.get(part)
    return value


def text(item: Mapping[str, Any], key: str) -> str | None:
    """A text field, stripped; numbers are taken as their decimal text."""
    value = item.get(key) if type(item) is dict and "." not in key else lookup(item, key)
    if isinstance(value, str):
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    # The value itself is not shown: this may be an ID field.
    raise RecordError(f"field {key}: expected text, got {type(value).__name__}")


def id_number(item: Mapping[str, Any], key: str) -> str | None:
    """An ID number field as text; sent as a number, given back the leading zeros it lost."""
    value = item.get(key) if type(item) is dict and "." not in key else lookup(item, key)
    if isinstance(value, int) and not isinstance(value, bool):
        return id_number_text(value)
    return text(item, key)


def required_text(item: Mapping[str, Any], key: str) -> str:
    value = text(item, key)
    if value is None:
        raise RecordError(f"missing required field {key}")
    return value


def flag(item: Mapping[str, Any], key: str) -> bool:
    """A yes/no field sent as a JSON bool, ``"1"``/``"0"`` or ``"true"``/``"false"``; none is no."""
    value = lookup(item, key)
    if is_none(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise RecordError(f"field {key}: {show(value)} is not a yes/no value")


def amount(item: Mapping[str, Any], key: str) -> Decimal | None:
    """A money amount sent as a JSON number or numeric text."""
    value = lookup(item, key)
    if is_none(value):
        return None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
    raise RecordError(f"field {key}: {show(value)} is not an amount")


def objects(item: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """A list of objects; none is an empty list."""
    value = item.get(key) if type(item) is dict and "." not in key else lookup(item, key)
    if value.__class__ is list:
        for v in value:
            if v.__class__ is not dict and not isinstance(v, Mapping):
                raise RecordError(f"field {key}: expected a list of objects")
        return value
    if is_none(value):
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise RecordError(f"field {key}: expected a list of objects")
    return value


def code(item: Mapping[str, Any], key: str, table: Mapping[str, Any], *, required: bool = True) -> Any:
    """Look a code up in ``table``; an unknown code is a ``RecordError``."""
    value = text(item, key)
    if value is None:
        if required:
            raise RecordError(f"missing required field {key}")
        return None
    if value not in table:
        raise RecordError(f"field {key}: unknown code {show(value)}")
    return table[value]


TimeParser = Callable[[str], dt.datetime]


@dataclass(frozen=True)
class LocalTimeFormat:
    """A wire time without a zone, read in the source's zone (the connector's context's:
    ``connectors.NAME.timezone``, Vietnam's by default).

    ``regex`` names its groups ``Y m d H M S``; ``template`` renders the same fields back.
    """

    pattern: str
    regex: re.Pattern[str]
    template: str
    #: ``parser``'s answers by zone: mappings ask for it per record, and the cache below keys on
    #: this dataclass, whose hash (of all its fields, in Python) costs more than a parse
    _parsers: dict[ZoneInfo, TimeParser] = field(default_factory=dict, init=False, repr=False, compare=False)

    def parse(self, value: str, tz: ZoneInfo) -> dt.datetime:
        """The aware instant; ``ValueError`` when ``value`` is not exactly in this format."""
        return self.parser(tz)(value)

    def parser(self, tz: ZoneInfo) -> TimeParser:
        """``parse`` bound to ``tz``: one call per time field of every record, so made once."""
        found = self._parsers.get(tz)
        if found is None:
            found = self._parsers[tz] = _local_parser(self, tz)
        return found

    def format(self, moment: dt.datetime, tz: ZoneInfo) -> str:
        """``moment`` as the source writes it (in its zone; sub-second part dropped)."""
        local = moment.astimezone(tz) if moment.tzinfo else moment
        return self.template.format(
            Y=local.year, m=local.month, d=local.day, H=local.hour, M=local.minute, S=local.second
        )


@functools.lru_cache(maxsize=64)
def _local_parser(fmt: LocalTimeFormat, tz: ZoneInfo) -> TimeParser:
    shape = f"not in the form {fmt.pattern}"
    datetime = dt.datetime
    digits = _digits_only(fmt)
    if digits is not None:
        # All digits (``yyyyMMddHHmmss``): one int() and arithmetic, as the regex would read it
        # (\d is str.isdecimal, and int() reads any decimal digits the same way).
        length, (y, mo, d, h, mi, s) = digits

        def parse_digits(value: str) -> dt.datetime:
            text = value.strip()
            if len(text) != length or not text.isdecimal():
                raise ValueError(shape)
            n = int(text)
            return datetime(n // y[0] % y[1], n // mo[0] % mo[1], n // d[0] % d[1],
                            n // h[0] % h[1], n // mi[0] % mi[1], n // s[0] % s[1], tzinfo=tz)

        # A record often gives one instant twice (updated and ended, received and due in the
        # same second): the latest answers are kept (an exception is never cached).
        return functools.lru_cache(maxsize=256)(parse_digits)

    fullmatch = fmt.regex.fullmatch
    groups = tuple(fmt.regex.groupindex[name] for name in "YmdHMS")

    def parse(value: str) -> dt.datetime:
        m = fullmatch(value.strip())
        if m is None:
            raise ValueError(shape)
        year, month, day, hour, minute, second = map(int, m.group(*groups))
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)

    return parse


_FIELD = re.compile(r"\{([YmdHMS]):0(\d)d\}")


def _digits_only(fmt: LocalTimeFormat) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """For a format of fixed-width numbers and nothing else, whose regex says exactly that:
    its length, and (divisor, modulus) extracting each of Y m d H M S from the whole number."""
    fields = [(m[1], int(m[2])) for m in _FIELD.finditer(fmt.template)]
    if "".join(f"{{{name}:0{width}d}}" for name, width in fields) != fmt.template:
        return None
    expected = "".join(rf"(?P<{name}>\d{{{width}}})" for name, width in fields)
    if fmt.regex.pattern != expected or fmt.regex.flags != re.compile(expected).flags:
        return None
    if sorted(name for name, _ in fields) != sorted("YmdHMS"):
        return None
    length = sum(width for _, width in fields)
    place, at = 1, {}
    for name, width in reversed(fields):
        at[name] = (place, 10**width)
        place *= 10**width
    return length, tuple(at[name] for name in "YmdHMS")


def time_field(item: Mapping[str, Any], key: str, parse: TimeParser, pattern: str) -> dt.datetime | None:
    """A time field through ``parse``; unparseable is a ``RecordError`` naming field and value."""
    value = item.get(key) if type(item) is dict and "." not in key else lookup(item, key)
    if isinstance(value, str):
        if not value.strip():
            return None
    elif value is None:
        return None
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        try:
            return parse(value)
        except (ValueError, OverflowError):
            pass
    raise RecordError(f"field {key}: {show(value)} is not a date in the form {pattern}")


def required_time(item: Mapping[str, Any], key: str, parse: TimeParser, pattern: str) -> dt.datetime:
    value = time_field(item, key, parse, pattern)
    if value is None:
        raise RecordError(f"missing required field {key}")
    return value


@dataclass(frozen=True)
class EndTimes:
    completed_at: dt.datetime | None = None
    rejected_at: dt.datetime | None = None
    withdrawn_at: dt.datetime | None = None


def end_times(
    status: Status,
    finished: dt.datetime | None,
    updated: dt.datetime,
    falls_back: frozenset[Status],
) -> EndTimes:
    """Where the status table says a dossier ended: at ``finished``, for the statuses in
    ``falls_back`` "else ``updated``"; an open status has no end time."""
    at = finished if finished is not None or status not in falls_back else updated
    if status in COMPLETED:
        return EndTimes(completed_at=at)
    if status is Status.REJECTED:
        return EndTimes(rejected_at=at)
    if status is Status.WITHDRAWN:
        return EndTimes(withdrawn_at=at)
    return EndTimes()


def redacted(item: Any, id_keys: frozenset[str], hasher: IdHasher) -> Mapping[str, Any]:
    """The payload as it may be stored: ID fields hashed, ID-shaped text masked (an object
    comes with its stored text, see ``redact_payload_json``)."""
    clean = redact_payload_json(item, id_keys, hasher)
    return clean if isinstance(clean, Mapping) else {"value": clean}


def updated_time(item: Any, updated_field: str, parse_updated: TimeParser, updated_pattern: str) -> dt.datetime | None:
    """An item's update time as ``normalise`` finds it (``None`` where it has none), without
    normalising the item: what keyset paging needs to ask for the next page early."""
    if not isinstance(item, Mapping):
        return None
    try:
        return time_field(item, updated_field, parse_updated, updated_pattern)
    except RecordError:
        return None


def normalise(
    item: Any,
    build: Callable[[Mapping[str, Any]], DossierRecord],
    *,
    source: str,
    hasher: IdHasher,
    id_keys: frozenset[str],
    id_field: str,
    updated_field: str,
    parse_updated: TimeParser,
    updated_pattern: str,
) -> DossierRecord | QuarantinedRecord:
    """``build(item)``, or the item quarantined with the reason: never raises for data."""
    if not isinstance(item, Mapping):
        return QuarantinedRecord(
            source=source, reason=f"not a JSON object but {type(item).__name__}",
            raw=redacted(item, id_keys, hasher),
        )
    try:
        return build(item)
    except RecordError as exc:
        reason = str(exc)
    except Exception as exc:  # a shape no rule foresaw must cost one record, not the page
        reason = f"cannot be normalised ({type(exc).__name__}: {redact_text(redact_text(str(exc))[:120])})"
    source_id: str | None
    updated: dt.datetime | None
    try:
        source_id = text(item, id_field)
    except RecordError:
        source_id = None
    try:
        updated = time_field(item, updated_field, parse_updated, updated_pattern)
    except RecordError:
        updated = None
    return QuarantinedRecord(
        source=source, reason=reason, raw=redacted(item, id_keys, hasher), source_id=source_id,
        source_updated_at=updated,
    )
