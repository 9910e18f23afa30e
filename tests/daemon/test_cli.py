"""The operator commands through the real command line: ``logs``, ``status``, ``alerts``."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sync_agent.cli import main
from sync_agent.config import load_settings
from sync_agent.locks import sync_lock_name, try_lock
from sync_agent.store.engine import open_engine, read_connection, write_transaction
from sync_agent.store.runs import RunRow, as_they_stand, get_run, start_run
from sync_agent.store.tables import sync_runs
from sync_agent.sync import sync_source
from tests.daemon import crafted
from tests.daemon.receiver import webhook_receiver
from tests.daemon.test_logs import write_family

ROOT = Path(__file__).resolve().parents[2]


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_logs_filters(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    (tmp_path / "logs").mkdir()
    write_family(tmp_path / "logs")
    code, out, err = run(config, "logs", "--run", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all("run=2 source=residence" in x for x in lines)
    assert "2 unreadable or partial line(s) skipped" in err
    code, out, _ = run(config, "logs", "--source", "one_stop", "--level", "error", "--format", "json")
    assert code == 0
    [row] = [json.loads(x) for x in out.splitlines()]
    assert (row["run_id"], row["status"]) == (1, "failed")
    code, out, _ = run(config, "logs", "--since", "2026-11-27", "--format", "json")
    assert [json.loads(x)["event"] for x in out.splitlines()] == ["daemon_started", "sync_finished"]
    code, _, err = run(config, "logs", "--since", "yesterday")
    assert code == 2 and "not a time" in err


def test_status_fresh_then_failing_with_the_host_in_utc(write_config: Callable[..., Path]) -> None:
    config = write_config(extra='[alerts]\nrecipients = ["tiepnhan@example.gov.vn"]\ntime = "07:30"\n')

    def status() -> dict[str, object]:
        out = subprocess.run([sys.executable, "-m", "sync_agent", "--config", str(config), "status",
                              "--format", "json"], env={**os.environ, "TZ": "UTC"}, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        data: dict[str, object] = json.loads(out.stdout)
        return data

    fresh = status()
    assert fresh["daemon"] == {"running": False, "pid": None, "host": None}
    assert str(fresh["now"]).endswith("+07:00")
    sources = fresh["sources"]
    assert isinstance(sources, list) and [s["failures_in_a_row"] for s in sources] == [0, 0, 0, 0]
    jobs = {j["id"]: j for j in fresh["next_jobs"]}  # type: ignore[attr-defined]
    assert jobs["alerts:digest"]["next_run"].endswith("T07:30:00+07:00")

    settings = load_settings(config)
    engine = open_engine(settings.agent.database_url)
    assert sync_source(engine, settings, "residence").status == "failed"
    failing = status()
    by_source = {s["source"]: s for s in failing["sources"]}  # type: ignore[attr-defined]
    assert by_source["residence"]["failures_in_a_row"] == 1
    assert "TransientSourceError" in by_source["residence"]["last_error"]
    assert failing["healthy"] is False
    code, out, _ = run(config, "status")
    assert code == 0 and "residence" in out and "failed: TransientSourceError" in out


def test_alerts_json_and_send_through_a_webhook(write_config: Callable[..., Path], tmp_path: Path) -> None:
    with webhook_receiver() as rx:
        config = write_config(extra=f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        engine = open_engine(load_settings(config).agent.database_url)
        crafted.load(engine)
        code, out, _ = run(config, "alerts", "--date", "2026-02-12", "--format", "json")
        assert code == 0
        data = json.loads(out)
        assert list(data)[:5] == ["date", "new", "due_soon", "overdue", "new_flags"]  # operations.md's
        assert data["date"] == "2026-02-12"
        times = [i["first_seen_at"] for i in data["new"]] + [f["raised_at"] for f in data["new_flags"]]
        assert times and all(t.endswith("+07:00") for t in times), times  # the ward's time zone
        code, out, err = run(config, "alerts", "--send")
        assert code == 0 and "BẢN TIN HỒ SƠ NGÀY" in out and f"webhook:{rx.url}: sent" in err
        code, _, err = run(config, "alerts", "--send")
        assert code == 0 and "already sent" in err
    assert len(rx.requests) == 1
    code, out, _ = run(config, "status", "--format", "json")
    last = json.loads(out)["last_digest"]
    assert last["channel"] == f"webhook:{rx.url}" and last["status"] == "sent"
    assert last["key"].startswith("alerts:")


def test_alerts_send_without_any_channel_is_a_usage_error(write_config: Callable[..., Path]) -> None:
    code, _, err = run(write_config(), "alerts", "--send")
    assert code == 2 and "no recipients or webhooks configured in [alerts]" in err


def test_runs_and_logs_refuse_a_source_neither_configured_nor_seen(write_config: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    config = write_config()
    (tmp_path / "logs").mkdir()
    write_family(tmp_path / "logs")
    for command in ("runs", "logs"):
        code, out, err = run(config, command, "--source", "one_stpo")
        assert code == 2 and out == ""
        assert err.startswith("error: unknown source one_stpo; configured: one_stop, civil_status"), err
    code, out, _ = run(config, "runs", "--source", "one_stop")
    assert code == 0 and out == "no sync runs yet\n"


def test_sync_refuses_a_disabled_source_named_on_its_line(write_config: Callable[..., Path]) -> None:
    config = write_config()
    config.write_text(config.read_text(encoding="utf-8").replace(
        'type = "household_business"', 'type = "household_business"\nenabled = false'), encoding="utf-8")
    code, out, err = run(config, "sync", "household_business")
    assert code == 2 and out == ""
    assert "household_business disabled (connectors.household_business.enabled = false)" in err, err
    code, out, _ = run(config, "runs", "--source", "household_business")
    assert code == 0 and out == "no sync runs yet\n"


def test_runs_and_logs_accept_a_disabled_source_and_a_removed_one_with_history(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    text = config.read_text(encoding="utf-8").replace('type = "household_business"',
                                                      'type = "household_business"\nenabled = false')
    config.write_text(text.replace("[connectors.residence]", "[connectors.residence_old]"), encoding="utf-8")
    (tmp_path / "logs").mkdir()
    write_family(tmp_path / "logs")  # lines of one_stop and residence
    for command in ("runs", "logs"):
        code, _, err = run(config, command, "--source", "household_business")
        assert code == 0, err
    code, out, err = run(config, "logs", "--source", "residence")  # history of a source since removed
    assert code == 0 and "source=residence" in out, err
    code, out, err = run(config, "logs", "--source", "residence", "--level", "critical")
    assert code == 0 and out == "", err  # none at that level: not a reason to call it unknown


def test_runs_as_json_give_times_in_the_ward_time_zone(write_config: Callable[..., Path]) -> None:
    config = write_config()
    settings = load_settings(config)
    engine = open_engine(settings.agent.database_url)
    sync_source(engine, settings, "residence")  # nothing listens there: a failed run
    engine.dispose()
    code, out, _ = run(config, "runs", "--format", "json")
    [row] = json.loads(out)
    assert code == 0 and row["status"] == "failed"
    assert row["started_at"].endswith("+07:00") and row["finished_at"].endswith("+07:00")


def test_sync_of_a_source_another_sync_holds_is_skipped_not_failed(write_config: Callable[..., Path]) -> None:
    config = write_config()  # every source on a closed port: one that really synced would fail
    settings = load_settings(config)
    held = try_lock(open_engine(settings.agent.database_url), "sync-residence")
    assert held is not None
    with held:
        code, out, err = run(config, "sync", "residence")
    assert code == 0, err
    [line] = [x for x in out.splitlines() if x.startswith("residence")]
    assert line.split()[1] == "skipped" and line.endswith("(another sync of this source is running)")
    assert "error=" not in line and "failed" not in err


def test_sending_the_digest_of_a_past_day_that_never_went_is_refused(write_config: Callable[..., Path]) -> None:
    """It would carry today's news under an old date and move 'since' past today's digest; a day
    that did go is resent on its own window."""
    with webhook_receiver() as rx:
        config = write_config(extra=f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        code, _, err = run(config, "alerts", "--send", "--date", "2026-11-02")
        assert code == 2 and "no digest went on 2026-11-02" in err and rx.requests == []


def test_alerts_send_by_hand_reconciles_what_is_stored_first(write_config: Callable[..., Path]) -> None:
    """As the daemon's digest job does: a dossier stored but not reconciled yet must be in it."""
    with webhook_receiver() as rx:
        config = write_config(extra=f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        engine = open_engine(load_settings(config).agent.database_url)
        now = dt.datetime.now(dt.UTC)
        crafted.store_unreconciled(engine, "H01-LATE", now - dt.timedelta(minutes=2))
        code, _, err = run(config, "alerts", "--send", "--date", now.astimezone(crafted.ICT).date().isoformat())
    assert code == 0, err
    [request] = rx.requests
    assert "H01-LATE" in {i["reception_code"] for i in json.loads(request.body)["digest"]["new"]}


def test_a_run_whose_process_is_gone_shows_interrupted_before_the_next_sync_says_so(
        write_config: Callable[..., Path]) -> None:
    """A daemon killed mid-sync leaves its run 'running' in the store until that source syncs again."""
    config = write_config()
    settings = load_settings(config)
    engine = open_engine(settings.agent.database_url)
    with write_transaction(engine) as conn:
        for source in ("one_stop", "residence"):
            start_run(conn, source, crafted.NOW, None, None, crafted.NOW)
    held = try_lock(engine, sync_lock_name("residence"))  # residence's sync is alive; one_stop's is gone
    assert held is not None
    with held:
        code, out, _ = run(config, "runs", "--format", "json")
        status = {s["source"]: s for s in json.loads(run(config, "status", "--format", "json")[1])["sources"]}
    engine.dispose()
    rows = {r["source"]: r for r in json.loads(out)}
    assert code == 0 and rows["residence"]["status"] == "running"
    assert rows["one_stop"]["status"] == "interrupted"
    assert rows["one_stop"]["error"].startswith("its end was never recorded: the process stopped")
    assert (status["one_stop"]["last_status"], status["residence"]["last_status"]) == ("interrupted", "running")


def test_a_run_that_finished_while_its_lock_was_checked_is_not_taken_for_a_crash() -> None:
    """Read 'running', then the lock found free: the sync may simply have finished in between
    (it holds its lock until its run is recorded finished), so the run is read once more."""
    row = RunRow(id=7, source="one_stop", started_at=crafted.NOW, finished_at=None, status="running", pages=0,
                 fetched=0, inserted=0, updated=0, unchanged=0, quarantined=0, error=None, cursor_before=None,
                 cursor_after=None)
    [finished] = as_they_stand([row], lambda source: False, lambda run_id: False)
    assert finished.status == "running"
    [cut_off] = as_they_stand([row], lambda source: False, lambda run_id: True)
    assert cut_off.status == "interrupted"
    [alive] = as_they_stand([row], lambda source: True, lambda run_id: True)
    assert alive.status == "running"


def test_a_sync_dates_its_run_once_it_holds_the_store(write_config: Callable[..., Path]) -> None:
    """A run dated before it waited for another writer could be dated before a digest's end
    and become visible only after that digest read the store (alerts.in_flight_since)."""
    settings = load_settings(write_config())  # SQLite: one writer at a time
    engine = open_engine(settings.agent.database_url)
    done: list[Any] = []
    with write_transaction(engine):  # another writer holds the store
        thread = threading.Thread(target=lambda: done.append(sync_source(engine, settings, "residence")))
        thread.start()
        time.sleep(0.5)  # the sync has its source's lock and waits for the store
        released = dt.datetime.now(dt.UTC)
    thread.join(timeout=60)
    [result] = done
    with read_connection(engine) as conn:
        run = get_run(conn, result.run_id)
    engine.dispose()
    assert run is not None and run.started_at >= released


def test_runs_text_shows_the_unchanged_count(write_config: Callable[..., Path]) -> None:
    """fetched 18,587 = inserted 18,550 + unchanged 37: without the column the 37 were unexplained."""
    config = write_config()
    engine = open_engine(load_settings(config).agent.database_url)
    with write_transaction(engine) as conn:
        run_id = start_run(conn, "one_stop", crafted.NOW, None, None, crafted.NOW)
        conn.execute(sync_runs.update().values(status="success", fetched=18587, inserted=18550, unchanged=37,
                                               finished_at=crafted.NOW))
    engine.dispose()
    code, out, _ = run(config, "runs")
    header, line = out.splitlines()
    assert code == 0 and header.split()[:10] == ["id", "source", "started", "secs", "fetched", "inserted",
                                                 "updated", "unchanged", "quar.", "status"]
    assert line.split()[4:10] == ["0.0", "18587", "18550", "0", "37", "0"] and run_id == int(line.split()[0])
