"""``residence`` wire records (Ministry of Public Security residence system) → ``DossierRecord``.

Pure functions: no I/O, so every rule of ``sources.md`` section 3 is testable on its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import ConnectorContext
from connectors.wire import (
    TimeParser,
    amount,
    code,
    end_times,
    flag,
    id_number,
    normalise,
    redacted,
    required_text,
    required_time,
    text,
    time_field,
)
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status

SOURCE = "residence"
ID_KEYS: frozenset[str] = frozenset({"id_number"})
DEFAULT_FIELD_CODE = "CUTRU"
DEFAULT_FIELD_NAME = "Cư trú"

TIME_PATTERN = "ISO 8601 with a UTC offset (2026-01-20T08:15:00+07:00)"
_ISO = re.compile(
    r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})[Tt ](?P<H>\d{2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<z>[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)"
)

#: ``status`` → normalised status
STATUSES: Mapping[str, Status] = {
    "received": Status.RECEIVED,
    "processing": Status.IN_PROGRESS,
    "supplement_requested": Status.AWAITING_SUPPLEMENT,
    "completed": Status.RESOLVED,
    "returned": Status.DELIVERED,
    "rejected": Status.REJECTED,
    "withdrawn": Status.WITHDRAWN,
}
#: statuses whose end time falls back to ``updated_at`` when ``finished_at`` is empty
FALLS_BACK: frozenset[Status] = frozenset({Status.WITHDRAWN})

CHANNELS: Mapping[str, Channel] = {
    "online": Channel.ONLINE,
    "counter": Channel.DIRECT,
    "post": Channel.POSTAL,
}


def parse_time(value: str, context: ConnectorContext) -> dt.datetime:
    """An ISO 8601 time with its offset, as the ward's local time.

    A time without an offset is refused (``ValueError``) rather than guessed: the format
    promises one, and a guess would be silently wrong by seven hours if the source meant UTC.
    """
    return time_parser(context.timezone)(value)


#: the fixed zone of each offset text seen (a source sends one or two)
_ZONES: dict[str, dt.timezone] = {}


def _zone(z: str) -> dt.timezone:
    zone = _ZONES.get(z)
    if zone is None:
        if z in ("Z", "z"):
            offset = dt.timedelta(0)
        else:
            digits = z[1:].replace(":", "")
            offset = dt.timedelta(
                hours=int(digits[:2]), minutes=int(digits[2:4] or 0), seconds=int(digits[4:] or 0)
            )
            if z[0] == "-":
                offset = -offset
        zone = dt.timezone(offset)
        if len(_ZONES) < 64:
            _ZONES[z] = zone
    return zone


@functools.lru_cache(maxsize=16)
def time_parser(tz: ZoneInfo) -> TimeParser:
    """``parse_time`` for one ward zone, made once: it runs for every time field of every record."""
    fullmatch = _ISO.fullmatch
    datetime = dt.datetime

    def parse(value: str) -> dt.datetime:
        m = fullmatch(value.strip())
        if m is None:
            raise ValueError(f"not {TIME_PATTERN}")
        year, month, day, hour, minute, second, fraction, z = m.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
            tzinfo=_zone(z),
        )
        return moment.astimezone(tz)

    return parse


def format_time(moment: dt.datetime, context: ConnectorContext) -> str:
    """``moment`` in the ward's time with its offset, whole seconds (what the source accepts)."""
    return moment.astimezone(context.timezone).isoformat(timespec="seconds")


def _time(item: Mapping[str, Any], key: str, parse: TimeParser) -> dt.datetime | None:
    return time_field(item, key, parse, TIME_PATTERN)


def to_record(
    item: Mapping[str, Any],
    context: ConnectorContext,
    *,
    source: str = SOURCE,
    field_code: str = DEFAULT_FIELD_CODE,
    field_name: str = DEFAULT_FIELD_NAME,
) -> DossierRecord:
    """One residence item as a record; ``RecordError`` names what is wrong with it."""
    source_id = required_text(item, "id")
    procedure_code = required_text(item, "procedure.code")
    status: Status = code(item, "status", STATUSES)
    parse = time_parser(context.timezone)
    updated = required_time(item, "updated_at", parse, TIME_PATTERN)
    ends = end_times(status, _time(item, "finished_at", parse), updated, FALLS_BACK)
    fee = amount(item, "fee.amount")
    return DossierRecord(
        source=source,
        source_id=source_id,
        procedure_code=procedure_code,
        status=status,
        source_updated_at=updated,
        reception_code=text(item, "one_stop_code"),
        procedure_name=text(item, "procedure.name"),
        field_code=field_code,
        field_name=field_name,
        applicant_name=text(item, "applicant.full_name"),
        applicant_key=context.hasher(id_number(item, "applicant.id_number")),
        channel=CHANNELS.get(text(item, "channel") or "", Channel.UNKNOWN),
        submitted_at=_time(item, "submitted_at", parse),
        received_at=_time(item, "received_at", parse),
        due_at=_time(item, "due_at", parse),
        completed_at=ends.completed_at,
        rejected_at=ends.rejected_at,
        withdrawn_at=ends.withdrawn_at,
        digitised=flag(item, "digitised"),
        data_reused=flag(item, "reused_data"),
        fee_required=fee is not None and fee > 0,
        paid_online=flag(item, "fee.paid_online"),
        raw=redacted(item, ID_KEYS, context.hasher),
    )


def normalise_item(
    item: Any,
    context: ConnectorContext,
    *,
    source: str = SOURCE,
    field_code: str = DEFAULT_FIELD_CODE,
    field_name: str = DEFAULT_FIELD_NAME,
) -> DossierRecord | QuarantinedRecord:
    """The record, or the item quarantined with its reason; never raises for bad data."""
    return normalise(
        item,
        lambda it: to_record(it, context, source=source, field_code=field_code, field_name=field_name),
        source=source,
        hasher=context.hasher,
        id_keys=ID_KEYS,
        id_field="id",
        updated_field="updated_at",
        parse_updated=time_parser(context.timezone),
        updated_pattern=TIME_PATTERN,
    )
