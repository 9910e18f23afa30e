"""Vietnamese number, date and label style for everything the report shows a person.

The ward pastes the paragraph into an official document, so the numbers follow the document's
style, not Python's: ``4.899`` (dot for thousands), ``99,98 %`` (comma for decimals, a space
before the sign, trailing zeros dropped as in the seed's ``100 %``), and counts from 1 to 9
written with two digits in prose (``01 hồ sơ``), as the seed and Vietnamese administrative
writing do; zero stays ``0``. Tables use plain thousands-separated numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from sync_agent.flags import KIND_LABELS
from sync_agent.labels import short_source_label as short_source_label  # the renderers' labels
from sync_agent.labels import source_label as source_label

FLAG_LABELS: Mapping[str, str] = KIND_LABELS
STATUS_LABELS: Mapping[str, str] = {
    "submitted": "Đã nộp, chưa tiếp nhận",
    "not_accepted": "Không tiếp nhận",
    "received": "Đã tiếp nhận",
    "in_progress": "Đang giải quyết",
    "awaiting_supplement": "Chờ bổ sung",
    "awaiting_payment": "Chờ thanh toán",
    "suspended": "Tạm dừng",
    "resolved": "Đã giải quyết",
    "delivered": "Đã trả kết quả",
    "rejected": "Từ chối",
    "withdrawn": "Rút hồ sơ",
}
FLAG_KINDS = ("bypassed_reception", "unknown_reception_code", "status_mismatch", "data_quality")


def number(n: int) -> str:
    """``4899`` -> ``4.899``."""
    return f"{n:,}".replace(",", ".")


def count(n: int) -> str:
    """A count in prose: ``0``, ``01``..``09``, ``25``, ``4.871``."""
    return f"{n:02d}" if 0 < n < 10 else number(n)


def percent(value: Decimal | None, missing: str = "—") -> str:
    """``Decimal('99.98')`` -> ``99,98 %``; ``100.00`` -> ``100 %``; ``99.50`` -> ``99,5 %``."""
    if value is None:
        return missing
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + " %"


def date(value: dt.date | None, missing: str = "") -> str:
    return value.strftime("%d/%m/%Y") if value else missing


def datetime(value: dt.datetime | None, tz: dt.tzinfo | None = None, missing: str = "chưa có") -> str:
    """A date and time in a table's cell or a CSV's: ``01/02/2026 08:00``."""
    if value is None:
        return missing
    return (value.astimezone(tz) if tz else value).strftime("%d/%m/%Y %H:%M")


def moment(value: dt.datetime | None, tz: dt.tzinfo | None = None, missing: str = "chưa có") -> str:
    """A date and time in a sentence, as the seed report and the digest write it:
    ``08:00 ngày 01/02/2026``."""
    if value is None:
        return missing
    return (value.astimezone(tz) if tz else value).strftime("%H:%M ngày %d/%m/%Y")


def quarantined_text(n: int) -> str:
    """What the report says of a source's quarantined records: what they hold is not in its
    figures ("not yet brought into", not "not counted": a record whose earlier, valid version
    is stored still counts as that version). The city reads it: no command names."""
    return f"{count(n)} bản ghi sai định dạng, chưa cập nhật vào số liệu (cán bộ CNTT kiểm tra)"


def source_state(stale: bool, failures_in_a_row: int, quarantined: int, stale_after_hours: int) -> str:
    """A source's state in the report, in a word the city reads: not the agent's error (English,
    with the source's address), which ``status`` shows the IT officer."""
    if stale:
        return f"Chưa cập nhật quá {stale_after_hours} giờ"
    if failures_in_a_row:
        return "Lần đồng bộ gần nhất không thành công"
    if quarantined:
        return "Có bản ghi lỗi"
    return "Bình thường"


def failures_text(n: int) -> str:
    return f"lỗi {n} lần liên tiếp (cán bộ CNTT kiểm tra)"


def quarantined_acknowledged_text(n: int) -> str:
    """What the report says of quarantined records an operator acknowledged: nothing to check,
    but the figures still lack what they hold."""
    return (f"{count(n)} bản ghi sai định dạng không được cập nhật vào số liệu "
            "(cán bộ CNTT đã xem xét, không cần kiểm tra thêm)")
