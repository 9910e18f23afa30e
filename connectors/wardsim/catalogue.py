"""Reference data for the simulated ward: fields, procedures, names, holidays.

Kept apart from the generator so that a reader can check the Vietnamese data at a glance and
a test can name a procedure by its code without knowing how the generator draws it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: the four simulated source systems, in the order the agent's configuration lists them
SOURCES: tuple[str, ...] = ("one_stop", "civil_status", "residence", "household_business")

DEFAULT_WARD_CODE = "11311"
DEFAULT_WARD_NAME = "Phường Thạch Khôi"

#: field code → field name (the codes the ministry connectors use as defaults)
FIELDS: dict[str, str] = {
    "HOTICH": "Hộ tịch",
    "CUTRU": "Cư trú",
    "DKKD": "Đăng ký kinh doanh",
    "CHUNGTHUC": "Chứng thực",
    "DATDAI": "Đất đai",
    "BTXH": "Bảo trợ xã hội",
}

#: which ministry system holds each field's dossiers besides one_stop (None: one_stop only)
FIELD_MINISTRY: dict[str, str | None] = {
    "HOTICH": "civil_status",
    "CUTRU": "residence",
    "DKKD": "household_business",
    "CHUNGTHUC": None,
    "DATDAI": None,
    "BTXH": None,
}

#: share of the ward's dossiers by field (a plausible mix for an urban ward)
FIELD_WEIGHTS: dict[str, float] = {
    "CHUNGTHUC": 0.30,
    "HOTICH": 0.30,
    "CUTRU": 0.18,
    "DKKD": 0.07,
    "DATDAI": 0.08,
    "BTXH": 0.07,
}

#: the unit that processes each field's dossiers (``DonViXuLy``)
PROCESSING_UNITS: dict[str, str] = {
    "HOTICH": "Văn phòng HĐND và UBND phường",
    "CHUNGTHUC": "Văn phòng HĐND và UBND phường",
    "CUTRU": "Công an phường",
    "DKKD": "Phòng Kinh tế, Hạ tầng và Đô thị",
    "DATDAI": "Phòng Kinh tế, Hạ tầng và Đô thị",
    "BTXH": "Phòng Văn hóa - Xã hội",
}


@dataclass(frozen=True, slots=True)
class Procedure:
    """One administrative procedure as the national procedure database lists it."""

    code: str
    name: str
    field_code: str
    #: the ministry's own sub-type: ``loaiHoTich`` for civil status, ``LoaiThuTuc`` for
    #: household business, "" elsewhere
    kind: str
    #: legal processing time in working days (the due date is this many working days later)
    working_days: int
    #: fee in VND when filed online and at the counter (0: free)
    fee_online: int
    fee_direct: int
    fee_name: str
    documents: tuple[str, ...]
    result: str
    weight: float

    @property
    def field_name(self) -> str:
        return FIELDS[self.field_code]


def _p(
    code: str,
    name: str,
    field_code: str,
    kind: str,
    days: int,
    fees: tuple[int, int],
    fee_name: str,
    documents: tuple[str, ...],
    result: str,
    weight: float,
) -> Procedure:
    return Procedure(
        code, name, field_code, kind, days, fees[0], fees[1], fee_name, documents, result, weight
    )


_TK = "Tờ khai"
PROCEDURES: tuple[Procedure, ...] = (
    # Hộ tịch (Ministry of Justice)
    _p(
        "1.001193",
        "Đăng ký khai sinh",
        "HOTICH",
        "KS",
        1,
        (0, 0),
        "Lệ phí đăng ký khai sinh",
        (f"{_TK} đăng ký khai sinh.pdf", "Giấy chứng sinh.pdf"),
        "Giấy khai sinh (bản chính)",
        0.30,
    ),
    _p(
        "1.000656",
        "Đăng ký khai tử",
        "HOTICH",
        "KT",
        1,
        (0, 0),
        "Lệ phí đăng ký khai tử",
        (f"{_TK} đăng ký khai tử.pdf", "Giấy báo tử.pdf"),
        "Trích lục khai tử (bản chính)",
        0.12,
    ),
    _p(
        "1.000894",
        "Đăng ký kết hôn",
        "HOTICH",
        "KH",
        3,
        (0, 0),
        "Lệ phí đăng ký kết hôn",
        (f"{_TK} đăng ký kết hôn.pdf", "Giấy xác nhận tình trạng hôn nhân.pdf"),
        "Giấy chứng nhận kết hôn",
        0.12,
    ),
    _p(
        "1.004873",
        "Cấp Giấy xác nhận tình trạng hôn nhân",
        "HOTICH",
        "XNTTHN",
        3,
        (15000, 15000),
        "Lệ phí cấp Giấy xác nhận tình trạng hôn nhân",
        (f"{_TK} cấp Giấy xác nhận tình trạng hôn nhân.pdf",),
        "Giấy xác nhận tình trạng hôn nhân",
        0.25,
    ),
    _p(
        "2.000635",
        "Cấp bản sao Trích lục hộ tịch",
        "HOTICH",
        "TLHT",
        1,
        (8000, 8000),
        "Phí cấp bản sao trích lục hộ tịch",
        (f"{_TK} cấp bản sao trích lục hộ tịch.pdf",),
        "Bản sao Trích lục hộ tịch",
        0.12,
    ),
    _p(
        "1.004859",
        "Đăng ký thay đổi, cải chính, bổ sung thông tin hộ tịch",
        "HOTICH",
        "TDCCBS",
        3,
        (15000, 15000),
        "Lệ phí thay đổi, cải chính hộ tịch",
        (f"{_TK} đăng ký thay đổi, cải chính, bổ sung thông tin hộ tịch.pdf", "Giấy tờ chứng minh.pdf"),
        "Trích lục thay đổi, cải chính hộ tịch",
        0.06,
    ),
    _p(
        "1.001022",
        "Đăng ký nhận cha, mẹ, con",
        "HOTICH",
        "NCMC",
        3,
        (0, 0),
        "Lệ phí đăng ký nhận cha, mẹ, con",
        (f"{_TK} đăng ký nhận cha, mẹ, con.pdf", "Chứng cứ chứng minh quan hệ cha, mẹ, con.pdf"),
        "Trích lục đăng ký nhận cha, mẹ, con",
        0.03,
    ),
    # Cư trú (Ministry of Public Security)
    _p(
        "1.004222",
        "Đăng ký thường trú",
        "CUTRU",
        "",
        7,
        (10000, 20000),
        "Lệ phí đăng ký cư trú",
        ("Tờ khai thay đổi thông tin cư trú (CT01).pdf", "Giấy tờ chứng minh chỗ ở hợp pháp.pdf"),
        "Thông báo kết quả đăng ký thường trú",
        0.35,
    ),
    _p(
        "1.004194",
        "Đăng ký tạm trú",
        "CUTRU",
        "",
        3,
        (7000, 15000),
        "Lệ phí đăng ký cư trú",
        ("Tờ khai thay đổi thông tin cư trú (CT01).pdf", "Giấy tờ chứng minh chỗ ở hợp pháp.pdf"),
        "Thông báo kết quả đăng ký tạm trú",
        0.35,
    ),
    _p(
        "1.004206",
        "Xóa đăng ký thường trú",
        "CUTRU",
        "",
        1,
        (0, 0),
        "Lệ phí đăng ký cư trú",
        ("Tờ khai thay đổi thông tin cư trú (CT01).pdf",),
        "Thông báo kết quả xóa đăng ký thường trú",
        0.10,
    ),
    _p(
        "1.004199",
        "Gia hạn tạm trú",
        "CUTRU",
        "",
        3,
        (7000, 15000),
        "Lệ phí đăng ký cư trú",
        ("Tờ khai thay đổi thông tin cư trú (CT01).pdf",),
        "Thông báo kết quả gia hạn tạm trú",
        0.12,
    ),
    _p(
        "1.004217",
        "Khai báo tạm vắng",
        "CUTRU",
        "",
        1,
        (0, 0),
        "Lệ phí đăng ký cư trú",
        ("Tờ khai thay đổi thông tin cư trú (CT01).pdf",),
        "Phiếu khai báo tạm vắng",
        0.08,
    ),
    # Đăng ký kinh doanh: hộ kinh doanh (national household-business registration system)
    _p(
        "2.000720",
        "Đăng ký thành lập hộ kinh doanh",
        "DKKD",
        "DANG_KY_MOI",
        3,
        (100000, 100000),
        "Lệ phí đăng ký hộ kinh doanh",
        ("Giấy đề nghị đăng ký hộ kinh doanh.pdf", "Bản sao hợp đồng thuê địa điểm kinh doanh.pdf"),
        "Giấy chứng nhận đăng ký hộ kinh doanh",
        0.45,
    ),
    _p(
        "2.000575",
        "Đăng ký thay đổi nội dung đăng ký hộ kinh doanh",
        "DKKD",
        "THAY_DOI",
        3,
        (50000, 50000),
        "Lệ phí đăng ký hộ kinh doanh",
        ("Thông báo thay đổi nội dung đăng ký hộ kinh doanh.pdf",),
        "Giấy chứng nhận đăng ký hộ kinh doanh (thay đổi)",
        0.30,
    ),
    _p(
        "2.000631",
        "Thông báo tạm ngừng kinh doanh, tiếp tục kinh doanh trước thời hạn đã thông báo của hộ kinh doanh",
        "DKKD",
        "TAM_NGUNG",
        3,
        (0, 0),
        "Lệ phí đăng ký hộ kinh doanh",
        ("Thông báo tạm ngừng kinh doanh.pdf",),
        "Giấy xác nhận về việc hộ kinh doanh tạm ngừng kinh doanh",
        0.12,
    ),
    _p(
        "2.000598",
        "Chấm dứt hoạt động hộ kinh doanh",
        "DKKD",
        "CHAM_DUT",
        3,
        (0, 0),
        "Lệ phí đăng ký hộ kinh doanh",
        ("Thông báo chấm dứt hoạt động hộ kinh doanh.pdf",),
        "Thông báo về việc chấm dứt hoạt động hộ kinh doanh",
        0.13,
    ),
    # Chứng thực (one_stop only)
    _p(
        "2.000815",
        "Chứng thực bản sao từ bản chính giấy tờ, văn bản do cơ quan, tổ chức có thẩm quyền của "
        "Việt Nam cấp hoặc chứng nhận",
        "CHUNGTHUC",
        "",
        1,
        (2000, 2000),
        "Phí chứng thực bản sao",
        ("Bản chính giấy tờ cần chứng thực.pdf",),
        "Bản sao có chứng thực",
        0.60,
    ),
    _p(
        "2.000884",
        "Chứng thực chữ ký trong các giấy tờ, văn bản",
        "CHUNGTHUC",
        "",
        1,
        (10000, 10000),
        "Phí chứng thực chữ ký",
        ("Giấy tờ, văn bản cần chứng thực chữ ký.pdf",),
        "Giấy tờ, văn bản đã chứng thực chữ ký",
        0.25,
    ),
    _p(
        "2.001035",
        "Chứng thực hợp đồng, giao dịch liên quan đến tài sản là động sản, quyền sử dụng đất và nhà ở",
        "CHUNGTHUC",
        "",
        2,
        (50000, 50000),
        "Phí chứng thực hợp đồng, giao dịch",
        ("Dự thảo hợp đồng, giao dịch.pdf", "Giấy chứng nhận quyền sử dụng đất.pdf"),
        "Hợp đồng, giao dịch đã chứng thực",
        0.12,
    ),
    _p(
        "2.000913",
        "Chứng thực việc sửa đổi, bổ sung, hủy bỏ hợp đồng, giao dịch",
        "CHUNGTHUC",
        "",
        2,
        (30000, 30000),
        "Phí chứng thực hợp đồng, giao dịch",
        ("Văn bản sửa đổi, bổ sung hợp đồng.pdf",),
        "Văn bản sửa đổi, bổ sung đã chứng thực",
        0.03,
    ),
    # Đất đai (one_stop only)
    _p(
        "1.012756",
        "Đăng ký biến động đất đai, tài sản gắn liền với đất",
        "DATDAI",
        "",
        10,
        (30000, 30000),
        "Lệ phí đăng ký biến động đất đai",
        ("Đơn đăng ký biến động đất đai.pdf", "Giấy chứng nhận quyền sử dụng đất.pdf"),
        "Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
        0.50,
    ),
    _p(
        "1.012784",
        "Cấp đổi, cấp lại Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
        "DATDAI",
        "",
        7,
        (50000, 50000),
        "Lệ phí cấp Giấy chứng nhận",
        ("Đơn đề nghị cấp đổi Giấy chứng nhận.pdf", "Giấy chứng nhận đã cấp.pdf"),
        "Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
        0.40,
    ),
    _p(
        "1.012790",
        "Hòa giải tranh chấp đất đai",
        "DATDAI",
        "",
        20,
        (0, 0),
        "Lệ phí hòa giải",
        ("Đơn yêu cầu hòa giải tranh chấp đất đai.pdf",),
        "Biên bản hòa giải tranh chấp đất đai",
        0.10,
    ),
    # Bảo trợ xã hội (one_stop only)
    _p(
        "1.001776",
        "Thực hiện, điều chỉnh, thôi hưởng trợ cấp xã hội hằng tháng, hỗ trợ kinh phí chăm sóc, "
        "nuôi dưỡng hằng tháng",
        "BTXH",
        "",
        15,
        (0, 0),
        "Lệ phí",
        ("Tờ khai đề nghị trợ giúp xã hội.pdf",),
        "Quyết định trợ cấp xã hội hằng tháng",
        0.60,
    ),
    _p(
        "1.001758",
        "Chi trả trợ cấp xã hội hằng tháng khi đối tượng thay đổi nơi cư trú",
        "BTXH",
        "",
        10,
        (0, 0),
        "Lệ phí",
        ("Đơn đề nghị chi trả trợ cấp xã hội.pdf",),
        "Quyết định chi trả trợ cấp xã hội",
        0.25,
    ),
    _p(
        "1.001731",
        "Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội",
        "BTXH",
        "",
        5,
        (0, 0),
        "Lệ phí",
        ("Tờ khai đề nghị hỗ trợ chi phí mai táng.pdf", "Trích lục khai tử.pdf"),
        "Quyết định hỗ trợ chi phí mai táng",
        0.15,
    ),
)

PROCEDURES_BY_CODE: dict[str, Procedure] = {p.code: p for p in PROCEDURES}

# --- people -------------------------------------------------------------------------------------

#: family names with their rough share in northern Vietnam
FAMILY_NAMES: tuple[tuple[str, float], ...] = (
    ("Nguyễn", 36.0),
    ("Trần", 11.0),
    ("Lê", 9.0),
    ("Phạm", 7.5),
    ("Hoàng", 4.5),
    ("Vũ", 4.5),
    ("Phan", 3.0),
    ("Đặng", 2.2),
    ("Bùi", 2.5),
    ("Đỗ", 2.0),
    ("Ngô", 1.5),
    ("Đinh", 1.2),
    ("Đào", 1.2),
    ("Dương", 1.0),
    ("Hồ", 0.8),
    ("Lương", 0.7),
    ("Mai", 0.6),
    ("Trịnh", 0.8),
    ("Cao", 0.6),
    ("Đoàn", 0.7),
    ("Lưu", 0.4),
    ("Phùng", 0.4),
    ("Hà", 0.6),
    ("Tạ", 0.4),
    ("Tô", 0.4),
    ("Vương", 0.3),
    ("Lý", 0.3),
    ("Khúc", 0.2),
    ("Nghiêm", 0.2),
    ("Quách", 0.2),
    ("Huỳnh", 0.3),
    ("Võ", 0.3),
)
MIDDLE_NAMES_MALE: tuple[tuple[str, float], ...] = (
    ("Văn", 30.0),
    ("Đức", 8.0),
    ("Minh", 8.0),
    ("Quang", 5.0),
    ("Hữu", 4.0),
    ("Thành", 3.0),
    ("Xuân", 3.0),
    ("Công", 3.0),
    ("Đình", 4.0),
    ("Ngọc", 3.0),
    ("Tuấn", 2.0),
    ("Mạnh", 2.0),
    ("Trung", 2.0),
    ("Hoàng", 2.0),
    ("Gia", 3.0),
    ("Duy", 3.0),
    ("Anh", 2.0),
    ("Bảo", 2.0),
    ("Thanh", 3.0),
    ("Việt", 2.0),
    ("Trọng", 2.0),
)
MIDDLE_NAMES_FEMALE: tuple[tuple[str, float], ...] = (
    ("Thị", 35.0),
    ("Thu", 5.0),
    ("Ngọc", 6.0),
    ("Thanh", 5.0),
    ("Minh", 4.0),
    ("Phương", 3.0),
    ("Hồng", 3.0),
    ("Mai", 2.0),
    ("Thùy", 3.0),
    ("Khánh", 3.0),
    ("Bảo", 3.0),
    ("Diệu", 1.0),
    ("Hải", 2.0),
    ("Quỳnh", 2.0),
    ("Kim", 2.0),
    ("Hoài", 1.0),
    ("Bích", 1.0),
    ("Phương Anh", 0.5),
    ("Thảo", 1.0),
)
GIVEN_NAMES_MALE: tuple[str, ...] = (
    "Anh",
    "Hùng",
    "Dũng",
    "Tuấn",
    "Nam",
    "Hải",
    "Long",
    "Minh",
    "Quân",
    "Sơn",
    "Thắng",
    "Trung",
    "Hiếu",
    "Huy",
    "Khánh",
    "Đức",
    "Phong",
    "Cường",
    "Hoàng",
    "Thành",
    "Bình",
    "Toàn",
    "Tùng",
    "Vinh",
    "Phúc",
    "Khoa",
    "Đạt",
    "Lâm",
    "Kiên",
    "Hưng",
    "Tâm",
    "Thịnh",
    "Tiến",
    "Quang",
    "Trọng",
    "Nghĩa",
    "Bảo",
    "Khang",
    "Lộc",
    "Định",
    "Duy",
    "Hiệp",
    "Chiến",
    "Thuận",
    "Quyết",
)
GIVEN_NAMES_FEMALE: tuple[str, ...] = (
    "Anh",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "Ngọc",
    "Trang",
    "Hà",
    "Thảo",
    "Hằng",
    "Hoa",
    "Huyền",
    "Nga",
    "Nhung",
    "Phương",
    "Quỳnh",
    "Thủy",
    "Thu",
    "Vân",
    "Yến",
    "Hạnh",
    "Hiền",
    "Loan",
    "Oanh",
    "Uyên",
    "Vy",
    "Chi",
    "Giang",
    "Dung",
    "Nhi",
    "My",
    "Trâm",
    "Duyên",
    "Thơ",
    "Liên",
    "Hòa",
    "Tâm",
    "Ly",
    "Diệp",
    "Châu",
    "Ngân",
    "Thư",
)

#: CCCD province codes (first three digits) of applicants living in a Hai Phong ward
PROVINCE_CODES: tuple[tuple[str, float], ...] = (
    ("031", 85.0),
    ("030", 4.0),
    ("034", 3.0),
    ("022", 2.0),
    ("001", 2.0),
    ("033", 1.0),
    ("036", 1.0),
    ("038", 1.0),
    ("037", 0.5),
    ("079", 0.5),
)

BUSINESS_TRADES: tuple[str, ...] = (
    "Tạp hóa",
    "Cửa hàng điện thoại",
    "Quán cà phê",
    "Quán phở",
    "Quán bún chả",
    "Tiệm may",
    "Cửa hàng vật liệu xây dựng",
    "Tiệm sửa xe máy",
    "Cửa hàng hoa tươi",
    "Nhà thuốc",
    "Quán cơm",
    "Cửa hàng quần áo",
    "Tiệm tóc",
    "Cửa hàng điện máy",
    "Tiệm bánh",
    "Cửa hàng hải sản",
)

# --- calendar -------------------------------------------------------------------------------------

#: public holidays (days off) in Vietnam, including Tết and compensating days; outside these
#: years only weekends are days off
HOLIDAYS: frozenset[dt.date] = frozenset(
    dt.date.fromisoformat(d)
    for d in (
        # 2024
        "2024-01-01",
        "2024-02-08",
        "2024-02-09",
        "2024-02-12",
        "2024-02-13",
        "2024-02-14",
        "2024-04-18",
        "2024-04-29",
        "2024-04-30",
        "2024-05-01",
        "2024-09-02",
        "2024-09-03",
        # 2025
        "2025-01-01",
        "2025-01-27",
        "2025-01-28",
        "2025-01-29",
        "2025-01-30",
        "2025-01-31",
        "2025-04-07",
        "2025-04-30",
        "2025-05-01",
        "2025-05-02",
        "2025-09-01",
        "2025-09-02",
        # 2026
        "2026-01-01",
        "2026-01-02",
        "2026-02-16",
        "2026-02-17",
        "2026-02-18",
        "2026-02-19",
        "2026-02-20",
        "2026-04-27",
        "2026-04-30",
        "2026-05-01",
        "2026-09-01",
        "2026-09-02",
        # 2027
        "2027-01-01",
        "2027-02-04",
        "2027-02-05",
        "2027-02-08",
        "2027-02-09",
        "2027-02-10",
        "2027-04-16",
        "2027-04-30",
        "2027-05-03",
        "2027-09-02",
        "2027-09-03",
        # 2028
        "2028-01-03",
        "2028-01-24",
        "2028-01-25",
        "2028-01-26",
        "2028-01-27",
        "2028-01-28",
        "2028-04-04",
        "2028-05-01",
        "2028-05-02",
        "2028-09-01",
        "2028-09-04",
    )
)


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday, public holidays excluded."""
    return day.weekday() < 5 and day not in HOLIDAYS
