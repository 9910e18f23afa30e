"""``household_business`` wire records (national household-business registration) → ``DossierRecord``.

Pure functions: no I/O, so every rule of ``sources.md`` section 4 is testable on its own.
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
)
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status

SOURCE = "household_business"
ID_KEYS: frozenset[str] = frozenset({"SoDinhDanh"})
DEFAULT_FIELD_CODE = "DKKD"
DEFAULT_FIELD_NAME = "Đăng ký kinh doanh"

TIME_FORMAT = LocalTimeFormat(
    pattern="yyyy-MM-dd HH:mm:ss",
    regex=re.compile(r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"),
    template="{Y:04d}-{m:02d}-{d:02d} {H:02d}:{M:02d}:{S:02d}",
)
#: the day filter's format (``tuNgay``/``denNgay``)
DAY_FORMAT = "%Y-%m-%d"

#: ``TinhTrang`` → normalised status
STATUSES: Mapping[str, Status] = {
    "CHO_TIEP_NHAN": Status.SUBMITTED,
    "DA_TIEP_NHAN": Status.RECEIVED,
    "DANG_XU_LY": Status.IN_PROGRESS,
    "YEU_CAU_BO_SUNG": Status.AWAITING_SUPPLEMENT,
    "DA_CAP_GCN": Status.RESOLVED,
    "DA_TRA_KET_QUA": Status.DELIVERED,
    "TU_CHOI": Status.REJECTED,
    "DA_RUT": Status.WITHDRAWN,
}
#: statuses whose end time falls back to ``NgayCapNhat`` when ``NgayHoanThanh`` is empty
FALLS_BACK: frozenset[Status] = frozenset({Status.REJECTED, Status.WITHDRAWN})

CHANNELS: Mapping[str, Channel] = {"TRUC_TUYEN": Channel.ONLINE, "TRUC_TIEP": Channel.DIRECT}


def parse_time(value: str, context: ConnectorContext) -> dt.datetime:
    return TIME_FORMAT.parser(context.timezone)(value)


def format_time(moment: dt.datetime, context: ConnectorContext) -> str:
    return TIME_FORMAT.format(moment, context.timezone)


def format_day(day: dt.date) -> str:
    return day.strftime(DAY_FORMAT)


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
    """One household-business item as a record; ``RecordError`` names what is wrong with it."""
    source_id = required_text(item, "MaHoSo")
    procedure_code = required_text(item, "MaTTHC")
    status: Status = code(item, "TinhTrang", STATUSES)
    parse = TIME_FORMAT.parser(context.timezone)
    updated = required_time(item, "NgayCapNhat", parse, TIME_FORMAT.pattern)
    ends = end_times(status, _time(item, "NgayHoanThanh", parse), updated, FALLS_BACK)
    fee = amount(item, "LePhi")
    return DossierRecord(
        source=source,
        source_id=source_id,
        procedure_code=procedure_code,
        status=status,
        source_updated_at=updated,
        reception_code=text(item, "SoBienNhanMotCua"),
        procedure_name=text(item, "TenTTHC"),
        field_code=field_code,
        field_name=field_name,
        applicant_name=text(item, "ChuHoKinhDoanh.HoTen"),
        applicant_key=context.hasher(id_number(item, "ChuHoKinhDoanh.SoDinhDanh")),
        channel=CHANNELS.get(text(item, "KenhNop") or "", Channel.UNKNOWN),
        submitted_at=_time(item, "NgayNop", parse),
        received_at=_time(item, "NgayTiepNhan", parse),
        due_at=_time(item, "NgayHenTra", parse),
        completed_at=ends.completed_at,
        rejected_at=ends.rejected_at,
        withdrawn_at=ends.withdrawn_at,
        digitised=flag(item, "DaSoHoa"),
        data_reused=flag(item, "TaiSuDungDuLieu"),
        fee_required=fee is not None and fee > 0,
        paid_online=text(item, "ThanhToanTrucTuyen") == "1",
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
        id_field="MaHoSo",
        updated_field="NgayCapNhat",
        parse_updated=TIME_FORMAT.parser(context.timezone),
        updated_pattern=TIME_FORMAT.pattern,
    )
