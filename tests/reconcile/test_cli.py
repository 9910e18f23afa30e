"""``sync-agent reconcile`` and ``sync-agent flags``: what an operator types and reads.

One small store (written once, copied per test) with a linked dossier, a bypassed one, one
citing a reception code that ``one_stop`` does not have, and a data-quality problem. The
commands under test never contact a source, so the connectors' URLs point nowhere.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from sync_agent.cli import main
from sync_agent.model import Channel, DossierRecord, Status
from sync_agent.store.engine import create_store_engine, migrate, write_transaction
from sync_agent.store.records import save_records

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# the commands use the wall clock: the records were first seen three days ago, so the
# unknown-code flag (one day after first sight) is due
SEEN = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
T0 = SEEN - dt.timedelta(days=1)
ENV = {"ONE_STOP_PASSWORD": "p", "CIVIL_STATUS_SECRET": "s", "RESIDENCE_API_KEY": "r", "HKD_PASSWORD": "h"}
# a personal ID number: 9 or 12 digits on their own
ID_SHAPED = re.compile(r"(?<![0-9A-Za-z])(\d{9}|\d{12})(?![0-9A-Za-z])")


def rec(source: str, source_id: str, *, code: str | None = None, name: str = "Nguyễn Văn An",
        procedure: str = "1.001193", status: Status = Status.IN_PROGRESS, **kw: Any) -> DossierRecord:
    kw.setdefault("received_at", T0)
    kw.setdefault("due_at", T0 + dt.timedelta(days=5))
    return DossierRecord(source=source, source_id=source_id, reception_code=code, procedure_code=procedure,
                         procedure_name="Đăng ký khai sinh", status=status, source_updated_at=T0,
                         applicant_name=name, applicant_key=f"key-{source_id}", channel=Channel.ONLINE,
                         raw={"MaHoSo": source_id}, **kw)


def save(db: Path, *records: DossierRecord) -> None:
    eng = create_store_engine(f"sqlite:///{db}")
    with write_transaction(eng) as conn:
        for r in records:
            save_records(conn, r.source, [r], TZ, None, SEEN)
    eng.dispose()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "seed.db"
    eng = create_store_engine(f"sqlite:///{path}")
    migrate(eng)
    eng.dispose()
    save(path,
         # linked: the Centre's record and the ministry's copy citing its code
         rec("one_stop", "000.00.11.H01-260202-0001", code="000.00.11.H01-260202-0001"),
         rec("civil_status", "HT-0001", code="000.00.11.H01-260202-0001"),
         # bypassed: a household-business dossier that never passed the Centre
         rec("household_business", "HKD-0002", name="Trần Thị Bích Hạnh", procedure="2.000720"),
         # a reception code that one_stop does not have
         rec("residence", "CT-0003", code="000.00.11.H01-999999-0003", name="Lê Quốc Tuấn", procedure="1.004194"),
         # completed before it was received
         rec("one_stop", "000.00.11.H01-260202-0004", code="000.00.11.H01-260202-0004", name="Phạm Minh Châu",
             status=Status.RESOLVED, completed_at=T0 - dt.timedelta(days=2)))
    eng = create_store_engine(f"sqlite:///{path}")
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture
def store(tmp_path: Path, seed: Path) -> Path:
    db = tmp_path / "store.db"
    db.write_bytes(seed.read_bytes())
    return db


@pytest.fixture
def config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "sync-agent.toml"
    path.write_text(f"""
[agent]
ward_code = "11311"
ward_name = "Phường Thạch Khôi"
database_url = "sqlite:///{store}"
id_hash_key = "test-key"
log_file = "logs/agent.jsonl"

[connectors.one_stop]
type = "one_stop"
base_url = "http://127.0.0.1:1"
username = "tiepnhan"
password = "${{ONE_STOP_PASSWORD}}"

[connectors.civil_status]
type = "civil_status"
base_url = "http://127.0.0.1:1"
client_id = "phuong-11311"
client_secret = "${{CIVIL_STATUS_SECRET}}"

[connectors.residence]
type = "residence"
base_url = "http://127.0.0.1:1"
api_key = "${{RESIDENCE_API_KEY}}"

[connectors.household_business]
type = "household_business"
base_url = "http://127.0.0.1:1"
username = "phuong-11311"
password = "${{HKD_PASSWORD}}"
""", encoding="utf-8")
    return path


def cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", str(config), *args], env=ENV, catch_exceptions=False)


def flags_json(config: Path, *args: str) -> list[dict[str, Any]]:
    result = cli(config, "flags", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    doc: list[dict[str, Any]] = json.loads(result.stdout)
    return doc


def test_reconcile_links_the_records_and_reports_the_flags(config: Path) -> None:
    result = cli(config, "reconcile")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "reconcile (incremental): 5 records" in out
    assert "4 cases in all" in out
    assert "5 records (" in out and "-> 4 cases; 1 seen in several systems" in out
    assert re.search(r"open bypassed_reception\s+2\b", out)
    assert re.search(r"open unknown_reception_code\s+1\b", out)
    assert re.search(r"open data_quality\s+1\b", out)
    assert re.search(r"open status_mismatch\s+0\b", out)
    again = cli(config, "reconcile")  # nothing marked: nothing to do, same result
    assert again.exit_code == 0 and "reconcile (incremental): 0 records" in again.stdout
    assert "4 cases in all" in again.stdout and "raised 0, cleared 0" in again.stdout


def test_reconcile_prints_the_counts_not_every_flag(config: Path) -> None:
    """The flags themselves are what ``flags`` is for: a big store has thousands."""
    out = cli(config, "reconcile").stdout
    assert re.search(r"open bypassed_reception\s+2\b", out)
    assert "e.g." not in out and "HKD-0002" not in out


def test_a_full_rebuild_gives_the_same_cases_and_flags(config: Path) -> None:
    assert cli(config, "reconcile").exit_code == 0
    before = flags_json(config, "--all")
    result = cli(config, "reconcile", "--full")
    assert result.exit_code == 0, result.stderr
    assert "reconcile (full rebuild): 5 records" in result.stdout and "4 cases in all" in result.stdout
    assert "raised 0, cleared 0" in result.stdout
    assert flags_json(config, "--all") == before


def test_flags_lists_what_the_centre_must_look_at(config: Path) -> None:
    assert cli(config, "flags").stdout.strip() == "không có cảnh báo đang mở"
    cli(config, "reconcile")
    result = cli(config, "flags")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.count("[đang mở]") == 4
    assert "Hồ sơ không qua bộ phận tiếp nhận" in out and "Mã hồ sơ tiếp nhận không có trên hệ thống một cửa" in out
    assert "HKD-0002 | 2.000720 Đăng ký khai sinh | T. T. B. Hạnh | Hộ kinh doanh" in out
    assert "000.00.11.H01-999999-0003" in out
    assert "Trần Thị" not in out and "Lê Quốc" not in out


def test_flags_of_one_kind(config: Path) -> None:
    cli(config, "reconcile")
    result = cli(config, "flags", "--kind", "bypassed_reception")
    assert result.exit_code == 0
    assert result.stdout.count("[đang mở]") == 2
    assert "Mã hồ sơ tiếp nhận không có" not in result.stdout and "Dữ liệu chưa hợp lệ" not in result.stdout
    assert {f["kind"] for f in flags_json(config, "--kind", "data_quality")} == {"data_quality"}
    wrong = cli(config, "flags", "--kind", "bypassed")
    assert wrong.exit_code == 2 and "bypassed_reception" in wrong.stderr


def test_flags_as_json_mask_the_applicant_and_carry_no_id_numbers(config: Path) -> None:
    cli(config, "reconcile")
    result = cli(config, "flags", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    by_code = {f["dossier_code"]: f for f in doc}
    assert sorted(f["kind"] for f in doc) == ["bypassed_reception", "bypassed_reception", "data_quality",
                                              "unknown_reception_code"]
    hkd = by_code["HKD-0002"]
    assert hkd["kind"] == "bypassed_reception" and hkd["state"] == "open"
    assert hkd["applicant"] == "T. T. B. Hạnh" and hkd["sources"] == ["household_business"]
    assert hkd["procedure_code"] == "2.000720" and hkd["received_at"] is not None and hkd["due_at"] is not None
    assert dt.datetime.fromisoformat(hkd["raised_at"]) > SEEN
    unknown = next(f for f in doc if f["kind"] == "unknown_reception_code")
    assert unknown["dossier_code"] == "000.00.11.H01-999999-0003"
    assert unknown["details"] == {"reception_code": "000.00.11.H01-999999-0003"}
    assert by_code["000.00.11.H01-260202-0004"]["details"]["issue"] == "completion_before_reception"
    for name in ("Nguyễn Văn An", "Trần Thị Bích Hạnh", "Lê Quốc Tuấn", "Phạm Minh Châu"):
        assert name not in result.stdout
    assert ID_SHAPED.search(result.stdout) is None


def test_a_cleared_flag_shows_only_with_all(config: Path, store: Path) -> None:
    cli(config, "reconcile")
    save(store, rec("one_stop", "000.00.11.H01-999999-0003", code="000.00.11.H01-999999-0003",
                    name="Lê Quốc Tuấn", procedure="1.004194"))
    result = cli(config, "reconcile")
    assert result.exit_code == 0 and "cleared 2" in result.stdout
    open_codes = [f["dossier_code"] for f in flags_json(config)]
    assert "000.00.11.H01-999999-0003" not in open_codes and len(open_codes) == 2
    every = flags_json(config, "--all")
    cleared = [f for f in every if f["state"] == "cleared"]
    assert {f["kind"] for f in cleared} == {"bypassed_reception", "unknown_reception_code"}
    assert all(f["cleared_at"] is not None for f in cleared)
    text_all = cli(config, "flags", "--all").stdout
    assert text_all.count("[đã đóng]") == 2 and ", hết " in text_all
    result = cli(config, "flags", "ack", str(cleared[0]["id"]), "--note", "Một cửa đã nhập hồ sơ")
    assert result.exit_code == 0 and "cảnh báo này đã tự hết lúc " in result.stdout  # nothing more to do


def test_ack_keeps_the_note_and_the_flag(config: Path) -> None:
    cli(config, "reconcile")
    flag = next(f for f in flags_json(config) if f["dossier_code"] == "HKD-0002")
    note = "Đã gọi hộ kinh doanh, hẹn nộp lại tại bộ phận một cửa"
    result = cli(config, "flags", "ack", str(flag["id"]), "--note", note)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"đã ghi nhận cảnh báo số {flag['id']}"
    [after] = [f for f in flags_json(config) if f["id"] == flag["id"]]
    assert after["state"] == "open" and after["ack_note"] == note and after["acknowledged_at"] is not None
    out = cli(config, "flags").stdout
    assert f"ghi chú: {note}" in out and "(đã xem)" in out
    cli(config, "reconcile", "--full")  # acknowledgement survives re-reconciliation
    [again] = [f for f in flags_json(config) if f["id"] == flag["id"]]
    assert again["ack_note"] == note


def test_ack_of_an_unknown_flag_or_without_a_note_is_a_usage_error(config: Path) -> None:
    cli(config, "reconcile")
    result = cli(config, "flags", "ack", "999999", "--note", "đã xử lý")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no flag with id 999999"
    assert "Traceback" not in result.stderr
    flag_id = str(flags_json(config)[0]["id"])
    blank = cli(config, "flags", "ack", flag_id, "--note", "  ")
    assert blank.exit_code == 2 and "needs a note" in blank.stderr
    missing = cli(config, "flags", "ack", flag_id)
    assert missing.exit_code == 2 and "--note" in missing.stderr
    assert flags_json(config)[0]["ack_note"] is None


def test_flags_as_json_give_times_in_the_ward_time_zone(config: Path) -> None:
    """domain.md: every time is in Asia/Ho_Chi_Minh; a script reading the date part must get the
    ward's day, not UTC's."""
    cli(config, "reconcile")
    doc = flags_json(config)
    times = [f[k] for f in doc for k in ("filed_at", "received_at", "due_at", "raised_at") if f[k]]
    assert times and all(t.endswith("+07:00") for t in times), times
