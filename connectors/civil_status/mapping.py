"""``civil_status`` wire records (Ministry of Justice civil-status exchange) → ``DossierRecord``.

Pure functions: no I/O, so every rule of ``sources.md`` section 2 is testable on its own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from connectors.base import ConnectorContext
from connectors.wire import (
    LocalTimeFormat,
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
    updated_time,
)
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status

SOURCE = "civil_status"
ID_KEYS: frozenset[str] = frozenset({"soDinhDanh"})
DEFAULT_FIELD_CODE = "HOTICH"
DEFAULT_FIELD_NAME = "Hộ tịch"

TIME_FORMAT = LocalTimeFormat(
    pattern="dd/MM/yyyy HH:mm:ss",
    regex=re.compile(r"(?P<d>\d{2})/(?P<m>\d{2})/(?P<Y>\d{4}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    template="{d:02d}/{m:02d}/{Y:04d} {H:02d}:{M:02d}:{S:02d}",
)
#: the field that says when the source last changed a record (keyset paging reads it alone)
UPDATED_FIELD = "ngayCapNhat"

#: ``trangThai`` (an integer on the wire) → normalised status
STATUSES: Mapping[str, Status] = {
    "1": Status.RECEIVED,
    "2": Status.AWAITING_SUPPLEMENT,
    "3": Status.IN_PROGRESS,
    "4": Status.RESOLVED,
    "5": Status.DELIVERED,
    "6": Status.REJECTED,
    "7": Status.WITHDRAWN,
}
#: statuses whose end time falls back to ``ngayCapNhat`` when ``ngayXuLyXong`` is empty
FALLS_BACK: frozenset[Status] = frozenset({Status.REJECTED, Status.WITHDRAWN})

CHANNELS: Mapping[str, Channel] = {
    "TRUC_TUYEN": Channel.ONLINE,
    "TRUC_TIEP": Channel.DIRECT,
    "BUU_CHINH": Channel.POSTAL,
}


def parse_time(value: str, context: ConnectorContext) -> dt.datetime:
    return TIME_FORMAT.parser(context.timezone)(value)


def format_time(moment: dt.datetime, context: ConnectorContext) -> str:
    return TIME_FORMAT.format(moment, context.timezone)


def _time(item: Mapping[str, Any], key: str, parse: TimeParser) -> dt.datetime | None:
    return time_field(item, key, parse, TIME_FORMAT.pattern)


def to_record(
    item: Mapping[str, Any],
    context: ConnectorContext,
    *,
    source: str = SOURCE,
    field_code: str = DEFAULT_FIELD_CODE,
    field_name: str = DEFAULT_FIELD_NAME,
) -> DossierRecord:
    """One civil-status item as a record; ``RecordError`` names what is wrong with it."""
    source_id = required_text(item, "maHoSo")
    procedure_code = required_text(item, "maTTHC")
    status: Status = code(item, "trangThai", STATUSES)
    parse = TIME_FORMAT.parser(context.timezone)
    updated = required_time(item, UPDATED_FIELD, parse, TIME_FORMAT.pattern)
    ends = end_times(status, _time(item, "ngayXuLyXong", parse), updated, FALLS_BACK)
    fee = amount(item, "lePhi")
    return DossierRecord(
        source=source,
        source_id=source_id,
        procedure_code=procedure_code,
        status=status,
        source_updated_at=updated,
        reception_code=text(item, "maHoSoMCDT"),
        procedure_name=text(item, "tenTTHC"),
        field_code=field_code,
        field_name=field_name,
        applicant_name=text(item, "nguoiYeuCau.hoTen"),
        applicant_key=context.hasher(id_number(item, "nguoiYeuCau.soDinhDanh")),
        channel=CHANNELS.get(text(item, "kenhNop") or "", Channel.UNKNOWN),
        submitted_at=_time(item, "ngayNop", parse),
        received_at=_time(item, "ngayTiepNhan", parse),
        due_at=_time(item, "ngayHenTra", parse),
        completed_at=ends.completed_at,
        rejected_at=ends.rejected_at,
        withdrawn_at=ends.withdrawn_at,
        digitised=flag(item, "daSoHoa"),
        data_reused=flag(item, "taiSuDungDuLieu"),
        fee_required=fee is not None and fee > 0,
        paid_online=flag(item, "thanhToanTrucTuyen"),
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
        id_field="maHoSo",
        updated_field=UPDATED_FIELD,
        parse_updated=TIME_FORMAT.parser(context.timezone),
        updated_pattern=TIME_FORMAT.pattern,
    )


def updated_at(item: Any, context: ConnectorContext) -> dt.datetime | None:
    """``item``'s update time as ``normalise_item`` gives it, read alone (see ``keyset_pages``)."""
    return updated_time(item, UPDATED_FIELD, TIME_FORMAT.parser(context.timezone), TIME_FORMAT.pattern)
