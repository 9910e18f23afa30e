"""``one_stop`` wire records (``HoSo``, as in the portal's ``DongBoHoSoMC``) → ``DossierRecord``.

Pure functions: no I/O, so every rule of ``sources.md`` section 1 is testable on its own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors.base import ConnectorContext
from connectors.wire import (
    LocalTimeFormat,
    TimeParser,
    amount,
    code,
    end_times,
    id_number,
    normalise,
    objects,
    redacted,
    required_text,
    required_time,
    text,
    time_field,
    updated_time,
)
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status

SOURCE = "one_stop"
ID_KEYS: frozenset[str] = frozenset({"SoGiayToChuHoSo"})

TIME_FORMAT = LocalTimeFormat(
    pattern="yyyyMMddHHmmss",
    regex=re.compile(r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"),
    template="{Y:04d}{m:02d}{d:02d}{H:02d}{M:02d}{S:02d}",
)
#: the field that says when the source last changed a record (keyset paging reads it alone)
UPDATED_FIELD = "NgayCapNhat"

#: ``TrangThaiHoSo`` → normalised status
STATUSES: Mapping[str, Status] = {
    "1": Status.SUBMITTED,
    "2": Status.RECEIVED,
    "3": Status.NOT_ACCEPTED,
    "4": Status.IN_PROGRESS,
    "5": Status.AWAITING_SUPPLEMENT,
    "6": Status.AWAITING_PAYMENT,
    "7": Status.WITHDRAWN,
    "8": Status.SUSPENDED,
    "9": Status.RESOLVED,
    "10": Status.DELIVERED,
}
#: statuses whose end time falls back to ``NgayCapNhat`` when ``NgayKetThucXuLy`` is empty
FALLS_BACK: frozenset[Status] = frozenset({Status.WITHDRAWN})
#: codes that stay as they are even with ``NgayTuChoi`` set (never received, so never rejected)
NOT_REJECTABLE: frozenset[str] = frozenset({"1", "3"})

CHANNELS: Mapping[str, Channel] = {"1": Channel.DIRECT, "2": Channel.ONLINE, "3": Channel.POSTAL}
#: ``DuocThanhToanTrucTuyen`` values that mean paid online (national portal, city gateway)
PAID_ONLINE: frozenset[str] = frozenset({"1", "2"})


def parse_time(value: str, context: ConnectorContext) -> dt.datetime:
    return TIME_FORMAT.parser(context.timezone)(value)


def format_time(moment: dt.datetime, context: ConnectorContext) -> str:
    return TIME_FORMAT.format(moment, context.timezone)


def _time(item: Mapping[str, Any], key: str, parse: TimeParser) -> dt.datetime | None:
    return time_field(item, key, parse, TIME_FORMAT.pattern)


def is_digitised(item: Mapping[str, Any]) -> bool:
    """At least one submitted file, all of them digitised, and at least one result file."""
    files = objects(item, "TaiLieuNop")
    results = objects(item, "DanhSachGiayToKetQua")
    return (
        bool(files)
        and all(text(f, "DuocSoHoa") == "1" for f in files)
        and any(text(r, "DuongDanTepTinKetQua") for r in results)
    )


def is_fee_required(item: Mapping[str, Any]) -> bool:
    return any((amount(fee, "Gia") or Decimal(0)) > 0 for fee in objects(item, "DanhSachLePhi"))


def to_record(item: Mapping[str, Any], context: ConnectorContext, *, source: str = SOURCE) -> DossierRecord:
    """One ``HoSo`` as a record; ``RecordError`` names what is wrong with it."""
    source_id = required_text(item, "MaHoSo")
    procedure_code = required_text(item, "MaTTHC")
    status_code = required_text(item, "TrangThaiHoSo")
    status: Status = code(item, "TrangThaiHoSo", STATUSES)
    parse = TIME_FORMAT.parser(context.timezone)
    updated = required_time(item, UPDATED_FIELD, parse, TIME_FORMAT.pattern)
    finished = _time(item, "NgayKetThucXuLy", parse)
    refused = _time(item, "NgayTuChoi", parse)
    if refused is not None and status_code not in NOT_REJECTABLE:
        status = Status.REJECTED
        ends = end_times(status, refused, updated, FALLS_BACK)
    else:
        ends = end_times(status, finished, updated, FALLS_BACK)
    channel_code = text(item, "KenhThucHien")
    paid = text(item, "DuocThanhToanTrucTuyen")
    return DossierRecord(
        source=source,
        source_id=source_id,
        procedure_code=procedure_code,
        status=status,
        source_updated_at=updated,
        reception_code=source_id,
        procedure_name=text(item, "TenTTHC"),
        field_code=text(item, "MaLinhVuc"),
        field_name=text(item, "TenLinhVuc"),
        applicant_name=text(item, "ChuHoSo"),
        applicant_key=context.hasher(id_number(item, "SoGiayToChuHoSo")),
        channel=CHANNELS.get(channel_code or "", Channel.UNKNOWN),
        submitted_at=_time(item, "NgayNopHoSo", parse),
        received_at=_time(item, "NgayTiepNhan", parse),
        due_at=_time(item, "NgayHenTra", parse),
        completed_at=ends.completed_at,
        rejected_at=ends.rejected_at,
        withdrawn_at=ends.withdrawn_at,
        digitised=is_digitised(item),
        data_reused=text(item, "HoSoCoThanhPhanSoHoa") == "1",
        fee_required=is_fee_required(item),
        paid_online=paid in PAID_ONLINE,
        raw=redacted(item, ID_KEYS, context.hasher),
    )


def normalise_item(
    item: Any, context: ConnectorContext, *, source: str = SOURCE
) -> DossierRecord | QuarantinedRecord:
    """The record, or the item quarantined with its reason; never raises for bad data."""
    return normalise(
        item,
        lambda it: to_record(it, context, source=source),
        source=source,
        hasher=context.hasher,
        id_keys=ID_KEYS,
        id_field="MaHoSo",
        updated_field=UPDATED_FIELD,
        parse_updated=TIME_FORMAT.parser(context.timezone),
        updated_pattern=TIME_FORMAT.pattern,
    )


def updated_at(item: Any, context: ConnectorContext) -> dt.datetime | None:
    """``item``'s update time as ``normalise_item`` gives it, read alone (see ``keyset_pages``)."""
    return updated_time(item, UPDATED_FIELD, TIME_FORMAT.parser(context.timezone), TIME_FORMAT.pattern)
