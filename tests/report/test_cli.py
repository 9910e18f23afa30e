"""``sync-agent report``: formats, files, sending, and exit statuses."""

from __future__ import annotations

import csv
import email
import io
import json
import re
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from sync_agent import mailer
from sync_agent.cli import main
from sync_agent.mailer import outbox_row
from sync_agent.store.engine import create_store_engine, migrate, write_transaction
from sync_agent.store.tables import deliveries
from tests.report import seed
from tests.report.conftest import seed_store
from tests.report.smtp import Server, free_port

CREDENTIALS = {
    "one_stop": 'username = "tiepnhan"\npassword = "mat-khau-1"',
    "civil_status": 'client_id = "phuong-11311"\nclient_secret = "bi-mat-2"',
    "residence": 'api_key = "khoa-3"',
    "household_business": 'username = "phuong-11311"\npassword = "mat-khau-4"',
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailer, "BACKOFF_INITIAL", 0.01)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed store, written once; each test copies it."""
    path = tmp_path_factory.mktemp("store") / "seed.db"
    eng = create_store_engine(f"sqlite:///{path}")
    migrate(eng)
    seed_store(eng)
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


def write_config(
    tmp_path: Path,
    store: Path,
    *,
    smtp_port: int = 25,
    recipients: str = '["ttpvhcc@example.gov.vn"]',
    extra_smtp: str = "",
) -> Path:
    db = tmp_path / "store.db"
    db.write_bytes(store.read_bytes())
    parts = [
        f"""[agent]
ward_code = "11311"
ward_name = "Phường Thạch Khôi"
province_name = "thành phố Hải Phòng"
database_url = "sqlite:///{db}"
id_hash_key = "test-key"
log_file = "logs/agent.jsonl"

[report]
recipients = {recipients}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "sync-agent@thachkhoi.example.gov.vn"
timeout = 5
max_attempts = 2
{extra_smtp}
"""
    ]
    for i, (name, cred) in enumerate(CREDENTIALS.items(), start=1):
        parts.append(
            f'[connectors.{name}]\ntype = "{name}"\nbase_url = "http://127.0.0.1:81{i:02d}"\n{cred}\n'
        )
    path = tmp_path / "sync-agent.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "report", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_json_is_the_contract(tmp_path: Path, store: Path) -> None:
    code, out, _ = run(write_config(tmp_path, store), "--period", "2026-02", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    for key, value in seed.EXPECTED_JSON_FIGURES.items():
        assert doc[key] == value
    assert doc["period"] == {"label": "2026-02", "start": "2026-01-15", "end": "2026-02-14", "over": True}
    assert doc["reconciliation"]["identity_holds"] is True and doc["reconciliation"]["cases"] == 4899
    assert [s["source"] for s in doc["sources"]] == [
        "one_stop",
        "civil_status",
        "residence",
        "household_business",
    ]


def test_json_of_a_period_not_over_says_so_and_when_it_was_made(tmp_path: Path, store: Path) -> None:
    """A script keeping the JSON must tell figures that will change from a period's final ones."""
    import datetime as dt

    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()
    label = f"{today.year + 1}-01"  # a period not even begun: as good as one under way
    config = write_config(tmp_path, store)
    eng = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with write_transaction(eng) as conn:  # a real run ends at a microsecond
        conn.exec_driver_sql("UPDATE sync_runs SET finished_at = '2026-02-14 22:30:00.948817' "
                             "WHERE source = 'one_stop' AND status = 'success'")
    eng.dispose()
    code, out, _ = run(config, "--period", label, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["period"]["over"] is False
    made = dt.datetime.strptime(doc["generated_at"], "%Y-%m-%dT%H:%M:%S%z")  # operations.md's own shape
    assert made.utcoffset() == dt.timedelta(hours=7) and made.date() == today
    assert doc["sources"][0] == {"source": "one_stop", "last_success": "2026-02-15T05:30:00+07:00", "stale": True,
                                "failures_in_a_row": 0}


def test_a_source_whose_last_sync_failed_is_said_so_in_vietnamese_without_the_agents_error(
        tmp_path: Path, store: Path) -> None:
    """The city reads the report: not "TransientSourceError: HTTP 503 ..." (the IT officer's
    ``status`` shows that), nor "records in error" for a source that could not be reached."""
    config = write_config(tmp_path, store)
    for fmt in ("html", "text"):
        code, out, _ = run(config, "--period", "2026-02", "--format", fmt)
        assert code == 0
        assert "Error" not in out and "HTTP 503" not in out and "sync-agent quarantine" not in out
        assert "lỗi 1 lần liên tiếp (cán bộ CNTT kiểm tra)" in out
    from sync_agent.report.vn import source_state

    # synced within the day, but its last try failed: not "records in error"
    assert source_state(False, 1, 2, 24) == "Lần đồng bộ gần nhất không thành công"
    assert source_state(True, 1, 2, 24) == "Chưa cập nhật quá 24 giờ"
    assert source_state(False, 0, 2, 24) == "Có bản ghi lỗi"


def test_the_files_of_a_period_not_over_say_their_figures_are_provisional(tmp_path: Path, store: Path) -> None:
    """--out writes them (never --send): the form and the message must not pass for the period's own."""
    import datetime as dt

    from openpyxl import load_workbook

    label = f"{dt.date.today().year + 1}-01"
    out_dir = tmp_path / "out"
    code, _, _ = run(write_config(tmp_path, store), "--period", label, "--out", str(out_dir))
    assert code == 0
    form = load_workbook(out_dir / f"report-{label}.xlsx").worksheets[0]
    assert "SỐ LIỆU TẠM TÍNH" in str(form.cell(3, 1).value)
    eml = email.message_from_bytes((out_dir / f"report-{label}.eml").read_bytes(), policy=policy.default)
    assert "[SỐ LIỆU TẠM TÍNH]" in str(eml["Subject"])
    listed = load_workbook(out_dir / f"report-{label}-dossiers.xlsx")
    assert listed.sheetnames[0].endswith(" (tạm tính)")


def test_text_has_the_paragraph_and_html_is_the_email_body(tmp_path: Path, store: Path) -> None:
    config = write_config(tmp_path, store)
    code, out, _ = run(config, "--period", "2026-02")
    assert code == 0 and seed.PARAGRAPH in out
    assert "Kỳ báo cáo tháng 02/2026: tính từ ngày 15/01/2026 đến hết ngày 14/02/2026." in out
    code, out, _ = run(config, "--period", "2026-02", "--format", "html")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and "99,98 %" in out


def test_out_writes_every_file(tmp_path: Path, store: Path) -> None:
    out_dir = tmp_path / "out"
    code, _, err = run(
        write_config(tmp_path, store), "--period", "2026-02", "--format", "json", "--out", str(out_dir)
    )
    assert code == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["report-2026-02-dossiers.csv", "report-2026-02-dossiers.xlsx",
                     *(f"report-2026-02.{s}" for s in ("csv", "eml", "html", "json", "txt", "xlsx"))]
    assert err.count("wrote ") == 8
    listed = (out_dir / "report-2026-02-dossiers.csv").read_bytes().decode("utf-8-sig").splitlines()
    assert len(listed) == 1 + 4899
    assert json.loads((out_dir / "report-2026-02.json").read_text("utf-8"))["received"]["total"] == 4899
    assert seed.PARAGRAPH in (out_dir / "report-2026-02.txt").read_text("utf-8")
    rows = list(csv.reader(io.StringIO((out_dir / "report-2026-02.csv").read_bytes().decode("utf-8-sig"))))
    assert len(rows) > 1
    msg = email.message_from_bytes((out_dir / "report-2026-02.eml").read_bytes(), policy=policy.default)
    assert msg["Message-ID"] == "<sync-agent.11311.report-2026-02@thachkhoi.example.gov.vn>"
    assert msg["To"] == "ttpvhcc@example.gov.vn"


def test_an_out_folder_that_cannot_be_made_is_a_usage_error(tmp_path: Path, store: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    code, out, err = run(write_config(tmp_path, store), "--period", "2026-02", "--out", str(blocker / "out"))
    assert code == 2 and out == ""
    assert err.strip() == f"error: --out {blocker / 'out'}: Not a directory"


def test_a_refused_report_leaves_no_out_folder_behind(tmp_path: Path, store: Path) -> None:
    code, _, err = run(write_config(tmp_path, store), "--period", "2026-13", "--out", str(tmp_path / "new"))
    assert code == 2 and "--period" in err
    assert not (tmp_path / "new").exists()


def test_demo_refuses_an_out_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["demo", "--out", str(blocker / "out")], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --out {blocker / 'out'}: Not a directory"


def test_send_twice_sends_once(tmp_path: Path, store: Path) -> None:
    with Server() as server:
        config = write_config(tmp_path, store, smtp_port=server.port)
        code, _, err = run(config, "--period", "2026-02", "--send")
        assert code == 0 and "sent the report of 2026-02 to ttpvhcc@example.gov.vn" in err
        code, _, err = run(config, "--period", "2026-02", "--send")
        assert code == 0 and "not sent: the report of 2026-02 already went out" in err and "--force" in err
        code, _, err = run(config, "--period", "2026-02", "--send", "--force")
        assert code == 0 and ".r2@" in err
    assert len(server.inbox.messages) == 2


def test_smtp_down_is_exit_1_and_in_doubt_says_force(tmp_path: Path, store: Path) -> None:
    config = write_config(tmp_path, store, smtp_port=free_port())
    code, _, err = run(config, "--period", "2026-02", "--send")
    assert code == 1 and re.search(r"(?m)^failed: .*cannot connect", err)
    # a crash left the row in "sending"
    eng: Engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with write_transaction(eng) as conn:
        conn.execute(deliveries.update().values(status="sending"))
    code, _, err = run(config, "--period", "2026-02", "--send")
    assert code == 1 and "may have been sent" in err and "use --force" in err
    row = outbox_row(eng, "report:2026-02")
    assert row is not None and row.status == "sending"
    eng.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "--period"),
        (["--period", "2026-02", "--force"], "--force only makes sense with --send"),
        (["--period", "2999-01", "--send"], "its report can be sent from"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, store: Path, args: list[str], message: str) -> None:
    code, _, err = run(write_config(tmp_path, store), *args)
    assert code == 2 and message in err


def test_send_without_recipients_is_a_configuration_error(tmp_path: Path, store: Path) -> None:
    code, _, err = run(write_config(tmp_path, store, recipients="[]"), "--period", "2026-02", "--send")
    assert code == 2 and "report.recipients" in err
