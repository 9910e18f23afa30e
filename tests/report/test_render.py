"""Vietnamese number style, the renderers, and the files ``make demo`` writes."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import email
import errno
import io
import json
from decimal import Decimal
from email import policy
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Engine

from sync_agent.config import Settings
from sync_agent.report import (
    Figures,
    Period,
    build_report,
    paragraph,
    render_html,
    render_text,
    vn,
    write_report_files,
)
from sync_agent.report.build import CITED_CODE_UNKNOWN, FlaggedDossier
from sync_agent.report.flagged_csv import build_csv
from sync_agent.report.render_html import bar
from sync_agent.report.render_text import subject
from sync_agent.report.xlsx import build_xlsx
from sync_agent.store.engine import write_transaction
from sync_agent.store.tables import flags
from tests.report import seed
from tests.report.conftest import NOW, insert_cases

FEB = Period.parse("2026-02")


def test_vietnamese_numbers() -> None:
    assert [vn.number(n) for n in (0, 7, 999, 4899, 1234567)] == ["0", "7", "999", "4.899", "1.234.567"]
    assert [vn.count(n) for n in (0, 1, 9, 10, 25, 4871)] == ["0", "01", "09", "10", "25", "4.871"]
    assert vn.percent(Decimal("99.98")) == "99,98 %"
    assert vn.percent(Decimal("100.00")) == "100 %"
    assert vn.percent(Decimal("99.50")) == "99,5 %"
    assert vn.percent(Decimal("0.00")) == "0 %"
    assert vn.percent(None) == "—"


def test_paragraph_small_counts_use_two_digits(engine: Engine, settings: Settings) -> None:
    r = build_report(engine, settings, FEB, now=NOW)
    small = dataclasses.replace(r, total=Figures(received_online=7, resolved_early=5, rejected=2))
    text = paragraph(small)
    assert "đến hết ngày 14/02/2026. UBND phường đã tiếp nhận 07 hồ sơ, trong đó: Tiếp nhận trong kỳ trực " \
           "tuyến 07 hồ sơ," in text
    assert "giải quyết trước hạn 05, đúng hạn 0, quá hạn 0 hồ sơ, từ chối: 02 hồ sơ, 0 hồ sơ rút." in text
    assert "- Tỷ lệ nộp hồ sơ trực tuyến: 100 %" in text


def test_identity_failure_is_said_everywhere(engine: Engine, settings: Settings) -> None:
    r = build_report(engine, settings, FEB, now=NOW)
    broken = dataclasses.replace(r, total=Figures(received_online=3, resolved_early=1))
    assert not broken.identity_holds and broken.identity_failures == ("tổng",)
    assert subject(broken).startswith("[CẦN KIỂM TRA] ")
    assert "CẢNH BÁO: số tiếp nhận khác số đã giải quyết + số đang giải quyết tại: tổng" in render_text(
        broken
    )
    assert "CẢNH BÁO" in render_html(broken)
    ws = openpyxl.load_workbook(__import__("io").BytesIO(build_xlsx(broken)))["Biểu 06a"]
    assert "SAI" in [c.value for row in ws.iter_rows() for c in row]


def test_html_escapes_source_text_and_limits_lists(engine: Engine, settings: Settings) -> None:
    r = build_report(engine, settings, FEB, now=NOW)
    item = FlaggedDossier(
        kind="bypassed_reception",
        code="X-1",
        procedure="<script>alert(1)</script>",
        field_name=None,
        applicant="N. V. An",
        filed_on=None,
        received_on=None,
        due_on=None,
        status="received",
        source="household_business",
    )
    many = dataclasses.replace(r, bypassed=(item,) * 60)
    html = render_html(many)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "... và 10 hồ sơ khác" in html
    assert render_html(many, limit=None).count("&lt;script&gt;") == 60


def test_bars() -> None:
    segs = bar([(4871, "g", "a"), (1, "r", "b"), (0, "x", "c"), (25, "b", "d")], 4899)
    assert [s.width for s in segs] == [99, 1]  # the tiny overdue part stays visible; the track is full
    assert bar([(5, "g", "a")], 0) == ()
    assert sum(s.width for s in bar([(1, "g", "a"), (1, "r", "b")], 2)) == 100


def test_write_report_files(seeded: Engine, settings: Settings, tmp_path: Path) -> None:
    paths = write_report_files(seeded, settings, FEB, tmp_path / "out", now=NOW)
    assert [p.name for p in paths] == [
        *(f"report-2026-02.{s}" for s in ("html", "json", "txt", "xlsx", "csv", "eml")),
        "report-2026-02-dossiers.xlsx",
        "report-2026-02-dossiers.csv",
    ]
    doc = json.loads(paths[1].read_text("utf-8"))
    assert doc["resolved"] == seed.EXPECTED_JSON_FIGURES["resolved"]
    assert seed.PARAGRAPH in paths[2].read_text("utf-8")
    msg = email.message_from_bytes(paths[5].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("Phường Thạch Khôi: báo cáo")
    assert not list(tmp_path.glob("out/*.tmp"))


def test_a_report_file_the_disk_refuses_to_rename_says_which_files_were_written(
        seeded: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a rename needs a new block in the folder on a full ext4 disk: not something a test can make
    real = Path.replace
    calls: list[str] = []

    def replace(self: Path, target: Any) -> Path:
        calls.append(self.name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(OSError, match=r"No space left on device; written before it: report-2026-02.html, "
                                      r"report-2026-02.json$"):
        write_report_files(seeded, settings, FEB, tmp_path / "out", now=NOW)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report-2026-02.html", "report-2026-02.json"]


def test_csv_gives_a_bypassed_dossier_its_flags_detection_time_and_acknowledgement(
        seeded: Engine, settings: Settings) -> None:
    # the seed store has one bypassed_reception flag; the period's other bypassed cases have none yet
    with write_transaction(seeded) as conn:
        conn.execute(flags.update().where(flags.c.kind == "bypassed_reception")
                     .values(acknowledged_at=seed.at(2026, 2, 20, 9), ack_note="đã gọi điện"))
    r = build_report(seeded, settings, FEB, now=NOW)
    [flagged] = [b for b in r.bypassed if b.raised_at is not None]
    assert flagged.raised_at == seed.at(2026, 2, 1) and flagged.acknowledged
    assert len(r.bypassed) > 1 and not any(b.acknowledged for b in r.bypassed if b is not flagged)
    rows = list(csv.reader(io.StringIO(build_csv(r).decode("utf-8-sig"))))
    [row] = [x for x in rows if x[1] == flagged.code]
    assert row[0] == "Hồ sơ không qua bộ phận tiếp nhận"
    assert row[10] == "01/02/2026 08:00" and row[11] == "có"


def test_the_workbook_lists_the_flagged_dossiers_as_the_csv_does(seeded: Engine, settings: Settings) -> None:
    """Excel with Vietnamese regional settings splits a CSV on ';', so the comma-separated list
    opens as one column: the attached workbook carries it as a sheet, with real dates."""
    r = build_report(seeded, settings, FEB, now=NOW)
    csv_rows = list(csv.reader(io.StringIO(build_csv(r).decode("utf-8-sig"))))
    ws = openpyxl.load_workbook(io.BytesIO(build_xlsx(r)))["Hồ sơ cần kiểm tra"]
    sheet = [list(row) for row in ws.iter_rows(values_only=True)]
    assert len(sheet) == len(csv_rows) == 1 + len(r.bypassed) + len(r.other_flags) > 2
    assert sheet[0] == csv_rows[0]
    for got, want in zip(sheet[1:], csv_rows[1:], strict=True):
        shown = [v.strftime("%d/%m/%Y" if i != 10 else "%d/%m/%Y %H:%M") if isinstance(v, dt.datetime)
                 else (v or "") for i, v in enumerate(got)]
        assert shown == want
    assert isinstance(sheet[1][6], dt.datetime)  # "Ngày tiếp nhận", a date Excel filters as one
    detected = [row[10] for row in sheet[1:] if row[10] is not None]
    assert detected and all(isinstance(v, dt.datetime) for v in detected)  # "Phát hiện lúc", a time
    assert ws.cell(2 + [r[10] for r in sheet[1:]].index(detected[0]), 11).number_format == "dd/mm/yyyy hh:mm"
    assert ws.auto_filter.ref == f"A1:M{len(sheet)}"


def test_a_report_of_a_period_not_over_says_so_where_the_figures_are_read(
        seeded: Engine, settings: Settings) -> None:
    during = build_report(seeded, settings, FEB, now=seed.at(2026, 2, 10, 16, 30))
    note = "Kỳ báo cáo chưa kết thúc: số liệu tính đến 16:30 ngày 10/02/2026 và sẽ còn thay đổi."
    assert note in render_text(during) and note in render_html(during)
    after = build_report(seeded, settings, FEB, now=NOW)
    assert "chưa kết thúc" not in render_text(after) + render_html(after)


def test_the_paragraph_opens_with_the_period_as_the_ward_s_report_does(engine: Engine, settings: Settings) -> None:
    r = build_report(engine, settings, FEB, now=NOW)
    assert paragraph(r).startswith(
        "Trong kỳ báo cáo theo ghi nhận tại Hệ thống giải quyết TTHC của thành phố Hải Phòng và các hệ thống tập "
        "trung của các Bộ tính từ ngày 15/01/2026 đến hết ngày 14/02/2026. UBND phường đã tiếp nhận")
    unnamed = dataclasses.replace(r, province_name="")
    assert paragraph(unnamed).startswith("Trong kỳ báo cáo theo ghi nhận tại Hệ thống giải quyết TTHC cấp tỉnh và")
    html = render_html(r)
    box = html[html.index("Đoạn văn để dán"):html.index("Số liệu tổng hợp")]
    assert "2026-02" not in box and "Trong kỳ báo cáo theo ghi nhận" in box


def test_the_spreadsheet_shows_counts_grouped_and_names_the_extra_sheet_as_extra(
        seeded: Engine, settings: Settings) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(build_xlsx(build_report(seeded, settings, FEB, now=NOW))))
    form, extra = wb["Biểu 06a"], wb["Theo hệ thống"]
    assert form["A1"].value == "Biểu số 06a/VPCP/KSTT"
    assert extra["A1"].value == "Số liệu theo hệ thống tiếp nhận (bổ sung, ngoài Biểu số 06a/VPCP/KSTT)"
    for ws in (form, extra):
        [total] = [r for r in range(10, 30) if ws.cell(r, 2).value == "Tổng cộng"]
        assert ws.cell(total, 3).value == 4899 and ws.cell(total, 3).number_format == "#,##0"  # 4.899
    label = "Tỷ lệ hồ sơ đã giải quyết trước hạn"
    [on_time] = [r for r in range(10, 40) if str(form.cell(r, 2).value).startswith(label)]
    # 99,98 and 100 as the text and the seed write them: not 100,00
    assert form.cell(on_time, 9).value == 99.98 and form.cell(on_time, 9).number_format == "General"


def test_a_bypassed_dossier_that_cites_a_code_says_one_stop_does_not_have_it(
        seeded: Engine, settings: Settings) -> None:
    """Listed as bypassing the Centre while showing a reception code reads as a contradiction:
    the row says the code it cites is not on the one-stop system."""
    spec = next(s for s in seed.counted_specs() if s.source == "civil_status")
    code = "000.00.11.H01-260201-7777"
    insert_cases(seeded, [dict(seed.case_row(spec), case_key=f"rc:{code}", reception_code=code)])
    r = build_report(seeded, settings, FEB, now=NOW)
    [cited] = [b for b in r.bypassed if b.details]
    assert (cited.code, cited.details) == (code, CITED_CODE_UNKNOWN)
    cited = [cited]
    html, text = render_html(r, limit=None), render_text(r)
    assert CITED_CODE_UNKNOWN in html and f"{cited[0].code} | " in text and CITED_CODE_UNKNOWN in text


def test_a_name_too_long_for_the_text_table_is_cut_with_an_ellipsis() -> None:
    from sync_agent.report.counting import Figures, Group
    from sync_agent.report.render_text import _table

    long = "Đất đai (Văn phòng đăng ký đất đai thành phố Hải Phòng)"
    lines = _table("Theo hệ thống tiếp nhận", [Group(key="land", label=long, figures=Figures())], Figures())
    assert lines[2][:43] == "Đất đai (Văn phòng đăng ký đất đai thành…  "  # the column stays 42 wide
