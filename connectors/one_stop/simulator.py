"""Simulator of the city's one-stop system (``sources.md`` §1): session login, one service endpoint,
errors as HTTP 200 with an ``error_code``, pages from 1 ordered by (``NgayCapNhat``, ``MaHoSo``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from connectors.wardsim.dataset import RecordVersion
from connectors.wardsim.server import SimRequest, SimResponse, SourceHandler, register_handler
from connectors.wardsim.wire import epoch, int_param, local_text, parse_local
from sync_agent.model import Status

TIME_FORMAT = "%Y%m%d%H%M%S"
_TIME_SHAPE = re.compile(r"\d{14}")
MAX_PAGE_SIZE = 1000

STATUS_CODES: Mapping[Status, str] = {
    Status.SUBMITTED: "1",
    Status.RECEIVED: "2",
    Status.NOT_ACCEPTED: "3",
    Status.IN_PROGRESS: "4",
    Status.AWAITING_SUPPLEMENT: "5",
    Status.AWAITING_PAYMENT: "6",
    Status.WITHDRAWN: "7",
    Status.SUSPENDED: "8",
    Status.RESOLVED: "9",
    Status.DELIVERED: "10",
}
CHANNEL_CODES: Mapping[str, str] = {"direct": "1", "online": "2", "postal": "3"}
_ENDED = frozenset({Status.RESOLVED, Status.DELIVERED, Status.REJECTED, Status.WITHDRAWN})


def _t(ts: int | None) -> str:
    return local_text(ts, TIME_FORMAT) or ""


def _error(code: str, message: str) -> SimResponse:
    return SimResponse.json({"error_code": code, "message": message})


@register_handler
class OneStopHandler(SourceHandler):
    """``POST /dangnhap`` and ``POST /dichvu`` (service ``LayDanhSachHoSo``)."""

    source = "one_stop"
    id_field = "MaHoSo"
    status_field = "TrangThaiHoSo"
    unknown_status = "99"
    date_field = "NgayTiepNhan"
    bad_date = "20261345256100"
    login_paths = frozenset({"/dangnhap"})
    data_paths = frozenset({"/dichvu"})

    def handle(self, request: SimRequest, kind: str) -> SimResponse:
        if kind == "other":
            return SimResponse.json({"error_code": "404", "message": "Không tìm thấy địa chỉ"}, 404)
        if request.method != "POST":
            return SimResponse.json({"error_code": "405", "message": "Phương thức không được hỗ trợ"}, 405)
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return _error("400", "Dữ liệu gửi lên không đúng định dạng JSON")
        return self._login(body) if kind == "login" else self._service(body)

    def _login(self, body: Mapping[str, Any]) -> SimResponse:
        if not self.server.credentials_ok(body.get("username"), body.get("password")):
            return _error("401", "Tên đăng nhập hoặc mật khẩu không đúng")
        return SimResponse.json(
            {
                "error_code": "0",
                "session": self.server.sessions.issue(),
                "expires_in": self.server.sessions.ttl,
            }
        )

    def _service(self, body: Mapping[str, Any]) -> SimResponse:
        session = body.get("session")
        if not isinstance(session, str) or not self.server.sessions.valid(session):
            return _error("-1", "Phiên làm việc đã hết hạn")
        if body.get("service") != "LayDanhSachHoSo":
            return _error("404", f"Dịch vụ không tồn tại: {body.get('service')!r}")
        try:
            since = self._time(body.get("TuNgay"))
            until = self._time(body.get("DenNgay"))
            page = int_param(body.get("TrangSo"), default=1, minimum=1)
            size = int_param(body.get("SoBanGhi"), default=100, minimum=1, maximum=MAX_PAGE_SIZE)
            if not body.get("madonvi"):
                raise ValueError("madonvi is required")
        except ValueError as exc:
            return _error("400", f"Tham số không hợp lệ: {exc}")
        if str(body.get("madonvi") or "") != self.server.ward_code:
            return SimResponse.json({"error_code": "00", "message": "", "TongSoBanGhi": 0, "data": []})
        served = self.server.page(
            None if since is None else (epoch(since), ""),
            None if until is None else (epoch(until), ""),
            skip=(page - 1) * size,
            limit=size,
        )
        return SimResponse.json(
            {"error_code": "00", "message": "", "TongSoBanGhi": served.total, "data": served.items}
        )

    @staticmethod
    def _time(value: object) -> dt.datetime | None:
        if value is None or value == "":
            return None
        return parse_local(value, TIME_FORMAT, _TIME_SHAPE)

    @staticmethod
    def updated_of(item: Mapping[str, Any]) -> dt.datetime:
        return parse_local(item.get("NgayCapNhat"), TIME_FORMAT, _TIME_SHAPE)

    @staticmethod
    def render(version: RecordVersion) -> dict[str, Any]:
        v = version
        proc = v.procedure
        rejected = v.status is Status.REJECTED
        return {
            "MaHoSo": v.record_id,
            "MaTTHC": proc.code,
            "TenTTHC": proc.name,
            "MaLinhVuc": proc.field_code,
            "TenLinhVuc": proc.field_name,
            "SoBienNhan": v.record_id if v.received_at is not None else "",
            "ChuHoSo": v.applicant_name,
            "LoaiDoiTuong": str(v.applicant_type),
            "SoGiayToChuHoSo": v.applicant_id,
            "TrichYeuHoSo": v.summary,
            "NgayNopHoSo": _t(v.submitted_at),
            "NgayTiepNhan": _t(v.received_at),
            "NgayHenTra": _t(v.due_at),
            "TrangThaiHoSo": v.rejection_code if rejected else STATUS_CODES[v.status],
            "NgayKetThucXuLy": _t(v.ended_at if v.status in _ENDED else None),
            "NgayTuChoi": _t(v.ended_at if rejected else None),
            "NgayTra": _t(v.delivered_at),
            "KenhThucHien": CHANNEL_CODES.get(v.channel, ""),
            "DonViXuLy": v.processing_unit,
            "HoSoCoThanhPhanSoHoa": "1" if v.data_reused else "0",
            "TaiLieuNop": [
                {"TenTepDinhKem": name, "DuocSoHoa": "1" if ok else "0"} for name, ok in v.documents
            ],
            "DanhSachGiayToKetQua": [
                {"TenGiayTo": name, "DuongDanTepTinKetQua": url} for name, url in v.results
            ],
            "DanhSachLePhi": [{"TenPhiLePhi": v.fee_name, "Gia": v.fee}] if v.fee > 0 or v.fee_listed else [],
            "DuocThanhToanTrucTuyen": v.payment_gateway,
            "NgayCapNhat": _t(v.updated_at),
        }
