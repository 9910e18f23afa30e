"""The dossiers behind the figures (``report-YYYY-MM-dossiers.csv``), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from typing import Any

import pytest
from openpyxl.utils import get_column_letter
from sqlalchemy import Engine, select

from sync_agent.config import Settings
from sync_agent.report import Figures, Period, build_report
from sync_agent.report.dossier_list import (
    COUNTED,
    HEADER,
    MARK_COLUMNS,
    NOT_COUNTED_HERE,
    OUTCOME_CLASSES,
    RECEIVED_CLASSES,
    UNCOUNTED_HEADER,
    build_dossier_csv,
    build_dossier_xlsx,
)
from sync_agent.store.engine import write_transaction
from sync_agent.store.tables import case_links, cases, dossiers, flags
from tests.report import seed
from tests.report.conftest import NOW, insert_cases
from tests.report.test_counting import mk

FEB = Period.parse("2026-02")
FIGURES = [f.name for f in dataclasses.fields(Figures)]


def test_every_figure_is_the_number_of_its_listed_dossiers(seeded: Engine, settings: Settings) -> None:
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None and len(r.dossiers) == 4899
    listed = {name: sum(name in d.counted_in for d in r.dossiers) for name in FIGURES}
    assert listed == {name: getattr(r.total, name) for name in FIGURES}
    assert (listed["carried_over"], listed["received_online"], listed["resolved_overdue"]) == (50, 4849, 1)


def test_each_dossier_has_one_reception_column_and_one_outcome_column(seeded: Engine, settings: Settings) -> None:
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    for d in r.dossiers:
        assert len(d.counted_in & set(RECEIVED_CLASSES)) == 1, d
        assert len(d.counted_in & set(OUTCOME_CLASSES)) == 1, d


def test_the_overdue_dossier_is_named_by_its_code(seeded: Engine, settings: Settings) -> None:
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    overdue = [d for d in r.dossiers if d.outcome_class == "Đã giải quyết: trả quá hạn"]
    spec = next(s for s in seed.counted_specs() if s.n == seed.SPECIAL["overdue"])
    assert [d.code for d in overdue] == [spec.code or spec.ministry_id]


def test_the_list_is_not_computed_unless_asked_for(seeded: Engine, settings: Settings) -> None:
    assert build_report(seeded, settings, FEB, now=NOW).dossiers is None


def test_csv_opens_in_excel_with_the_forms_column_names(seeded: Engine, settings: Settings) -> None:
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    data = build_dossier_csv(r.dossiers)
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == HEADER and len(rows) == 1 + 4899
    col = {name: i for i, name in enumerate(HEADER)}
    received = [row[col["Tiếp nhận"]] for row in rows[1:]]
    assert received.count("Kỳ trước chuyển qua") == 50
    assert received.count("Mới tiếp nhận trực tuyến") == 4849
    outcome = [row[col["Kết quả giải quyết đến cuối kỳ"]] for row in rows[1:]]
    assert outcome.count("Đang giải quyết: chưa đến hạn (trong hạn)") == 25
    reused = [row[col[MARK_COLUMNS["received_data_reused"]]] for row in rows[1:]]
    assert reused.count(COUNTED) == 4831 and set(reused) == {COUNTED, NOT_COUNTED_HERE, ""}
    assert [row[0] for row in rows[1:4]] == ["1", "2", "3"]


def test_csv_masks_names_and_never_shows_an_id_number(seeded: Engine, settings: Settings) -> None:
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    text = build_dossier_csv(r.dossiers).decode("utf-8-sig")
    assert "N. V. An" in text and "Nguyễn Văn An" not in text
    assert seed.ID_NUMBER not in text


def test_a_case_lists_its_record_in_each_system_one_stop_first(engine: Engine, settings: Settings) -> None:
    spec = dataclasses.replace(
        next(s for s in seed.counted_specs() if s.source == "one_stop"), applicant_name="Trần Thị Bình"
    )
    insert_cases(engine, [seed.case_row(spec)])
    t = seed.at(2026, 2, 1)
    with write_transaction(engine) as conn:
        case_id = conn.execute(select(cases.c.id)).scalar_one()
        for source, sid in (("civil_status", "HT-2026-00077"), ("one_stop", spec.code)):
            dossier_id = conn.execute(
                dossiers.insert().values(
                    source=source, source_id=sid, procedure_code="1.001193", channel="online",
                    status="in_progress", source_updated_at=t, raw_payload="{}", content_hash="h" * 64,
                    first_seen_at=t, last_seen_at=t,
                ).returning(dossiers.c.id)
            ).scalar_one()
            conn.execute(case_links.insert().values(dossier_id=dossier_id, case_id=case_id, link_kind="code"))
    r = build_report(engine, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None and len(r.dossiers) == 1
    assert r.dossiers[0].records == (("one_stop", spec.code), ("civil_status", "HT-2026-00077"))
    row = list(csv.reader(io.StringIO(build_dossier_csv(r.dossiers).decode("utf-8-sig"))))[1]
    assert row[-1] == f"Một cửa: {spec.code}; Hộ tịch: HT-2026-00077"
    assert row[HEADER.index("Người nộp (đã che)")] == "T. T. Bình"


def test_the_list_and_the_figures_are_read_from_one_snapshot(
        seeded: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconciliation committing between the figures and the list (the daemon runs one every
    few minutes) must not add a row the figures do not count: on PostgreSQL each statement of
    a read committed transaction would see it."""
    from sync_agent.report import build as build_module

    original = build_module.counted_cases
    spec = next(s for s in seed.counted_specs() if s.source == "one_stop")
    late = dict(seed.case_row(spec), case_key="rc:LATE-1", reception_code="LATE-1")

    def a_case_lands_first(conn: Any, period: Period, tz: Any, **kw: Any) -> Any:
        insert_cases(seeded, [late])  # another connection, committed
        return original(conn, period, tz, **kw)

    monkeypatch.setattr(build_module, "counted_cases", a_case_lands_first)
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None and len(r.dossiers) == r.total.received_total == 4899


def coded(code: str, row: dict[str, Any]) -> dict[str, Any]:
    """A crafted case under a reception code of its own, to find its row by."""
    return dict(row, reception_code=code, case_key=f"rc:{code}")


def rows_by_code(r: Any) -> dict[str, dict[str, str]]:
    text = build_dossier_csv(r.dossiers).decode("utf-8-sig")
    return {row["Mã hồ sơ"]: row for row in csv.DictReader(io.StringIO(text))}


def test_a_mark_true_of_a_dossier_but_not_counted_this_period_says_so(engine: Engine, settings: Settings) -> None:
    """A dossier carried over from January paid its fee in January's rate: a blank would read as
    'no fee', a plain 'có' would not add up to February's figure."""
    due = seed.at(2026, 3, 1)
    carried = coded("CARRIED-1", mk("in_progress", seed.at(2026, 1, 10), due=due, fee_required=True,
                                    paid_online=True))
    new = coded("NEW-1", mk("in_progress", seed.at(2026, 2, 2), due=due, fee_required=True, paid_online=False))
    insert_cases(engine, [carried, new])
    r = build_report(engine, settings, FEB, now=NOW, with_dossiers=True)
    rows = rows_by_code(r)
    fee, paid = MARK_COLUMNS["received_fee_required"], MARK_COLUMNS["received_paid_online"]
    assert (rows["CARRIED-1"][fee], rows["CARRIED-1"][paid]) == ((NOT_COUNTED_HERE,) * 2)
    assert (rows["NEW-1"][fee], rows["NEW-1"][paid]) == (COUNTED, "")
    assert r.total.received_fee_required == [row[fee] for row in rows.values()].count(COUNTED) == 1


def test_notes_say_why_a_row_counts_as_it_does(engine: Engine, settings: Settings) -> None:
    insert_cases(engine, [
        coded("LATE-END", mk("delivered", seed.at(2026, 2, 2), due=seed.at(2026, 2, 20), ended=seed.at(2026, 2, 18))),
        coded("NO-END", mk("resolved", seed.at(2026, 2, 3), due=seed.at(2026, 2, 20))),
        coded("SUPPL", mk("awaiting_supplement", seed.at(2026, 2, 4), due=seed.at(2026, 2, 10))),
        coded("PLAIN", mk("in_progress", seed.at(2026, 2, 5), due=seed.at(2026, 2, 20))),
        coded("NO-DUE", mk("delivered", seed.at(2026, 2, 6), ended=seed.at(2026, 2, 9))),
        coded("NO-DUE-OPEN", mk("in_progress", seed.at(2026, 2, 6))),
    ])
    rows = rows_by_code(build_report(engine, settings, FEB, now=NOW, with_dossiers=True))
    assert rows["LATE-END"]["Ghi chú"] == ("kết thúc ngày 18/02/2026, sau ngày cuối kỳ 14/02/2026: "
                                           "tính là đang giải quyết")
    assert rows["LATE-END"]["Kết quả giải quyết đến cuối kỳ"] == "Đang giải quyết: chưa đến hạn (trong hạn)"
    assert rows["NO-END"]["Ghi chú"] == "trạng thái đã kết thúc nhưng chưa có ngày kết thúc: tính là đang giải quyết"
    assert rows["SUPPL"]["Ghi chú"] == "đang chờ công dân bổ sung: tính là trong hạn"
    assert rows["PLAIN"]["Ghi chú"] == ""
    assert rows["NO-DUE"]["Ghi chú"] == "chưa có ngày hẹn trả: tính là đúng hạn"
    assert rows["NO-DUE-OPEN"]["Ghi chú"] == "chưa có ngày hẹn trả: tính là trong hạn"


def test_an_end_before_reception_is_said_to_count_as_the_reception_date(engine: Engine,
                                                                        settings: Settings) -> None:
    """Reconciliation keeps the case's end no earlier than its reception and raises a flag; the
    row shows the reception date as its end, and the systems show an earlier one."""
    insert_cases(engine, [coded("EARLY-END", mk("delivered", seed.at(2026, 2, 2), due=seed.at(2026, 2, 20),
                                                ended=seed.at(2026, 2, 2)))])
    with write_transaction(engine) as conn:
        case_id = conn.execute(select(cases.c.id)).scalar_one()
        conn.execute(flags.insert().values(kind="data_quality", subject_key="rc:EARLY-END", case_id=case_id,
                                           state="open", raised_at=NOW,
                                           details='{"issue": "completion_before_reception"}'))
    rows = rows_by_code(build_report(engine, settings, FEB, now=NOW, with_dossiers=True))
    assert rows["EARLY-END"]["Ghi chú"] == ("cảnh báo: dữ liệu chưa hợp lệ (ngày hoàn thành trước ngày tiếp nhận); "
                                            "cột Ngày kết thúc ghi bằng ngày tiếp nhận")


def test_an_open_flag_of_the_case_is_in_its_notes(seeded: Engine, settings: Settings) -> None:
    rows = rows_by_code(build_report(seeded, settings, FEB, now=NOW, with_dossiers=True))
    mismatch = next(s for s in seed.counted_specs() if s.n == seed.SPECIAL["ended_after"])
    note = rows[mismatch.code or mismatch.ministry_id]["Ghi chú"]
    assert "cảnh báo: trạng thái không khớp giữa các hệ thống (Một cửa: đang giải quyết; Cư trú: đã giải quyết)" in note
    quality = next(s for s in seed.counted_specs() if s.n == seed.SPECIAL["end_before_reception"])
    assert seed.ID_NUMBER not in rows[quality.code or quality.ministry_id]["Ghi chú"]


def test_the_spreadsheet_has_real_dates_filters_and_the_same_rows(seeded: Engine, settings: Settings) -> None:
    """Excel reads a CSV with the separator of the machine's regional settings (';' in Vietnamese):
    the Centre opens the .xlsx."""
    from openpyxl import load_workbook

    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    sample = r.dossiers[:300]  # the whole list takes openpyxl seconds to read back
    ws = load_workbook(io.BytesIO(build_dossier_xlsx(sample, FEB))).active
    assert ws is not None and ws.title == "Hồ sơ kỳ 02-2026"
    got = list(ws.iter_rows(values_only=True))
    assert tuple(got[0]) == HEADER and len(got) == 1 + 300
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:{get_column_letter(len(HEADER))}{1 + 300}"
    received = HEADER.index("Ngày tiếp nhận")
    assert isinstance(got[1][received], dt.datetime) and ws.cell(2, received + 1).number_format == "dd/mm/yyyy"
    csv_rows = list(csv.reader(io.StringIO(build_dossier_csv(sample).decode("utf-8-sig"))))
    assert [row[1:] for row in got[1:]] == [
        tuple(dt.datetime.strptime(v, "%d/%m/%Y") if re.fullmatch(r"\d\d/\d\d/\d{4}", v) else (v or None)
              for v in row[1:]) for row in csv_rows[1:]]


def test_text_from_a_source_never_becomes_a_formula(engine: Engine, settings: Settings) -> None:
    """Excel runs a cell starting with '=' (a CSV's too): a procedure name mangled or crafted
    upstream must stay text in every file staff open."""
    from openpyxl import load_workbook

    from sync_agent.report.flagged_csv import build_csv
    from sync_agent.report.xlsx import build_xlsx

    formula = '=HYPERLINK("http://example.invalid/x","Bấm vào đây")'
    row = coded("EVIL-1", mk("in_progress", seed.at(2026, 2, 2), due=seed.at(2026, 2, 20), source="residence"))
    row.update(procedure_name=formula, field_name="=1+1", has_one_stop=False)
    insert_cases(engine, [row])
    r = build_report(engine, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    ws = load_workbook(io.BytesIO(build_dossier_xlsx(r.dossiers, FEB))).active
    assert ws is not None
    cell = ws.cell(2, HEADER.index("Thủ tục") + 1)
    assert (cell.value, cell.data_type) == (formula, "s")
    assert rows_by_code(r)["EVIL-1"]["Thủ tục"] == "'" + formula
    flagged = list(csv.reader(io.StringIO(build_csv(r).decode("utf-8-sig"))))
    assert ["'" + formula] == [x[2] for x in flagged if x[1] == "EVIL-1"]
    form = load_workbook(io.BytesIO(build_xlsx(r))).worksheets[0]
    assert all(c.data_type == "s" for line in form.iter_rows() for c in line if c.value == "=1+1")
    assert any(c.value == "=1+1" for line in form.iter_rows() for c in line)


def test_an_error_code_or_a_control_character_from_a_source_stays_text(engine: Engine, settings: Settings) -> None:
    """openpyxl stores '#N/A' as an error value (filters and sums then fail on it) and refuses a
    control character, and the whole file with it."""
    from openpyxl import load_workbook

    from sync_agent.report.xlsx import build_xlsx

    row = coded("#N/A", mk("in_progress", seed.at(2026, 2, 2), due=seed.at(2026, 2, 20), source="residence"))
    row.update(procedure_name="Đăng ký\x0b thường trú", field_name="#REF!")
    insert_cases(engine, [row])
    r = build_report(engine, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None
    ws = load_workbook(io.BytesIO(build_dossier_xlsx(r.dossiers, FEB))).active
    assert ws is not None
    got = {HEADER[i]: (c.value, c.data_type) for i, c in enumerate(ws[2])}
    assert got["Mã hồ sơ"] == ("#N/A", "s") and got["Lĩnh vực"] == ("#REF!", "s")
    assert got["Thủ tục"] == ("Đăng ký thường trú", "s")
    form = load_workbook(io.BytesIO(build_xlsx(r))).worksheets[0]
    assert any((c.value, c.data_type) == ("#REF!", "s") for line in form.iter_rows() for c in line)


def test_the_spreadsheet_lists_the_periods_dossiers_no_figure_counts(engine: Engine, settings: Settings) -> None:
    """Refused at reception, or filed and not received: a gap with the province's figures often
    sits in these, and the figures' list cannot show them."""
    from openpyxl import load_workbook

    refused = coded("REFUSED", mk("not_accepted", seed.at(2026, 2, 3)))
    waiting = coded("WAITING", mk("submitted", None, submitted_at=seed.at(2026, 2, 14, 2, 0)))
    waiting.update(received_on=None)
    earlier = coded("EARLIER", mk("not_accepted", seed.at(2026, 1, 5)))
    after = coded("AFTER", mk("submitted", None, submitted_at=seed.at(2026, 2, 15, 0, 5)))
    after.update(received_on=None)
    counted = coded("COUNTED", mk("in_progress", seed.at(2026, 2, 4), due=seed.at(2026, 2, 20)))
    insert_cases(engine, [refused, waiting, earlier, after, counted])
    r = build_report(engine, settings, FEB, now=NOW, with_dossiers=True)
    assert [d.code for d in r.uncounted] == ["REFUSED", "WAITING"]
    assert r.dossiers is not None and [d.code for d in r.dossiers] == ["COUNTED"]
    book = load_workbook(io.BytesIO(build_dossier_xlsx(r.dossiers, FEB, r.uncounted)))
    assert book.sheetnames == ["Hồ sơ kỳ 02-2026", "Không tính vào số liệu"]
    got = list(book["Không tính vào số liệu"].iter_rows(values_only=True))
    assert tuple(got[0]) == UNCOUNTED_HEADER
    reason = UNCOUNTED_HEADER.index("Lý do không tính")
    assert [(row[1], row[reason]) for row in got[1:]] == [
        ("REFUSED", "không được tiếp nhận"), ("WAITING", "đã nộp, chưa được tiếp nhận")]
    filed = UNCOUNTED_HEADER.index("Ngày nộp")
    assert got[2][filed] == dt.datetime(2026, 2, 14)  # 02:00 in the ward: the 14th (UTC's 13th)


def test_a_period_not_over_notes_the_supplement_rule_only_where_it_decides(engine: Engine, settings: Settings) -> None:
    """Made on 1 March, a dossier awaiting the citizen and due on 5 March is within due by its
    date, as the figures judge it that day; only one due on 25 February is so by the rule."""
    def waiting(n: int, due: dt.datetime) -> dict[str, object]:
        return seed.case_row(seed.Spec(n=n, field_code="HOTICH", source="one_stop", ministry=None, inferred=False,
                                       status="awaiting_supplement", received_at=seed.at(2026, 2, 20), due_at=due,
                                       ended_at=None))
    insert_cases(engine, [waiting(9301, seed.at(2026, 3, 5, 17)), waiting(9302, seed.at(2026, 2, 25, 17))])
    r = build_report(engine, settings, Period.parse("2026-03"), now=seed.at(2026, 3, 1, 9), with_dossiers=True)
    assert r.dossiers is not None
    noted = {d.code: "đang chờ công dân bổ sung: tính là trong hạn" in d.notes for d in r.dossiers}
    assert sorted(noted.values()) == [False, True] and len(noted) == 2
    [by_rule] = [d for d in r.dossiers if d.due_on == dt.date(2026, 2, 25)]
    assert noted[by_rule.code]
