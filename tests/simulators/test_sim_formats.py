"""Each simulator serves exactly its ``sources.md`` wire format: fields, codes, order, paging, auth."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from connectors.wardsim import SimClock, SimServer, WardDataset
from tests.simulators import clients as c
from tests.simulators.conftest import NOW

SPEC_FIELDS: dict[str, set[str]] = {
    "one_stop": {
        "MaHoSo",
        "MaTTHC",
        "TenTTHC",
        "MaLinhVuc",
        "TenLinhVuc",
        "SoBienNhan",
        "ChuHoSo",
        "LoaiDoiTuong",
        "SoGiayToChuHoSo",
        "TrichYeuHoSo",
        "NgayNopHoSo",
        "NgayTiepNhan",
        "NgayHenTra",
        "TrangThaiHoSo",
        "NgayKetThucXuLy",
        "NgayTuChoi",
        "NgayTra",
        "KenhThucHien",
        "DonViXuLy",
        "HoSoCoThanhPhanSoHoa",
        "TaiLieuNop",
        "DanhSachGiayToKetQua",
        "DanhSachLePhi",
        "DuocThanhToanTrucTuyen",
        "NgayCapNhat",
    },
    "civil_status": {
        "maHoSo",
        "maHoSoMCDT",
        "maTTHC",
        "tenTTHC",
        "loaiHoTich",
        "ngayNop",
        "ngayTiepNhan",
        "ngayHenTra",
        "ngayXuLyXong",
        "ngayTraKetQua",
        "trangThai",
        "kenhNop",
        "nguoiYeuCau",
        "daSoHoa",
        "taiSuDungDuLieu",
        "lePhi",
        "thanhToanTrucTuyen",
        "ngayCapNhat",
    },
    "residence": {
        "id",
        "one_stop_code",
        "procedure",
        "channel",
        "submitted_at",
        "received_at",
        "due_at",
        "finished_at",
        "status",
        "applicant",
        "digitised",
        "reused_data",
        "fee",
        "updated_at",
    },
    "household_business": {
        "MaHoSo",
        "SoBienNhanMotCua",
        "MaTTHC",
        "TenTTHC",
        "LoaiThuTuc",
        "TenHoKinhDoanh",
        "MaSoHKD",
        "ChuHoKinhDoanh",
        "KenhNop",
        "NgayNop",
        "NgayTiepNhan",
        "NgayHenTra",
        "NgayHoanThanh",
        "TinhTrang",
        "DaSoHoa",
        "TaiSuDungDuLieu",
        "LePhi",
        "ThanhToanTrucTuyen",
        "NgayCapNhat",
    },
}
NESTED: dict[str, dict[str, set[str]]] = {
    "civil_status": {"nguoiYeuCau": {"hoTen", "soDinhDanh"}},
    "residence": {"procedure": {"code", "name"}, "applicant": {"full_name", "id_number"}},
    "household_business": {"ChuHoKinhDoanh": {"HoTen", "SoDinhDanh"}},
}
STATUS_FIELD = {
    "one_stop": "TrangThaiHoSo",
    "civil_status": "trangThai",
    "residence": "status",
    "household_business": "TinhTrang",
}
SPEC_STATUSES: dict[str, set[Any]] = {
    "one_stop": {str(n) for n in range(1, 11)},
    "civil_status": set(range(1, 8)),
    "residence": {
        "received",
        "processing",
        "supplement_requested",
        "completed",
        "returned",
        "rejected",
        "withdrawn",
    },
    "household_business": {
        "CHO_TIEP_NHAN",
        "DA_TIEP_NHAN",
        "DANG_XU_LY",
        "YEU_CAU_BO_SUNG",
        "DA_CAP_GCN",
        "DA_TRA_KET_QUA",
        "TU_CHOI",
        "DA_RUT",
    },
}
SOURCES = tuple(SPEC_FIELDS)


@pytest.fixture(scope="module")
def everything(sims: dict[str, SimServer]) -> dict[str, list[dict[str, Any]]]:
    return {source: c.fetch_all(source, sims[source].url) for source in SOURCES}


@pytest.mark.parametrize("source", SOURCES)
def test_every_record_has_exactly_the_spec_fields(
    source: str, everything: dict[str, list[dict[str, Any]]]
) -> None:
    items = everything[source]
    assert items
    for item in items:
        assert set(item) == SPEC_FIELDS[source]
        for key, fields in NESTED.get(source, {}).items():
            assert set(item[key]) == fields
    statuses = {item[STATUS_FIELD[source]] for item in items}
    assert statuses <= SPEC_STATUSES[source]
    assert len(statuses) >= 3  # histories end in various states


@pytest.mark.parametrize("source", SOURCES)
def test_pages_are_ordered_by_update_time_then_id_and_cover_every_record(
    source: str, everything: dict[str, list[dict[str, Any]]], dataset: WardDataset
) -> None:
    keys = [c.order_key(source, item) for item in everything[source]]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert len(keys) == dataset.count(source)


def test_values_look_like_the_real_systems(everything: dict[str, list[dict[str, Any]]]) -> None:
    os_items = everything["one_stop"]
    assert all(i["MaHoSo"].startswith("H31.11311-") for i in os_items)
    assert {i["KenhThucHien"] for i in os_items} <= {"1", "2", "3"}
    assert {i["MaLinhVuc"] for i in os_items} == {"HOTICH", "CUTRU", "DKKD", "CHUNGTHUC", "DATDAI", "BTXH"}
    assert all(len(i["SoGiayToChuHoSo"]) == 12 and i["SoGiayToChuHoSo"].isdigit() for i in os_items)
    assert any(" " in i["ChuHoSo"] and any(ch in i["ChuHoSo"] for ch in "ễịạảồướđ") for i in os_items)
    # "" for none, as the city system writes it
    open_ones = [i for i in os_items if i["TrangThaiHoSo"] in ("2", "4", "5") and not i["NgayTuChoi"]]
    assert open_ones and all(i["NgayKetThucXuLy"] == "" for i in open_ones)
    civil = everything["civil_status"]
    assert {i["loaiHoTich"] for i in civil} <= {"KS", "KT", "KH", "XNTTHN", "TLHT", "TDCCBS", "NCMC"}
    assert all(i["ngayXuLyXong"] is None for i in civil if i["trangThai"] in (1, 2, 3))
    residence = everything["residence"]
    assert {i["channel"] for i in residence} <= {"online", "counter", "post"}
    assert all(i["updated_at"].endswith("+07:00") for i in residence)
    hkd = everything["household_business"]
    assert {i["LoaiThuTuc"] for i in hkd} <= {"DANG_KY_MOI", "THAY_DOI", "TAM_NGUNG", "CHAM_DUT"}
    assert {i["KenhNop"] for i in hkd} <= {"TRUC_TUYEN", "TRUC_TIEP"}


# --- one_stop ---------------------------------------------------------------------------------------


def test_one_stop_login_and_errors_come_back_as_http_200(servers: dict[str, SimServer]) -> None:
    url = servers["one_stop"].url
    bad = c.os_login(url, password="sai")
    assert bad["error_code"] == "401" and bad["message"]
    good = c.os_login(url)
    assert good["error_code"] == "0" and good["session"] and good["expires_in"] > 0
    session = good["session"]
    assert c.os_call(url, "khong-ton-tai").json()["error_code"] == "-1"
    for kwargs in ({"size": 1001}, {"page": 0}, {"since": "2026-01-01"}, {"until": "20261301000000"}):
        r = c.os_call(url, session, **kwargs)
        assert r.status_code == 200 and r.json()["error_code"] not in ("0", "00", "-1"), kwargs
    r = requests.post(f"{url}/dichvu", json={"session": session, "service": "XoaHoSo"}, timeout=5)
    assert r.json()["error_code"] not in ("00", "-1")
    assert requests.post(f"{url}/dichvu", data=b"not json", timeout=5).json()["error_code"] == "400"


def test_one_stop_range_is_half_open_and_pages_from_one(servers: dict[str, SimServer]) -> None:
    url = servers["one_stop"].url
    session = c.os_login(url)["session"]
    everything = c.os_call(url, session, 1, 1000).json()
    items = everything["data"]
    total = everything["TongSoBanGhi"]
    pivot = items[len(items) // 2]["NgayCapNhat"]
    before = c.os_call(url, session, 1, 1000, until=pivot).json()
    after = c.os_call(url, session, 1, 1000, since=pivot).json()
    assert all(i["NgayCapNhat"] < pivot for i in before["data"])
    assert all(i["NgayCapNhat"] >= pivot for i in after["data"])
    assert before["TongSoBanGhi"] + after["TongSoBanGhi"] == total
    pages = [c.os_call(url, session, p, 100).json() for p in (1, 2)]
    assert [i["MaHoSo"] for i in pages[0]["data"] + pages[1]["data"]] == [i["MaHoSo"] for i in items[:200]]
    past = c.os_call(url, session, total // 100 + 2, 100).json()
    assert past["error_code"] == "00" and past["data"] == [] and past["TongSoBanGhi"] == total


def test_one_stop_other_ward_gets_nothing(servers: dict[str, SimServer]) -> None:
    url = servers["one_stop"].url
    body = c.os_call(url, c.os_login(url)["session"], ward="99999").json()
    assert body == {"error_code": "00", "message": "", "TongSoBanGhi": 0, "data": []}


def test_one_stop_session_expires_on_the_server_clock(servers: dict[str, SimServer]) -> None:
    url = servers["one_stop"].url
    login = c.os_login(url)
    assert c.os_call(url, login["session"]).json()["error_code"] == "00"
    servers["one_stop"].clock.advance(dt.timedelta(seconds=login["expires_in"] + 1))
    assert c.os_call(url, login["session"]).json() == {
        "error_code": "-1",
        "message": "Phiên làm việc đã hết hạn",
    }


# --- civil_status -----------------------------------------------------------------------------------


def test_civil_status_token_and_401s(servers: dict[str, SimServer]) -> None:
    url = servers["civil_status"].url
    assert c.cs_token(url, secret="sai").status_code == 401
    r = requests.post(f"{url}/api/token", data={"grant_type": "password"}, timeout=5)
    assert r.status_code == 400
    token = c.cs_token(url).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    assert c.cs_call(url, "gia-mao").status_code == 401
    assert requests.get(f"{url}/api/hotich/hoso", params={"maDonVi": c.WARD}, timeout=5).status_code == 401
    assert c.cs_call(url, token["access_token"], size=501).status_code == 400
    assert c.cs_call(url, token["access_token"], page=-1).status_code == 400
    assert c.cs_call(url, token["access_token"], since="2026-01-01T00:00:00").status_code == 400


def test_civil_status_pages_from_zero(servers: dict[str, SimServer], dataset: WardDataset) -> None:
    url = servers["civil_status"].url
    token = c.cs_token(url).json()["access_token"]
    first = c.cs_call(url, token, 0, 50).json()
    n = dataset.count("civil_status")
    assert (first["status"], first["page"], first["size"], first["totalElements"]) == ("1", 0, 50, n)
    assert first["totalPages"] == -(-n // 50) and len(first["content"]) == 50
    second = c.cs_call(url, token, 1, 50).json()
    assert second["content"][0] != first["content"][-1]
    assert c.cs_call(url, token, first["totalPages"], 50).json()["content"] == []
    other = c.cs_call(url, token, ward="00000").json()
    assert other["totalElements"] == 0 and other["content"] == []


# --- residence ------------------------------------------------------------------------------------------


def test_residence_key_and_parameters(servers: dict[str, SimServer]) -> None:
    url = servers["residence"].url
    assert c.rs_call(url, key="sai").status_code == 403
    assert requests.get(f"{url}/v1/dossiers", params={"unit": c.WARD}, timeout=5).status_code == 403
    assert c.rs_call(url, limit=201).status_code == 400
    assert c.rs_call(url, after="2026-01-20T08:15:00").status_code == 400  # no offset
    assert c.rs_call(url, cursor="khong-phai-con-tro").status_code == 400
    assert c.rs_call(url, ward="00000").json() == {"items": [], "next_cursor": None}


def test_residence_updated_after_is_exclusive_and_accepts_z(servers: dict[str, SimServer]) -> None:
    url = servers["residence"].url
    items = c.rs_all(url)
    pivot = items[len(items) // 2]["updated_at"]
    after = c.rs_all(url, after=pivot)
    assert after and all(i["updated_at"] > pivot for i in after)
    assert len(after) == sum(1 for i in items if i["updated_at"] > pivot)
    as_utc = dt.datetime.fromisoformat(pivot).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.rs_all(url, after=as_utc) == after


def test_residence_cursor_walks_every_record_once(
    servers: dict[str, SimServer], dataset: WardDataset
) -> None:
    url = servers["residence"].url
    small = c.rs_all(url, limit=7)
    assert [i["id"] for i in small] == [i["id"] for i in c.rs_all(url, limit=200)]
    assert len(small) == dataset.count("residence")
    first = c.rs_call(url, limit=7).json()
    assert len(first["items"]) == 7 and isinstance(first["next_cursor"], str)


def test_residence_real_rate_limit(servers: dict[str, SimServer]) -> None:
    server = servers["residence"]
    server.rate_limit = 3
    try:
        answers = [c.rs_call(server.url, limit=1) for _ in range(6)]
    finally:
        server.rate_limit = None
    limited = [r for r in answers if r.status_code == 429]
    assert limited and all(r.headers["Retry-After"] == "1" for r in limited)
    assert sum(r.status_code == 200 for r in answers) == 3


# --- household_business -------------------------------------------------------------------------------


def test_household_business_basic_auth(servers: dict[str, SimServer]) -> None:
    url = servers["household_business"].url
    r = c.hk_call(url, auth=("phuong-11311", "sai"))
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    assert requests.get(f"{url}/apiDKKD/HoKinhDoanh/danhSachHoSo", timeout=5).status_code == 401
    assert c.hk_call(url, first="15/01/2026").status_code == 400
    assert c.hk_call(url, page=0).status_code == 400


def test_household_business_days_are_inclusive_and_pages_fixed_at_50(
    servers: dict[str, SimServer], dataset: WardDataset
) -> None:
    url = servers["household_business"].url
    first = c.hk_call(url).json()
    n = dataset.count("household_business")
    assert first["TongSo"] == n and first["Trang"] == 1 and first["SoTrang"] == -(-n // 50)
    assert len(first["HoSo"]) == min(50, n)
    assert c.hk_call(url, first["SoTrang"] + 1).json()["HoSo"] == []
    items = c.hk_all(url)
    day = items[len(items) // 2]["NgayCapNhat"][:10]
    same_day = c.hk_all(url, first=day, last=day)
    assert same_day and all(i["NgayCapNhat"].startswith(day) for i in same_day)
    assert len(same_day) == sum(1 for i in items if i["NgayCapNhat"].startswith(day))
    assert c.hk_call(url, ward="00000").json()["HoSo"] == []


def test_a_request_without_the_ward_code_is_a_bad_request(servers: dict[str, SimServer]) -> None:
    os_url = servers["one_stop"].url
    session = c.os_login(os_url)["session"]
    assert c.os_call(os_url, session, ward="").json()["error_code"] == "400"
    token = c.cs_token(servers["civil_status"].url).json()["access_token"]
    assert c.cs_call(servers["civil_status"].url, token, ward="").status_code == 400
    assert c.rs_call(servers["residence"].url, ward="").status_code == 400
    assert c.hk_call(servers["household_business"].url, ward="").status_code == 400


def test_a_stopped_server_is_down_even_for_kept_alive_connections(dataset: WardDataset) -> None:
    server = SimServer("residence", clock=SimClock(NOW))
    server.load_dataset(dataset)
    url = server.start()
    session = requests.Session()
    params = {"unit": c.WARD, "limit": 1}
    headers = {"X-API-Key": c.RS.api_key}
    assert session.get(f"{url}/v1/dossiers", params=params, headers=headers, timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/v1/dossiers", params=params, headers=headers, timeout=5)
    assert server.start() == url  # back on the same port
    try:
        assert session.get(f"{url}/v1/dossiers", params=params, headers=headers, timeout=5).status_code == 200
    finally:
        server.stop()


def test_the_clock_hides_what_happened_later(servers: dict[str, SimServer]) -> None:
    """A server whose clock is a month back serves the state of a month ago."""
    url = servers["one_stop"].url
    servers["one_stop"].clock.set(NOW - dt.timedelta(days=30))
    items = c.os_all(url)
    cutoff = (NOW - dt.timedelta(days=30)).strftime("%Y%m%d%H%M%S")
    assert items and all(i["NgayCapNhat"] <= cutoff for i in items)
