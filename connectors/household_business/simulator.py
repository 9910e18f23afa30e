"""Simulator of the national household-business registration system (``sources.md`` §4): HTTP Basic,
day filters (inclusive), fixed pages of 50 from 1, an empty ``HoSo`` past the last page."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from connectors.wardsim.dataset import TZ, RecordVersion
from connectors.wardsim.server import (
    SimRequest,
    SimResponse,
    SourceHandler,
    basic_credentials,
    register_handler,
)
from connectors.wardsim.wire import epoch, int_param, local_text, parse_local
from sync_agent.model import Status

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DAY_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")
PAGE_SIZE = 50

STATUSES: Mapping[Status, str] = {
    Status.SUBMITTED: "CHO_TIEP_NHAN",
    Status.RECEIVED: "DA_TIEP_NHAN",
    Status.IN_PROGRESS: "DANG_XU_LY",
    Status.AWAITING_PAYMENT: "DANG_XU_LY",
    Status.SUSPENDED: "DANG_XU_LY",
    Status.AWAITING_SUPPLEMENT: "YEU_CAU_BO_SUNG",
    Status.RESOLVED: "DA_CAP_GCN",
    Status.DELIVERED: "DA_TRA_KET_QUA",
    Status.REJECTED: "TU_CHOI",
    Status.WITHDRAWN: "DA_RUT",
}
CHANNELS: Mapping[str, str] = {"online": "TRUC_TUYEN", "direct": "TRUC_TIEP", "postal": "TRUC_TIEP"}
_ENDED = frozenset({Status.RESOLVED, Status.DELIVERED, Status.REJECTED, Status.WITHDRAWN})


def _t(ts: int | None) -> str | None:
    return local_text(ts, TIME_FORMAT, None)


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    if not _DAY_SHAPE.fullmatch(value):
        raise ValueError(f"not a day (yyyy-MM-dd): {value!r}")
    return dt.date.fromisoformat(value)


@register_handler
class HouseholdBusinessHandler(SourceHandler):
    """``GET /apiDKKD/HoKinhDoanh/danhSachHoSo``."""

    source = "household_business"
    id_field = "MaHoSo"
    status_field = "TinhTrang"
    unknown_status = "KHONG_XAC_DINH"
    date_field = "NgayTiepNhan"
    bad_date = "2026-02-30 08:00:00"
    data_paths = frozenset({"/apiDKKD/HoKinhDoanh/danhSachHoSo"})

    def handle(self, request: SimRequest, kind: str) -> SimResponse:
        if kind != "data":
            return SimResponse.json({"MaLoi": "404", "ThongBao": "Không tìm thấy"}, 404)
        creds = basic_credentials(request.header("authorization"))
        if creds is None or not self.server.credentials_ok(*creds):
            return SimResponse.json(
                {"MaLoi": "401", "ThongBao": "Sai thông tin xác thực"},
                401,
                [("WWW-Authenticate", 'Basic realm="DKKD"')],
            )
        if request.method != "GET":
            return SimResponse.json({"MaLoi": "405", "ThongBao": "Phương thức không được hỗ trợ"}, 405)
        q = request.query
        try:
            first = _day(q.get("tuNgay"))
            last = _day(q.get("denNgay"))
            page = int_param(q.get("trang"), default=1, minimum=1)
            if not q.get("maPhuongXa"):
                raise ValueError("maPhuongXa is required")
        except ValueError as exc:
            return SimResponse.json({"MaLoi": "400", "ThongBao": f"Tham số không hợp lệ: {exc}"}, 400)
        if q.get("maPhuongXa") != self.server.ward_code:
            return SimResponse.json({"TongSo": 0, "Trang": page, "SoTrang": 0, "HoSo": []})
        lower = None if first is None else (_day_start(first), "")
        upper = None if last is None else (_day_start(last + dt.timedelta(days=1)), "")
        served = self.server.page(lower, upper, skip=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        return SimResponse.json(
            {
                "TongSo": served.total,
                "Trang": page,
                "SoTrang": math.ceil(served.total / PAGE_SIZE),
                "HoSo": served.items,
            }
        )

    @staticmethod
    def updated_of(item: Mapping[str, Any]) -> dt.datetime:
        return parse_local(item.get("NgayCapNhat"), TIME_FORMAT, _TIME_SHAPE)

    @staticmethod
    def render(version: RecordVersion) -> dict[str, Any]:
        v = version
        return {
            "MaHoSo": v.record_id,
            "SoBienNhanMotCua": v.reception_code or "",
            "MaTTHC": v.procedure.code,
            "TenTTHC": v.procedure.name,
            "LoaiThuTuc": v.procedure.kind,
            "TenHoKinhDoanh": v.business_name,
            "MaSoHKD": v.business_code,
            "ChuHoKinhDoanh": {"HoTen": v.applicant_name, "SoDinhDanh": v.applicant_id},
            "KenhNop": CHANNELS[v.channel],
            "NgayNop": _t(v.submitted_at),
            "NgayTiepNhan": _t(v.received_at),
            "NgayHenTra": _t(v.due_at),
            "NgayHoanThanh": _t(v.ended_at if v.status in _ENDED else None),
            "TinhTrang": STATUSES[v.status],
            "DaSoHoa": v.digitised,
            "TaiSuDungDuLieu": v.data_reused,
            "LePhi": v.fee,
            "ThanhToanTrucTuyen": "1" if v.paid_online else "0",
            "NgayCapNhat": _t(v.updated_at),
        }


def _day_start(day: dt.date) -> int:
    return epoch(dt.datetime(day.year, day.month, day.day, tzinfo=TZ))
