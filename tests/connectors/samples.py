"""One realistic wire item per source, as ``sources.md`` describes them; tests copy and vary them."""

from __future__ import annotations

import copy
from typing import Any

ID_NUMBER = "001203004567"  # a made-up 12-digit personal ID (CCCD)

_ONE_STOP: dict[str, Any] = {
    "MaHoSo": "000.00.11.H01-260120-0001",
    "MaTTHC": "1.001612",
    "TenTTHC": "Đăng ký khai sinh",
    "MaLinhVuc": "HOTICH",
    "TenLinhVuc": "Hộ tịch",
    "SoBienNhan": "260120-0001",
    "ChuHoSo": "Nguyễn Văn An",
    "LoaiDoiTuong": "1",
    "SoGiayToChuHoSo": ID_NUMBER,
    "TrichYeuHoSo": "Đăng ký khai sinh cho con",
    "NgayNopHoSo": "20260120081500",
    "NgayTiepNhan": "20260120083000",
    "NgayHenTra": "20260122170000",
    "TrangThaiHoSo": "4",
    "NgayKetThucXuLy": "",
    "NgayTuChoi": "",
    "NgayTra": "",
    "KenhThucHien": "2",
    "DonViXuLy": "UBND phường",
    "HoSoCoThanhPhanSoHoa": "1",
    "TaiLieuNop": [
        {"TenTepDinhKem": "to-khai.pdf", "DuocSoHoa": "1"},
        {"TenTepDinhKem": "giay-chung-sinh.pdf", "DuocSoHoa": "1"},
    ],
    "DanhSachGiayToKetQua": [{"TenGiayTo": "Giấy khai sinh", "DuongDanTepTinKetQua": "/kq/1.pdf"}],
    "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": 8000}],
    "DuocThanhToanTrucTuyen": "1",
    "NgayCapNhat": "20260120090000",
}

_CIVIL_STATUS: dict[str, Any] = {
    "maHoSo": "HT-2026-000123",
    "maHoSoMCDT": "000.00.11.H01-260120-0001",
    "maTTHC": "1.001612",
    "tenTTHC": "Đăng ký khai sinh",
    "loaiHoTich": "KS",
    "ngayNop": "20/01/2026 08:15:00",
    "ngayTiepNhan": "20/01/2026 08:30:00",
    "ngayHenTra": "22/01/2026 17:00:00",
    "ngayXuLyXong": "",
    "ngayTraKetQua": "",
    "trangThai": 3,
    "kenhNop": "TRUC_TUYEN",
    "nguoiYeuCau": {"hoTen": "Nguyễn Văn An", "soDinhDanh": ID_NUMBER},
    "daSoHoa": True,
    "taiSuDungDuLieu": True,
    "lePhi": 8000,
    "thanhToanTrucTuyen": True,
    "ngayCapNhat": "20/01/2026 09:00:00",
}

_RESIDENCE: dict[str, Any] = {
    "id": "CT-7f3a9c",
    "one_stop_code": "000.00.11.H01-260120-0002",
    "procedure": {"code": "1.004194", "name": "Đăng ký thường trú"},
    "channel": "online",
    "submitted_at": "2026-01-20T08:15:00+07:00",
    "received_at": "2026-01-20T01:30:00Z",
    "due_at": "2026-01-27T17:00:00+07:00",
    "finished_at": None,
    "status": "processing",
    "applicant": {"full_name": "Trần Thị Bình", "id_number": ID_NUMBER},
    "digitised": True,
    "reused_data": False,
    "fee": {"amount": 15000, "paid_online": True},
    "updated_at": "2026-01-20T09:00:00+07:00",
}

_HOUSEHOLD_BUSINESS: dict[str, Any] = {
    "MaHoSo": "HKD-2026-000045",
    "SoBienNhanMotCua": "",
    "MaTTHC": "2.000575",
    "TenTTHC": "Đăng ký thành lập hộ kinh doanh",
    "LoaiThuTuc": "DANG_KY_MOI",
    "TenHoKinhDoanh": "Tạp hoá Bình An",
    "MaSoHKD": "",
    "ChuHoKinhDoanh": {"HoTen": "Lê Văn Cường", "SoDinhDanh": ID_NUMBER},
    "KenhNop": "TRUC_TUYEN",
    "NgayNop": "2026-01-20 08:15:00",
    "NgayTiepNhan": "2026-01-20 08:30:00",
    "NgayHenTra": "2026-01-23 17:00:00",
    "NgayHoanThanh": "",
    "TinhTrang": "DANG_XU_LY",
    "DaSoHoa": True,
    "TaiSuDungDuLieu": False,
    "LePhi": 100000,
    "ThanhToanTrucTuyen": "1",
    "NgayCapNhat": "2026-01-20 09:00:00",
}


def one_stop(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_ONE_STOP), **changes}


def civil_status(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_CIVIL_STATUS), **changes}


def residence(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_RESIDENCE), **changes}


def household_business(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_HOUSEHOLD_BUSINESS), **changes}
