"""Reading wire values the way ``sources.md`` says, the same way in every mapping.

``""``, ``null`` and a missing field all mean "none"; a value of the wrong shape, a date that
does not parse or an unknown code is a ``RecordError`` whose message names the field and the
value (never an ID number), and the record is quarantined rather than half-written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sync_agent.errors import RecordError
from sync_agent.model import COMPLETED, DossierRecord, QuarantinedRecord, Status
from sync_agent.privacy import IdHasher, redact_payload, redact_text

_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


def show(value: Any) -> str:
    """A value as it may appear in a quarantine reason: short, with ID-shaped digits masked."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return redact_text(text)


def is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def lookup(item: Mapping[str, Any], key: str) -> Any:
    """The value at ``key``; a dotted key walks nested objects (``"applicant.id_number"``).

    A missing or empty parent object means the value is missing too.
    """
    value: Any = item
    walked: list[str] = []
    for part in key.split("."):
        if is_none(value):
            return None
        if not isinstance(value, Mapping):
            raise RecordError(f"field {'.'.join(walked)}: expected an object, got {type(value).__name__}")
        value = value.get(part)
        walked.append(part)
    return value


def text(item: Mapping[str, Any], key: str) -> str | None:
    """A text field, stripped; numbers are taken as their decimal text."""
    value = lookup(item, key)
    if is_none(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    # The value itself is not shown: this may be an ID field.
    raise RecordError(f"field {key}: expected text, got {type(value).__name__}")


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
    value = lookup(item, key)
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


@dataclass(frozen=True)
class LocalTimeFormat:
    """A wire time without a zone, read as the ward's local time.

    ``regex`` names its groups ``Y m d H M S``; ``template`` renders the same fields back.
    """

    pattern: str
    regex: re.Pattern[str]
    template: str

    def parse(self, value: str, tz: ZoneInfo) -> dt.datetime:
        """The aware instant; ``ValueError`` when ``value`` is not exactly in this format."""
        m = self.regex.fullmatch(value.strip())
        if m is None:
            raise ValueError(f"not in the form {self.pattern}")
        g = {k: int(v) for k, v in m.groupdict().items()}
        return dt.datetime(g["Y"], g["m"], g["d"], g["H"], g["M"], g["S"], tzinfo=tz)

    def format(self, moment: dt.datetime, tz: ZoneInfo) -> str:
        """``moment`` as the source writes it (ward time; sub-second part dropped)."""
        local = moment.astimezone(tz) if moment.tzinfo else moment
        return self.template.format(
            Y=local.year, m=local.month, d=local.day, H=local.hour, M=local.minute, S=local.second
        )


TimeParser = Callable[[str], dt.datetime]


def time_field(item: Mapping[str, Any], key: str, parse: TimeParser, pattern: str) -> dt.datetime | None:
    """A time field through ``parse``; unparseable is a ``RecordError`` naming field and value."""
    value = lookup(item, key)
    if is_none(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
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
    """The payload as it may be stored: ID fields hashed, ID-shaped text masked."""
    clean = redact_payload(item, id_keys, hasher)
    return clean if isinstance(clean, Mapping) else {"value": clean}


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
        reason = f"cannot be normalised ({type(exc).__name__}: {redact_text(str(exc))[:120]})"
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
