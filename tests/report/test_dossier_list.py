"""The dossiers behind the figures (``report-YYYY-MM-dossiers.csv``), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

import pytest
from sqlalchemy import Engine, select

from sync_agent.config import Settings
from sync_agent.report import Figures, Period, build_report
from sync_agent.report.dossier_list import (
    HEADER,
    MARK_COLUMNS,
    OUTCOME_CLASSES,
    RECEIVED_CLASSES,
    build_dossier_csv,
)
from sync_agent.store.engine import write_transaction
from sync_agent.store.tables import case_links, cases, dossiers
from tests.report import seed
from tests.report.conftest import NOW, insert_cases

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
    assert received.count("Số kỳ trước chuyển qua") == 50
    assert received.count("Số mới tiếp nhận trực tuyến") == 4849
    outcome = [row[col["Kết quả đến cuối kỳ"]] for row in rows[1:]]
    assert outcome.count("Đang giải quyết: chưa đến hạn (trong hạn)") == 25
    reused = [row[col[MARK_COLUMNS["received_data_reused"]]] for row in rows[1:]]
    assert reused.count("có") == 4831 and set(reused) == {"có", ""}
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
    assert row[-1] == f"Một cửa {spec.code}; Hộ tịch HT-2026-00077"
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

    def a_case_lands_first(conn: Any, period: Period) -> Any:
        insert_cases(seeded, [late])  # another connection, committed
        return original(conn, period)

    monkeypatch.setattr(build_module, "counted_cases", a_case_lands_first)
    r = build_report(seeded, settings, FEB, now=NOW, with_dossiers=True)
    assert r.dossiers is not None and len(r.dossiers) == r.total.received_total == 4899
