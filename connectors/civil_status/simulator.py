"""Simulator of the Ministry of Justice civil-status system (``sources.md`` §2): OAuth2 client
credentials, Bearer tokens (401 when expired), Spring-style pages from 0 of at most 500."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from connectors.wardsim.dataset import RecordVersion
from connectors.wardsim.server import (
    SimRequest,
    SimResponse,
    SourceHandler,
    basic_credentials,
    register_handler,
)
from connectors.wardsim.wire import epoch, int_param, local_text, parse_local
from sync_agent.model import Status

TIME_FORMAT = "%d/%m/%Y %H:%M:%S"
_TIME_SHAPE = re.compile(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}")
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 20

STATUS_CODES: Mapping[Status, int] = {
    Status.RECEIVED: 1,
    Status.AWAITING_SUPPLEMENT: 2,
    Status.IN_PROGRESS: 3,
    Status.AWAITING_PAYMENT: 3,
    Status.SUSPENDED: 3,
    Status.RESOLVED: 4,
    Status.DELIVERED: 5,
    Status.REJECTED: 6,
    Status.WITHDRAWN: 7,
}
CHANNELS: Mapping[str, str] = {"online": "TRUC_TUYEN", "direct": "TRUC_TIEP", "postal": "BUU_CHINH"}
_ENDED = frozenset({Status.RESOLVED, Status.DELIVERED, Status.REJECTED, Status.WITHDRAWN})
_UNAUTHORIZED = (("WWW-Authenticate", 'Bearer error="invalid_token"'),)


def _t(ts: int | None) -> str | None:
    return local_text(ts, TIME_FORMAT, None)


@register_handler
class CivilStatusHandler(SourceHandler):
    """``POST /api/token`` and ``GET /api/hotich/hoso``."""

    source = "civil_status"
    id_field = "maHoSo"
    status_field = "trangThai"
    unknown_status = 99
    date_field = "ngayTiepNhan"
    bad_date = "32/13/2026 25:61:00"
    login_paths = frozenset({"/api/token"})
    data_paths = frozenset({"/api/hotich/hoso"})

    def handle(self, request: SimRequest, kind: str) -> SimResponse:
        if kind == "login":
            if request.method != "POST":
                return SimResponse.json({"error": "invalid_request"}, 405)
            return self._token(request)
        if kind == "data":
            if request.method != "GET":
                return SimResponse.json({"status": "0", "message": "Phương thức không được hỗ trợ"}, 405)
            return self._dossiers(request)
        return SimResponse.json({"status": "0", "message": "Không tìm thấy"}, 404)

    def _token(self, request: SimRequest) -> SimResponse:
        try:
            form = request.form()
        except UnicodeDecodeError:
            form = {}
        if form.get("grant_type") != "client_credentials":
            return SimResponse.json({"error": "unsupported_grant_type"}, 400)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = basic_credentials(request.header("authorization"))
        if client_id is None and basic is not None:  # client_secret_basic is allowed too
            client_id, secret = basic
        if not self.server.credentials_ok(client_id, secret):
            return SimResponse.json(
                {"error": "invalid_client", "error_description": "Sai mã ứng dụng hoặc khóa bí mật"}, 401
            )
        return SimResponse.json(
            {
                "access_token": self.server.sessions.issue(),
                "token_type": "Bearer",
                "expires_in": self.server.sessions.ttl,
            }
        )

    def _dossiers(self, request: SimRequest) -> SimResponse:
        authz = request.header("authorization") or ""
        token = authz[7:].strip() if authz.lower().startswith("bearer ") else None
        if not self.server.sessions.valid(token):
            return SimResponse.json(
                {"status": "0", "message": "Token không hợp lệ hoặc đã hết hạn"}, 401, _UNAUTHORIZED
            )
        q = request.query
        try:
            since = self._time(q.get("tuNgay"))
            until = self._time(q.get("denNgay"))
            page = int_param(q.get("page"), default=0, minimum=0)
            size = int_param(q.get("size"), default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
            if not q.get("maDonVi"):
                raise ValueError("maDonVi is required")
        except ValueError as exc:
            return SimResponse.json({"status": "0", "message": f"Tham số không hợp lệ: {exc}"}, 400)
        if q.get("maDonVi") != self.server.ward_code:
            items: list[dict[str, Any]] = []
            total = 0
        else:
            served = self.server.page(
                None if since is None else (epoch(since), ""),
                None if until is None else (epoch(until), ""),
                skip=page * size,
                limit=size,
            )
            items, total = served.items, served.total
        return SimResponse.json(
            {
                "status": "1",
                "message": "",
                "page": page,
                "size": size,
                "totalPages": math.ceil(total / size),
                "totalElements": total,
                "content": items,
            }
        )

    @staticmethod
    def _time(value: str | None) -> dt.datetime | None:
        return None if not value else parse_local(value, TIME_FORMAT, _TIME_SHAPE)

    @staticmethod
    def updated_of(item: Mapping[str, Any]) -> dt.datetime:
        return parse_local(item.get("ngayCapNhat"), TIME_FORMAT, _TIME_SHAPE)

    @staticmethod
    def render(version: RecordVersion) -> dict[str, Any]:
        v = version
        return {
            "maHoSo": v.record_id,
            "maHoSoMCDT": v.reception_code or "",
            "maTTHC": v.procedure.code,
            "tenTTHC": v.procedure.name,
            "loaiHoTich": v.procedure.kind,
            "ngayNop": _t(v.submitted_at),
            "ngayTiepNhan": _t(v.received_at),
            "ngayHenTra": _t(v.due_at),
            "ngayXuLyXong": _t(v.ended_at if v.status in _ENDED else None),
            "ngayTraKetQua": _t(v.delivered_at),
            "trangThai": STATUS_CODES[v.status],
            "kenhNop": CHANNELS.get(v.channel),
            "nguoiYeuCau": {"hoTen": v.applicant_name, "soDinhDanh": v.applicant_id},
            "daSoHoa": v.digitised,
            "taiSuDungDuLieu": v.data_reused,
            "lePhi": v.fee,
            "thanhToanTrucTuyen": v.paid_online,
            "ngayCapNhat": _t(v.updated_at),
        }
