"""Field rules of each mapping: identifiers, channels, digitised, reuse, fee, online payment,
"none" values, unknown fields, and the ID number never stored or shown in clear."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.civil_status import mapping as civil
from connectors.household_business import mapping as hkd
from connectors.one_stop import mapping as one_stop
from connectors.residence import mapping as residence
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status
from sync_agent.payload import DEEPER, payload_json

from . import samples
from .conftest import TZ
from .sources import SOURCES, Source, get, put

PARAMS = pytest.mark.parametrize("source", SOURCES, ids=str)


def record(out: DossierRecord | QuarantinedRecord) -> DossierRecord:
    assert isinstance(out, DossierRecord), getattr(out, "reason", out)
    return out


def local(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=TZ)  # type: ignore[misc]


# --- common to every source ------------------------------------------------------------------


@PARAMS
def test_the_sample_maps_and_keeps_only_a_hash_of_the_id(source: Source, context: ConnectorContext) -> None:
    rec = record(source.mapping.normalise_item(source.sample(), context))
    assert rec.source == source.name
    assert rec.source_id == get(source.sample(), source.id_field)
    assert rec.procedure_code == get(source.sample(), source.procedure_field)
    assert rec.applicant_key == context.hasher(samples.ID_NUMBER)
    assert rec.source_updated_at == local(2026, 1, 20, 9, 0)
    assert rec.received_at == local(2026, 1, 20, 8, 30)
    assert rec.due_at is not None and rec.due_at.tzinfo is not None
    assert samples.ID_NUMBER not in repr(rec)
    assert get(rec.raw, source.id_number_field) == f"hmac:{context.hasher(samples.ID_NUMBER)}"


@PARAMS
def test_an_id_number_holding_a_byte_that_is_not_utf8_is_hashed_not_a_failed_page(
        source: Source, context: ConnectorContext) -> None:
    # the answer's bytes were read with Python's stand-in (a lone surrogate) for the bad one
    garbled = samples.ID_NUMBER + "\udce0"
    rec = record(source.mapping.normalise_item(put(source.sample(), source.id_number_field, garbled), context))
    assert rec.applicant_key == context.hasher(garbled)
    assert get(rec.raw, source.id_number_field) == f"hmac:{context.hasher(garbled)}"


@PARAMS
def test_a_record_with_a_field_nested_deeper_than_the_walk_goes_is_kept_with_that_field_cut(
        source: Source, context: ConnectorContext) -> None:
    deep: Any = "x"
    for _ in range(2000):  # json.loads reads it; the redaction's walk would exceed the recursion limit
        deep = [deep]
    rec = record(source.mapping.normalise_item({**source.sample(), "GhiChu": deep}, context))
    assert DEEPER in payload_json(rec.raw)
    assert get(rec.raw, source.id_number_field) == f"hmac:{context.hasher(samples.ID_NUMBER)}"


@PARAMS
def test_the_source_name_is_the_configured_one(source: Source, context: ConnectorContext) -> None:
    rec = record(source.mapping.normalise_item(source.sample(), context, source="ward_b"))
    assert rec.source == "ward_b"


@PARAMS
@pytest.mark.parametrize("missing", ["", "  ", None, ...], ids=["empty", "blank", "null", "absent"])
@pytest.mark.parametrize("which", ["id", "procedure", "updated"])
def test_a_record_missing_a_required_field_is_quarantined(
    source: Source, missing: Any, which: str, context: ConnectorContext
) -> None:
    field = {"id": source.id_field, "procedure": source.procedure_field, "updated": source.updated_field}[
        which
    ]
    item = put(source.sample(), field, missing)
    out = source.mapping.normalise_item(item, context)
    assert isinstance(out, QuarantinedRecord)
    assert out.reason == f"missing required field {field}"
    assert out.source == source.name
    assert samples.ID_NUMBER not in repr(out)
    assert get(out.raw, source.id_number_field).startswith("hmac:")


@PARAMS
def test_a_quarantined_record_keeps_its_id_and_time(source: Source, context: ConnectorContext) -> None:
    out = source.mapping.normalise_item(put(source.sample(), source.status_field, "NO_SUCH"), context)
    assert isinstance(out, QuarantinedRecord)
    assert out.source_id == get(source.sample(), source.id_field)
    assert out.source_updated_at == local(2026, 1, 20, 9, 0)


@PARAMS
def test_an_id_number_typed_into_a_date_is_not_repeated_in_the_reason(
    source: Source, context: ConnectorContext
) -> None:
    field = source.time_fields[1]
    out = source.mapping.normalise_item(put(source.sample(), field, samples.ID_NUMBER), context)
    assert isinstance(out, QuarantinedRecord) and field in out.reason
    assert samples.ID_NUMBER not in out.reason
    assert samples.ID_NUMBER not in repr(out.raw)


@PARAMS
def test_an_id_number_at_the_end_of_a_long_bad_value_is_not_shown_in_part(
    source: Source, context: ConnectorContext
) -> None:
    # the reason shows the value cut to 60 characters: cut first, the ID would lose a digit or
    # two and no longer look like one
    field = source.time_fields[1]
    value = "A" * 44 + " " + samples.ID_NUMBER + " x"  # cut after its 11th digit
    out = source.mapping.normalise_item(put(source.sample(), field, value), context)
    assert isinstance(out, QuarantinedRecord) and field in out.reason
    assert samples.ID_NUMBER[:8] not in out.reason


@PARAMS
@pytest.mark.parametrize("separator", ["\n", "\t", "\r", "\x0b", "\u200b"])
def test_an_id_number_after_a_control_character_in_a_bad_value_is_masked(
    source: Source, context: ConnectorContext, separator: str
) -> None:
    # the reason shows the value as Python writes it, where a newline becomes "\n": the ID then
    # follows a letter, and was not taken for one
    field = source.time_fields[1]
    out = source.mapping.normalise_item(put(source.sample(), field, f"ngày{separator}{samples.ID_NUMBER}"), context)
    assert isinstance(out, QuarantinedRecord) and field in out.reason
    assert samples.ID_NUMBER not in out.reason and "[id-redacted]" in out.reason


@PARAMS
@pytest.mark.parametrize("item", ["text", 12, [1, 2], None])
def test_an_item_that_is_not_an_object_is_quarantined(
    source: Source, item: Any, context: ConnectorContext
) -> None:
    out = source.mapping.normalise_item(item, context)
    assert isinstance(out, QuarantinedRecord) and "not a JSON object" in out.reason


@PARAMS
def test_a_payload_with_keys_that_are_not_text_is_stored_whole(source: Source, context: ConnectorContext) -> None:
    """A connector may build its items from something other than JSON: keys of other types are
    written as JSON writes them, an ID number among them as its keyed hash, and no value is lost."""
    item = source.sample()
    item["TheoSoGiayTo"] = {791203004567: "Nguyễn Văn An", 1: "một", "1": "one", None: "không"}
    rec = record(source.mapping.normalise_item(item, context))
    assert rec.raw["TheoSoGiayTo"] == {f"hmac:{context.hasher('791203004567')}": "Nguyễn Văn An",
                                       "1 (2)": "một", "1": "one", "null": "không"}
    assert "791203004567" not in payload_json(rec.raw)


@PARAMS
def test_unknown_extra_fields_are_ignored(source: Source, context: ConnectorContext) -> None:
    plain = record(source.mapping.normalise_item(source.sample(), context))
    extra = source.sample()
    extra["TruongMoi"] = {"nested": [1, 2, {"x": None}]}
    extra["another_new_field"] = "2026-99-99"
    assert record(source.mapping.normalise_item(extra, context)) == plain


@PARAMS
@pytest.mark.parametrize("none", ["", None, ...], ids=["empty", "null", "absent"])
def test_empty_null_and_missing_optional_fields_all_mean_none(
    source: Source, none: Any, context: ConnectorContext
) -> None:
    item = source.sample()
    for field in source.time_fields:
        if field != source.updated_field:
            put(item, field, none)
    put(item, source.id_number_field, none)
    rec = record(source.mapping.normalise_item(item, context))
    assert (rec.submitted_at, rec.received_at, rec.due_at, rec.completed_at) == (None, None, None, None)
    assert rec.applicant_key is None


def test_the_id_number_may_come_as_a_json_number(context: ConnectorContext) -> None:
    rec = record(
        residence.normalise_item(put(samples.residence(), "applicant.id_number", 123456789), context)
    )
    assert rec.applicant_key == context.hasher("123456789")
    assert "123456789" not in repr(rec.raw)


# --- one_stop --------------------------------------------------------------------------------


def test_one_stop_fields(context: ConnectorContext) -> None:
    rec = record(one_stop.normalise_item(samples.one_stop(), context))
    assert rec.reception_code == "000.00.11.H01-260120-0001" == rec.source_id
    assert (rec.field_code, rec.field_name) == ("HOTICH", "Hộ tịch")
    assert rec.procedure_name == "Đăng ký khai sinh"
    assert rec.applicant_name == "Nguyễn Văn An"
    assert rec.submitted_at == local(2026, 1, 20, 8, 15)
    assert rec.due_at == local(2026, 1, 22, 17, 0)
    assert rec.status is Status.IN_PROGRESS
    assert (rec.digitised, rec.data_reused, rec.fee_required, rec.paid_online) == (True, True, True, True)


@pytest.mark.parametrize(
    ("code", "channel"),
    [
        ("1", Channel.DIRECT),
        ("2", Channel.ONLINE),
        ("3", Channel.POSTAL),
        ("", Channel.UNKNOWN),
        (None, Channel.UNKNOWN),
        (..., Channel.UNKNOWN),
        ("9", Channel.UNKNOWN),
    ],
)
def test_one_stop_channel(code: Any, channel: Channel, context: ConnectorContext) -> None:
    rec = record(one_stop.normalise_item(put(samples.one_stop(), "KenhThucHien", code), context))
    assert rec.channel is channel


DIGITISED_FILE = {"TenTepDinhKem": "a.pdf", "DuocSoHoa": "1"}
PAPER_FILE = {"TenTepDinhKem": "b.pdf", "DuocSoHoa": "0"}
RESULT = {"TenGiayTo": "Giấy khai sinh", "DuongDanTepTinKetQua": "/kq/1.pdf"}
RESULT_NO_FILE = {"TenGiayTo": "Giấy khai sinh", "DuongDanTepTinKetQua": ""}


@pytest.mark.parametrize(
    ("files", "results", "digitised"),
    [
        ([DIGITISED_FILE], [RESULT], True),
        ([DIGITISED_FILE, DIGITISED_FILE], [RESULT_NO_FILE, RESULT], True),
        ([DIGITISED_FILE, PAPER_FILE], [RESULT], False),  # not all files digitised
        ([{"TenTepDinhKem": "c.pdf"}], [RESULT], False),  # DuocSoHoa missing
        ([], [RESULT], False),  # no file at all
        (None, [RESULT], False),
        ([DIGITISED_FILE], [RESULT_NO_FILE], False),  # no result file
        ([DIGITISED_FILE], [], False),
        ([DIGITISED_FILE], None, False),
    ],
)
def test_one_stop_digitised_rule(
    files: Any, results: Any, digitised: bool, context: ConnectorContext
) -> None:
    item = samples.one_stop(TaiLieuNop=files, DanhSachGiayToKetQua=results)
    assert record(one_stop.normalise_item(item, context)).digitised is digitised


@pytest.mark.parametrize(("value", "reused"), [("1", True), ("0", False), ("", False), (None, False)])
def test_one_stop_data_reused(value: Any, reused: bool, context: ConnectorContext) -> None:
    item = samples.one_stop(HoSoCoThanhPhanSoHoa=value)
    assert record(one_stop.normalise_item(item, context)).data_reused is reused


@pytest.mark.parametrize(
    ("fees", "required"),
    [
        ([{"TenPhiLePhi": "Lệ phí", "Gia": 8000}], True),
        ([{"TenPhiLePhi": "Lệ phí", "Gia": "8000"}], True),
        ([{"TenPhiLePhi": "Miễn", "Gia": 0}, {"TenPhiLePhi": "Phí", "Gia": 5000.5}], True),
        ([{"TenPhiLePhi": "Miễn", "Gia": 0}], False),
        ([{"TenPhiLePhi": "Miễn", "Gia": ""}], False),
        ([], False),
        (None, False),
    ],
)
def test_one_stop_fee_required(fees: Any, required: bool, context: ConnectorContext) -> None:
    item = samples.one_stop(DanhSachLePhi=fees)
    assert record(one_stop.normalise_item(item, context)).fee_required is required


def test_one_stop_a_non_numeric_fee_is_quarantined(context: ConnectorContext) -> None:
    item = samples.one_stop(DanhSachLePhi=[{"TenPhiLePhi": "Lệ phí", "Gia": "tám nghìn"}])
    out = one_stop.normalise_item(item, context)
    assert isinstance(out, QuarantinedRecord) and "Gia" in out.reason


@pytest.mark.parametrize(
    ("value", "paid"), [("1", True), ("2", True), ("3", False), ("", False), (None, False), ("0", False)]
)
def test_one_stop_paid_online(value: Any, paid: bool, context: ConnectorContext) -> None:
    item = samples.one_stop(DuocThanhToanTrucTuyen=value)
    assert record(one_stop.normalise_item(item, context)).paid_online is paid


def test_one_stop_status_code_may_be_a_json_number(context: ConnectorContext) -> None:
    assert (
        record(one_stop.normalise_item(samples.one_stop(TrangThaiHoSo=9), context)).status is Status.RESOLVED
    )


def test_one_stop_field_comes_from_the_record(context: ConnectorContext) -> None:
    rec = record(one_stop.normalise_item(samples.one_stop(MaLinhVuc="DATDAI", TenLinhVuc="Đất đai"), context))
    assert (rec.field_code, rec.field_name) == ("DATDAI", "Đất đai")
    rec = record(one_stop.normalise_item(samples.one_stop(MaLinhVuc="", TenLinhVuc=None), context))
    assert (rec.field_code, rec.field_name) == (None, None)


# --- civil_status ----------------------------------------------------------------------------


def test_civil_status_fields(context: ConnectorContext) -> None:
    rec = record(civil.normalise_item(samples.civil_status(), context))
    assert rec.reception_code == "000.00.11.H01-260120-0001"
    assert rec.source_id == "HT-2026-000123"
    assert (rec.field_code, rec.field_name) == ("HOTICH", "Hộ tịch")
    assert rec.applicant_name == "Nguyễn Văn An"
    assert rec.channel is Channel.ONLINE
    assert (rec.digitised, rec.data_reused, rec.fee_required, rec.paid_online) == (True, True, True, True)


def test_civil_status_field_is_configurable(context: ConnectorContext) -> None:
    rec = record(civil.normalise_item(samples.civil_status(), context, field_code="HT", field_name="HT x"))
    assert (rec.field_code, rec.field_name) == ("HT", "HT x")


@pytest.mark.parametrize("value", ["", None, ...])
def test_civil_status_filed_on_the_ministry_portal_has_no_reception_code(
    value: Any, context: ConnectorContext
) -> None:
    rec = record(civil.normalise_item(put(samples.civil_status(), "maHoSoMCDT", value), context))
    assert rec.reception_code is None


@pytest.mark.parametrize(
    ("code", "channel"),
    [
        ("TRUC_TUYEN", Channel.ONLINE),
        ("TRUC_TIEP", Channel.DIRECT),
        ("BUU_CHINH", Channel.POSTAL),
        ("", Channel.UNKNOWN),
        (None, Channel.UNKNOWN),
    ],
)
def test_civil_status_channel(code: Any, channel: Channel, context: ConnectorContext) -> None:
    assert record(civil.normalise_item(samples.civil_status(kenhNop=code), context)).channel is channel


@pytest.mark.parametrize(
    ("fee", "required"), [(8000, True), (0.5, True), (0, False), (None, False), ("", False)]
)
def test_civil_status_fee_required(fee: Any, required: bool, context: ConnectorContext) -> None:
    assert record(civil.normalise_item(samples.civil_status(lePhi=fee), context)).fee_required is required


def test_civil_status_flags_false_and_absent(context: ConnectorContext) -> None:
    item = samples.civil_status(daSoHoa=False, taiSuDungDuLieu=None, thanhToanTrucTuyen=False)
    rec = record(civil.normalise_item(item, context))
    assert (rec.digitised, rec.data_reused, rec.paid_online) == (False, False, False)


def test_civil_status_a_garbage_flag_is_quarantined(context: ConnectorContext) -> None:
    out = civil.normalise_item(samples.civil_status(daSoHoa="maybe"), context)
    assert isinstance(out, QuarantinedRecord) and "daSoHoa" in out.reason


def test_civil_status_a_requester_that_is_not_an_object_is_quarantined(context: ConnectorContext) -> None:
    out = civil.normalise_item(samples.civil_status(nguoiYeuCau="Nguyễn Văn An"), context)
    assert isinstance(out, QuarantinedRecord) and "nguoiYeuCau" in out.reason


# --- residence -------------------------------------------------------------------------------


def test_residence_fields(context: ConnectorContext) -> None:
    rec = record(residence.normalise_item(samples.residence(), context))
    assert rec.reception_code == "000.00.11.H01-260120-0002"
    assert (rec.procedure_code, rec.procedure_name) == ("1.004194", "Đăng ký thường trú")
    assert (rec.field_code, rec.field_name) == ("CUTRU", "Cư trú")
    assert rec.applicant_name == "Trần Thị Bình"
    # "2026-01-20T01:30:00Z" is 08:30 in the ward
    assert rec.received_at == local(2026, 1, 20, 8, 30) and rec.received_at.tzinfo is TZ
    assert (rec.digitised, rec.data_reused, rec.fee_required, rec.paid_online) == (True, False, True, True)


@pytest.mark.parametrize(
    ("code", "channel"),
    [
        ("online", Channel.ONLINE),
        ("counter", Channel.DIRECT),
        ("post", Channel.POSTAL),
        (None, Channel.UNKNOWN),
    ],
)
def test_residence_channel(code: Any, channel: Channel, context: ConnectorContext) -> None:
    assert record(residence.normalise_item(samples.residence(channel=code), context)).channel is channel


@pytest.mark.parametrize(
    ("fee", "required", "paid"),
    [
        ({"amount": 15000, "paid_online": True}, True, True),
        ({"amount": 15000, "paid_online": False}, True, False),
        ({"amount": 0, "paid_online": False}, False, False),
        ({"amount": None, "paid_online": None}, False, False),
        (None, False, False),
    ],
)
def test_residence_fee(fee: Any, required: bool, paid: bool, context: ConnectorContext) -> None:
    rec = record(residence.normalise_item(samples.residence(fee=fee), context))
    assert (rec.fee_required, rec.paid_online) == (required, paid)


def test_residence_null_reception_code(context: ConnectorContext) -> None:
    assert (
        record(residence.normalise_item(samples.residence(one_stop_code=None), context)).reception_code
        is None
    )


@pytest.mark.parametrize(
    "wire", ["2026-01-20T09:00:00.250+07:00", "2026-01-20T02:00:00Z", "2026-01-20T09:00+07:00"]
)
def test_residence_accepts_iso_variants(wire: str, context: ConnectorContext) -> None:
    rec = record(residence.normalise_item(samples.residence(updated_at=wire), context))
    assert rec.source_updated_at.replace(microsecond=0) == local(2026, 1, 20, 9, 0)


# --- household_business ----------------------------------------------------------------------


def test_household_business_fields(context: ConnectorContext) -> None:
    rec = record(hkd.normalise_item(samples.household_business(), context))
    assert rec.reception_code is None  # filed online, never passed the Centre
    assert (rec.field_code, rec.field_name) == ("DKKD", "Đăng ký kinh doanh")
    assert rec.applicant_name == "Lê Văn Cường"
    assert rec.channel is Channel.ONLINE
    assert (rec.digitised, rec.data_reused, rec.fee_required, rec.paid_online) == (True, False, True, True)


def test_household_business_reception_code_when_it_came_through_the_centre(context: ConnectorContext) -> None:
    item = samples.household_business(SoBienNhanMotCua="000.00.11.H01-260120-0009")
    assert record(hkd.normalise_item(item, context)).reception_code == "000.00.11.H01-260120-0009"


@pytest.mark.parametrize(
    ("code", "channel"),
    [("TRUC_TUYEN", Channel.ONLINE), ("TRUC_TIEP", Channel.DIRECT), ("", Channel.UNKNOWN)],
)
def test_household_business_channel(code: str, channel: Channel, context: ConnectorContext) -> None:
    assert record(hkd.normalise_item(samples.household_business(KenhNop=code), context)).channel is channel


@pytest.mark.parametrize(("value", "paid"), [("1", True), ("0", False), ("", False), (None, False)])
def test_household_business_paid_online(value: Any, paid: bool, context: ConnectorContext) -> None:
    item = samples.household_business(ThanhToanTrucTuyen=value)
    assert record(hkd.normalise_item(item, context)).paid_online is paid


@pytest.mark.parametrize(("fee", "required"), [(100000, True), ("100000", True), (0, False), (None, False)])
def test_household_business_fee(fee: Any, required: bool, context: ConnectorContext) -> None:
    assert record(hkd.normalise_item(samples.household_business(LePhi=fee), context)).fee_required is required


def test_an_id_number_quoted_by_an_unforeseen_error_is_masked_in_the_reason(context: ConnectorContext) -> None:
    """A mapping that meets a shape no rule foresaw costs one record; the error's message quotes
    the value as Python writes it, a newline as "\\n" before the ID."""
    from connectors import wire
    from sync_agent.privacy import IdHasher

    def build(item: Any) -> DossierRecord:
        int(item["SoLuong"])  # raises ValueError quoting the value
        raise AssertionError("unreachable")

    out = wire.normalise({"MaHoSo": "H-1", "SoLuong": "ngày\n" + samples.ID_NUMBER}, build, source="one_stop",
                         hasher=IdHasher("k"), id_keys=frozenset(), id_field="MaHoSo", updated_field="x",
                         parse_updated=lambda s: dt.datetime.now(dt.UTC), updated_pattern="x")
    assert isinstance(out, QuarantinedRecord) and out.reason.startswith("cannot be normalised (ValueError")
    assert samples.ID_NUMBER not in out.reason and "[id-redacted]" in out.reason


def test_a_long_number_cut_to_twelve_digits_in_a_reason_is_masked_too() -> None:
    """Cut at 60 characters, a longer digit run can end as twelve digits, which then read as an
    ID number: it is masked after the cut as well."""
    from connectors.wire import show

    shown = show("A" * 43 + " 1234567890123456")
    assert shown.endswith(" [id-redacted]...") and "123456789012" not in shown


@PARAMS
def test_a_cccd_sent_as_a_number_keys_the_applicant_as_its_text_does(source: Source, context: ConnectorContext) -> None:
    """Hà Nội's CCCDs begin 001: as a JSON number, two zeros are lost."""
    field = source.id_number_field
    as_text = record(source.mapping.normalise_item(put(source.sample(), field, "001123456789"), context))
    as_number = record(source.mapping.normalise_item(put(source.sample(), field, 1123456789), context))
    assert as_number.applicant_key == as_text.applicant_key == context.hasher("001123456789")
