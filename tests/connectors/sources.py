"""What the cross-source tests need to know about each wire format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from connectors.civil_status import mapping as civil_status
from connectors.household_business import mapping as household_business
from connectors.one_stop import mapping as one_stop
from connectors.residence import mapping as residence

from . import samples
from .conftest import TZ


@dataclass(frozen=True)
class Source:
    name: str
    mapping: ModuleType
    sample: Callable[..., dict[str, Any]]
    id_field: str
    procedure_field: str
    status_field: str
    updated_field: str
    finished_field: str
    id_number_field: str
    time_fields: tuple[str, ...]
    render: Callable[[dt.datetime], str]

    def __str__(self) -> str:
        return self.name


def put(item: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set (or, with ``...``, delete) a possibly nested field in place; returns the item."""
    *parents, last = dotted.split(".")
    target = item
    for p in parents:
        target = target.setdefault(p, {})
    if value is ...:
        target.pop(last, None)
    else:
        target[last] = value
    return item


def get(item: Mapping[str, Any], dotted: str) -> Any:
    value: Any = item
    for p in dotted.split("."):
        value = value[p]
    return value


def _local(fmt: str) -> Callable[[dt.datetime], str]:
    return lambda moment: moment.astimezone(TZ).strftime(fmt)


SOURCES: tuple[Source, ...] = (
    Source(
        "one_stop",
        one_stop,
        samples.one_stop,
        "MaHoSo",
        "MaTTHC",
        "TrangThaiHoSo",
        "NgayCapNhat",
        "NgayKetThucXuLy",
        "SoGiayToChuHoSo",
        ("NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTuChoi", "NgayCapNhat"),
        _local("%Y%m%d%H%M%S"),
    ),
    Source(
        "civil_status",
        civil_status,
        samples.civil_status,
        "maHoSo",
        "maTTHC",
        "trangThai",
        "ngayCapNhat",
        "ngayXuLyXong",
        "nguoiYeuCau.soDinhDanh",
        ("ngayNop", "ngayTiepNhan", "ngayHenTra", "ngayXuLyXong", "ngayCapNhat"),
        _local("%d/%m/%Y %H:%M:%S"),
    ),
    Source(
        "residence",
        residence,
        samples.residence,
        "id",
        "procedure.code",
        "status",
        "updated_at",
        "finished_at",
        "applicant.id_number",
        ("submitted_at", "received_at", "due_at", "finished_at", "updated_at"),
        lambda moment: moment.isoformat(timespec="seconds"),
    ),
    Source(
        "household_business",
        household_business,
        samples.household_business,
        "MaHoSo",
        "MaTTHC",
        "TinhTrang",
        "NgayCapNhat",
        "NgayHoanThanh",
        "ChuHoKinhDoanh.SoDinhDanh",
        ("NgayNop", "NgayTiepNhan", "NgayHenTra", "NgayHoanThanh", "NgayCapNhat"),
        _local("%Y-%m-%d %H:%M:%S"),
    ),
)
