"""What a source sent that could not be stored is shown: ``quarantine``, ``status`` and the report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine

from sync_agent.cli import main
from sync_agent.config import load_settings
from sync_agent.model import QuarantinedRecord
from sync_agent.report import Period, build_report, render_html, render_text
from sync_agent.report.vn import quarantined_acknowledged_text, quarantined_text
from sync_agent.store.engine import open_engine, write_transaction
from sync_agent.store.quarantined import HeldCounts, acknowledge_quarantined, held_counts, list_quarantined
from sync_agent.store.records import save_quarantined, save_records
from tests.daemon import crafted
from tests.reconcile.scenario import TZ, rec

BAD_DATE = QuarantinedRecord(source="residence", reason="field received_at: '2026-13-45' is not a date",
                             raw={"id": "CT-7", "received_at": "2026-13-45", "applicant": {"id_number": "hmac:ab"}},
                             source_id="CT-7")
NO_ID = QuarantinedRecord(source="residence", reason="missing required field id", raw={"status": "processing"})


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def store_two_bad_records(write_config: Callable[..., Path]) -> tuple[Path, Engine]:
    config = write_config()
    engine = open_engine(load_settings(config).agent.database_url)
    with write_transaction(engine) as conn:
        save_quarantined(conn, "residence", [BAD_DATE, NO_ID], None, crafted.NOW)
    return config, engine


def test_quarantine_lists_what_is_held_with_its_reason(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    code, out, _ = run(config, "quarantine", "--format", "json")
    items = json.loads(out)
    assert code == 0 and {(i["source_id"], i["state"]) for i in items} == {("CT-7", "held"), (None, "held")}
    assert {i["reason"] for i in items} == {BAD_DATE.reason, NO_ID.reason}
    code, out, _ = run(config, "quarantine")
    assert code == 0 and "CT-7" in out and "held: missing required field id" in out
    engine.dispose()


def test_the_list_stays_in_columns_with_a_source_id_longer_than_the_usual(write_config: Callable[..., Path]) -> None:
    config = write_config()
    engine = open_engine(load_settings(config).agent.database_url)
    long_id = "HS-" + "0f8e2b7c-3d4a-4c1e-9b6f-2a7d5e8c1b90" + "-v2"  # 42 characters
    with write_transaction(engine) as conn:
        save_quarantined(conn, "residence", [dataclasses.replace(BAD_DATE, source_id=long_id), NO_ID], None,
                         crafted.NOW)
    code, out, _ = run(config, "quarantine")
    header, *rows = out.splitlines()
    column = header.index("last seen")
    assert code == 0 and len(rows) == 2
    assert all(row[column:column + 4] == crafted.NOW.strftime("%Y") for row in rows), out
    engine.dispose()


def test_a_record_superseded_by_a_valid_version_is_listed_only_with_all(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    with write_transaction(engine) as conn:  # the source fixed CT-7
        save_records(conn, "residence", [rec("residence", "CT-7")], TZ, None, crafted.NOW)
    code, out, _ = run(config, "quarantine", "--format", "json")
    assert code == 0 and [i["source_id"] for i in json.loads(out)] == [None]
    code, out, _ = run(config, "quarantine", "--all", "--format", "json")
    assert {(i["source_id"], i["state"]) for i in json.loads(out)} == {("CT-7", "superseded"), (None, "held")}
    engine.dispose()


def test_quarantine_show_gives_the_payload_and_refuses_an_unknown_id(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    code, out, _ = run(config, "quarantine", "--format", "json")
    [bad] = [i for i in json.loads(out) if i["source_id"] == "CT-7"]
    code, out, _ = run(config, "quarantine", "show", str(bad["id"]))
    shown = json.loads(out)
    assert code == 0 and shown["raw_payload"]["received_at"] == "2026-13-45"
    code, _, err = run(config, "quarantine", "show", "999")
    assert code == 2 and "no quarantined record 999" in err
    code, _, err = run(config, "quarantine", "--source", "residense")
    assert code == 2 and "unknown source residense" in err
    engine.dispose()


def test_status_and_the_report_count_the_records_held(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    engine.dispose()
    code, out, _ = run(config, "status", "--format", "json")
    counts = {s["source"]: s["quarantined"] for s in json.loads(out)["sources"]}
    assert code == 0 and counts["residence"] == 2 and counts["one_stop"] == 0
    code, out, _ = run(config, "status")
    assert "[2 quarantined: sync-agent quarantine --source residence]" in out
    code, out, _ = run(config, "report", "--period", "2026-02")
    assert code == 0 and quarantined_text(2) in out
    assert quarantined_text(2) == "02 bản ghi sai định dạng, chưa cập nhật vào số liệu (cán bộ CNTT kiểm tra)"
    code, out, _ = run(config, "report", "--period", "2026-02", "--format", "html")
    assert quarantined_text(2) in out


def test_a_source_synced_on_time_with_records_held_is_not_called_normal(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    settings = load_settings(config)
    report = build_report(engine, settings, Period.parse("2026-02"), now=crafted.NOW)
    engine.dispose()
    fresh = dataclasses.replace(report, sources=tuple(dataclasses.replace(s, stale=False) for s in report.sources))
    text = render_text(fresh)
    assert f"Cư trú (Bộ Công an): lần đồng bộ thành công gần nhất chưa có; 0 bản ghi; có bản ghi lỗi; " \
           f"{quarantined_text(2)}" in text
    assert "Một cửa (HTTT giải quyết TTHC thành phố): lần đồng bộ thành công gần nhất chưa có; 0 bản ghi; " \
           "bình thường" in text
    # not "cần kiểm tra": a reader would look for these records in the sheet "Hồ sơ cần kiểm tra"
    assert "Có bản ghi lỗi" in render_html(fresh) and "cần kiểm tra;" not in text


def test_a_record_sent_in_several_bad_versions_counts_once(write_config: Callable[..., Path]) -> None:
    _, engine = store_two_bad_records(write_config)
    again = dataclasses.replace(BAD_DATE, raw={**BAD_DATE.raw, "received_at": "2026-14-45"})
    with write_transaction(engine) as conn:
        save_quarantined(conn, "residence", [again], None, crafted.NOW)
        # CT-7 (two versions) and the one with no id
        assert held_counts(conn) == {"residence": HeldCounts(to_check=2)}
    engine.dispose()


def held_ids(config: Path, *args: str) -> dict[str | None, str]:
    code, out, _ = run(config, "quarantine", *args, "--format", "json")
    assert code == 0
    return {i["source_id"]: i["state"] for i in json.loads(out)}


def test_an_acknowledged_record_is_kept_but_no_longer_asks_for_a_check(write_config: Callable[..., Path]) -> None:
    """One with no id can never be superseded: without this it was "to check" in every report."""
    config, engine = store_two_bad_records(write_config)
    [no_id] = [i for i in json.loads(run(config, "quarantine", "--format", "json")[1]) if i["source_id"] is None]
    code, out, _ = run(config, "quarantine", "ack", str(no_id["id"]), "--note", "Bộ Công an xác nhận bản ghi thử")
    assert code == 0 and f"acknowledged quarantined record {no_id['id']}" in out
    assert held_ids(config) == {"CT-7": "held"}
    assert held_ids(config, "--all") == {"CT-7": "held", None: "acknowledged"}
    code, out, _ = run(config, "quarantine", "show", str(no_id["id"]))
    assert json.loads(out)["ack_note"] == "Bộ Công an xác nhận bản ghi thử"
    code, out, _ = run(config, "status", "--format", "json")
    [residence] = [s for s in json.loads(out)["sources"] if s["source"] == "residence"]
    assert (residence["quarantined"], residence["quarantined_acknowledged"]) == (1, 1)
    code, out, _ = run(config, "report", "--period", "2026-02")
    assert quarantined_text(1) in out and quarantined_acknowledged_text(1) in out
    engine.dispose()


def test_a_source_whose_held_records_are_all_acknowledged_is_normal_again(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    for item in json.loads(run(config, "quarantine", "--format", "json")[1]):
        assert run(config, "quarantine", "ack", str(item["id"]), "--note", "đã báo Bộ Công an")[0] == 0
    settings = load_settings(config)
    report = build_report(engine, settings, Period.parse("2026-02"), now=crafted.NOW)
    fresh = dataclasses.replace(report, sources=tuple(dataclasses.replace(s, stale=False) for s in report.sources))
    assert ("Cư trú (Bộ Công an): lần đồng bộ thành công gần nhất chưa có; 0 bản ghi; bình thường; "
            f"{quarantined_acknowledged_text(2)}") in render_text(fresh)
    assert "Có bản ghi lỗi" not in render_html(fresh) and quarantined_acknowledged_text(2) in render_html(fresh)
    code, out, _ = run(config, "status")
    assert code == 0
    assert "[2 quarantined, acknowledged]" in out and "sync-agent quarantine --source residence" not in out
    engine.dispose()


def test_acknowledging_a_record_covers_its_held_versions_and_a_later_bad_one_asks_again(
        write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    second = dataclasses.replace(BAD_DATE, raw={**BAD_DATE.raw, "received_at": "2026-14-45"})
    with write_transaction(engine) as conn:
        save_quarantined(conn, "residence", [second], None, crafted.NOW)
    versions = [i for i in json.loads(run(config, "quarantine", "--format", "json")[1]) if i["source_id"] == "CT-7"]
    code, out, _ = run(config, "quarantine", "ack", str(versions[0]["id"]), "--note", "chờ Bộ sửa")
    assert code == 0 and "with 1 other held version(s) of the same record" in out
    with write_transaction(engine) as conn:
        assert held_counts(conn) == {"residence": HeldCounts(to_check=1, acknowledged=1)}
        save_quarantined(conn, "residence", [BAD_DATE], None, crafted.NOW)  # an acknowledged version again
        assert held_counts(conn) == {"residence": HeldCounts(to_check=1, acknowledged=1)}
        third = dataclasses.replace(BAD_DATE, raw={**BAD_DATE.raw, "received_at": "2026-15-45"})
        save_quarantined(conn, "residence", [third], None, crafted.NOW)  # a new bad version
        assert held_counts(conn) == {"residence": HeldCounts(to_check=2)}
        save_records(conn, "residence", [rec("residence", "CT-7")], TZ, None, crafted.NOW)  # fixed at last
        assert held_counts(conn) == {"residence": HeldCounts(to_check=1)}
    engine.dispose()


def test_acknowledging_needs_a_note_and_a_record_still_held(write_config: Callable[..., Path]) -> None:
    config, engine = store_two_bad_records(write_config)
    [bad] = [i for i in json.loads(run(config, "quarantine", "--format", "json")[1]) if i["source_id"] == "CT-7"]
    code, _, err = run(config, "quarantine", "ack", str(bad["id"]), "--note", "  ")
    assert code == 2 and "needs a note" in err
    code, _, err = run(config, "quarantine", "ack", "999", "--note", "x")
    assert code == 2 and "no quarantined record 999" in err
    with write_transaction(engine) as conn:
        save_records(conn, "residence", [rec("residence", "CT-7")], TZ, None, crafted.NOW)
    code, _, err = run(config, "quarantine", "ack", str(bad["id"]), "--note", "x")
    assert code == 2 and "superseded" in err
    engine.dispose()


def test_held_counts_and_acknowledgement_on_both_databases(engine: Engine) -> None:
    """Records with no id count one per row, versions of one record once, on either database."""
    second = dataclasses.replace(BAD_DATE, raw={**BAD_DATE.raw, "received_at": "2026-14-45"})
    other_no_id = dataclasses.replace(NO_ID, raw={"status": "done"})
    with write_transaction(engine) as conn:
        save_quarantined(conn, "residence", [BAD_DATE, second, NO_ID, other_no_id], None, crafted.NOW)
        assert held_counts(conn) == {"residence": HeldCounts(to_check=3)}
        no_ids = [r.id for r in list_quarantined(conn) if r.source_id is None]
    assert acknowledge_quarantined(engine, no_ids[0], "bản ghi thử") == 1
    with write_transaction(engine) as conn:
        assert held_counts(conn) == {"residence": HeldCounts(to_check=2, acknowledged=1)}
        [one] = [r.id for r in list_quarantined(conn) if r.source_id == "CT-7"][:1]
    assert acknowledge_quarantined(engine, one, "chờ Bộ sửa") == 2
    with write_transaction(engine) as conn:
        assert held_counts(conn) == {"residence": HeldCounts(to_check=1, acknowledged=2)}
