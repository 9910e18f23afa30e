"""Minimal clients of the four wire formats, written from ``sources.md`` alone (test helpers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from connectors.wardsim import DEFAULT_CREDENTIALS
from connectors.wardsim.dataset import TZ

WARD = "11311"
TIMEOUT = 10
OS = DEFAULT_CREDENTIALS["one_stop"]
CS = DEFAULT_CREDENTIALS["civil_status"]
RS = DEFAULT_CREDENTIALS["residence"]
HK = DEFAULT_CREDENTIALS["household_business"]


def os_login(url: str, user: str = OS.username, password: str = OS.password) -> dict[str, Any]:
    r = requests.post(f"{url}/dangnhap", json={"username": user, "password": password}, timeout=TIMEOUT)
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def os_call(
    url: str,
    session: str,
    page: int = 1,
    size: int = 500,
    *,
    since: str = "20000101000000",
    until: str = "20991231000000",
    ward: str = WARD,
    **extra: Any,
) -> requests.Response:
    body = {
        "session": session,
        "madonvi": ward,
        "service": "LayDanhSachHoSo",
        "TuNgay": since,
        "DenNgay": until,
        "TrangSo": page,
        "SoBanGhi": size,
        **extra,
    }
    return requests.post(f"{url}/dichvu", json=body, timeout=TIMEOUT)


def os_all(url: str, size: int = 500, **kw: Any) -> list[dict[str, Any]]:
    session = os_login(url)["session"]
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = os_call(url, session, page, size, **kw).json()
        assert body["error_code"] == "00", body
        if not body["data"]:
            return out
        out.extend(body["data"])
        page += 1


def cs_token(url: str, client_id: str = CS.username, secret: str = CS.password) -> requests.Response:
    return requests.post(
        f"{url}/api/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=TIMEOUT,
    )


def cs_call(
    url: str,
    token: str,
    page: int = 0,
    size: int = 200,
    *,
    since: str = "01/01/2000 00:00:00",
    until: str = "31/12/2099 00:00:00",
    ward: str = WARD,
) -> requests.Response:
    params: dict[str, Any] = {"maDonVi": ward, "tuNgay": since, "denNgay": until, "page": page, "size": size}
    return requests.get(
        f"{url}/api/hotich/hoso", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )


def cs_all(url: str, size: int = 200, **kw: Any) -> list[dict[str, Any]]:
    token = cs_token(url).json()["access_token"]
    out: list[dict[str, Any]] = []
    page = 0
    while True:
        body = cs_call(url, token, page, size, **kw).json()
        out.extend(body["content"])
        page += 1
        if page >= body["totalPages"]:
            return out


def rs_call(
    url: str,
    *,
    key: str = RS.api_key,
    ward: str = WARD,
    after: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> requests.Response:
    params: dict[str, Any] = {"unit": ward}
    if after is not None:
        params["updated_after"] = after
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    return requests.get(f"{url}/v1/dossiers", params=params, headers={"X-API-Key": key}, timeout=TIMEOUT)


def rs_all(url: str, limit: int = 200, after: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = rs_call(url, after=after, limit=limit, cursor=cursor).json()
        out.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def hk_call(
    url: str,
    page: int = 1,
    *,
    first: str = "2000-01-01",
    last: str = "2099-12-31",
    ward: str = WARD,
    auth: tuple[str, str] = (HK.username, HK.password),
) -> requests.Response:
    params: dict[str, Any] = {"maPhuongXa": ward, "tuNgay": first, "denNgay": last, "trang": page}
    return requests.get(f"{url}/apiDKKD/HoKinhDoanh/danhSachHoSo", params=params, auth=auth, timeout=TIMEOUT)


def hk_all(url: str, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = hk_call(url, page, **kw).json()
        out.extend(body["HoSo"])
        if page >= body["SoTrang"]:
            return out
        page += 1


def fetch_all(source: str, url: str) -> list[dict[str, Any]]:
    """Every visible record of a source, in wire order."""
    if source == "one_stop":
        return os_all(url)
    if source == "civil_status":
        return cs_all(url)
    return rs_all(url) if source == "residence" else hk_all(url)


def local(text: str, pattern: str) -> dt.datetime:
    return dt.datetime.strptime(text, pattern).replace(tzinfo=TZ)


UPDATED = {
    "one_stop": ("NgayCapNhat", "%Y%m%d%H%M%S", "MaHoSo"),
    "civil_status": ("ngayCapNhat", "%d/%m/%Y %H:%M:%S", "maHoSo"),
    "residence": ("updated_at", None, "id"),
    "household_business": ("NgayCapNhat", "%Y-%m-%d %H:%M:%S", "MaHoSo"),
}


def order_key(source: str, item: dict[str, Any]) -> tuple[dt.datetime, str]:
    """(update time, id): the order every source pages in."""
    field, pattern, id_field = UPDATED[source]
    value = item[field]
    moment = dt.datetime.fromisoformat(value) if pattern is None else local(value, pattern)
    return moment, str(item[id_field])
