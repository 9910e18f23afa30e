"""``logs``: the JSON log family read back and filtered; the pipeline that writes it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog

from sync_agent import logging as agent_logging
from sync_agent.logs import LogFilter, ReadStats, format_text, log_files, parse_time, read_log

ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def line(ts: str, level: str, event: str, **kw: object) -> str:
    return json.dumps({"timestamp": ts, "level": level, "event": event, "logger": "sync_agent.sync", **kw},
                      ensure_ascii=False)


def write_family(folder: Path) -> Path:
    live = folder / "agent.jsonl"
    older = folder / "agent.jsonl.2.gz"
    old = folder / "agent.jsonl.1"
    with gzip.open(older, "wt", encoding="utf-8") as f:
        f.write(line("2026-11-25T01:00:00Z", "info", "sync_started", run_id=1, source="one_stop") + "\n")
        f.write(line("2026-11-25T01:00:05Z", "error", "sync_finished", run_id=1, source="one_stop",
                     status="failed") + "\n")
    old.write_text(
        line("2026-11-26T01:00:00Z", "info", "sync_started", run_id=2, source="residence") + "\n"
        + '{"timestamp": "2026-11-26T01:00:01Z", "level": "inf\n'  # cut by a crash
        + line("2026-11-26T01:00:09Z", "warning", "record_quarantined", run_id=2, source="residence") + "\n",
        encoding="utf-8")
    live.write_text(
        line("2026-11-27T01:00:00Z", "info", "daemon_started") + "\n"
        + line("2026-11-27T01:00:02Z", "info", "sync_finished", run_id=3, source="one_stop") + "\n"
        + '{"timestamp": "2026-11-27T01:00:03Z", "level": "info", "ev',  # being written right now
        encoding="utf-8")
    for i, p in enumerate((older, old, live)):
        os.utime(p, (1_000_000 + i * 1000, 1_000_000 + i * 1000))
    return live


def test_rotated_files_are_read_oldest_first_and_partial_lines_skipped(tmp_path: Path) -> None:
    live = write_family(tmp_path)
    assert [p.name for p in log_files(live)] == ["agent.jsonl.2.gz", "agent.jsonl.1", "agent.jsonl"]
    stats = ReadStats()
    events = read_log(live, stats=stats)
    assert [e.run_id for e in events] == [1, 1, 2, 2, None, 3]
    assert stats.files == 3 and stats.skipped == 2


def test_filters(tmp_path: Path) -> None:
    live = write_family(tmp_path)
    assert [e.event for e in read_log(live, LogFilter(run_id=2))] == ["sync_started", "record_quarantined"]
    assert {e.run_id for e in read_log(live, LogFilter(source="one_stop"))} == {1, 3}
    warnings = read_log(live, LogFilter(level="warning"))
    assert [e.event for e in warnings] == ["sync_finished", "record_quarantined"]
    since = parse_time("2026-11-26T08:00", dt.datetime(2026, 11, 27, tzinfo=ICT), ICT)  # 01:00 UTC
    assert [e.run_id for e in read_log(live, LogFilter(since=since))] == [2, 2, None, 3]
    assert [e.run_id for e in read_log(live, LogFilter(source="one_stop"), limit=1)] == [3]


def test_relative_times_and_text_lines(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=ICT)
    assert parse_time("2h", now, ICT) == now - dt.timedelta(hours=2)
    assert parse_time("1d", now, ICT) == now - dt.timedelta(days=1)
    assert parse_time("2026-11-27", now, ICT) == dt.datetime(2026, 11, 27, tzinfo=ICT)
    ev = read_log(write_family(tmp_path), LogFilter(run_id=3))[0]
    assert format_text(ev, ICT).startswith("2026-11-27 08:00:02 INFO     sync_finished run=3 source=one_stop")


def test_the_pipeline_writes_json_lines_with_context_and_redaction(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "agent.jsonl"
    agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
    try:
        with structlog.contextvars.bound_contextvars(run_id=7, source="residence"):
            structlog.get_logger("sync_agent.test").info("sync_finished", fetched=3,
                                                         api_key="k-123", note="citizen 012345678901")
            logging.getLogger("urllib3.connectionpool").warning("Retrying %s?api_key=%s", "/hoso", "secret9")
            logging.getLogger("apscheduler.scheduler").warning("Run time of job %r was missed", "sync:x")
            logging.getLogger("apscheduler.executors.default").info("Running job (noise, dropped)")
            logging.getLogger("tenacity").warning("retry after password=hunter2")
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
    rows = [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines()]
    by_event = {r["event"]: r for r in rows}
    ours = by_event["sync_finished"]
    assert (ours["run_id"], ours["source"], ours["level"]) == (7, "residence", "info")
    assert ours["api_key"] == "[redacted]" and ours["note"] == "citizen [id-redacted]"
    assert ours["timestamp"].endswith("Z")
    stdlib = by_event["Retrying /hoso?api_key=[redacted]"]
    assert stdlib["logger"] == "urllib3.connectionpool" and stdlib["run_id"] == 7
    assert "Run time of job 'sync:x' was missed" in by_event
    assert not any(e.startswith("Running job") for e in by_event)
    assert "retry after password=[redacted]" in by_event
    text = log_file.read_text(encoding="utf-8")
    assert "hunter2" not in text and "secret9" not in text and "012345678901" not in text


def test_a_path_ending_in_token_is_not_taken_for_a_secret() -> None:
    """civil_status's token URL is ``/api/token``: the cause of a failed login must stay readable,
    while a token written after a key (a query string, a header) is still masked."""
    redact = agent_logging.redact_value
    assert redact("POST /api/token: ConnectionError") == "POST /api/token: ConnectionError"
    assert redact("FatalSourceError: POST /api/token: HTTP 401, credentials refused") == (
        "FatalSourceError: POST /api/token: HTTP 401, credentials refused")
    assert redact("GET /hoso?access_token=abc123&x=1") == "GET /hoso?access_token=[redacted]&x=1"
    assert redact("token: abc123") == "token: [redacted]"
    assert redact("Authorization: Bearer abc123") == "Authorization: [redacted]"
    # after a slash, only "name: reason" is a request's description; a value is still masked
    assert redact("GET /hoso/token=abc123") == "GET /hoso/token=[redacted]"
    assert redact("https://h/cb#/access_token=xyz&x=1") == "https://h/cb#/access_token=[redacted]&x=1"
    assert redact("GET /login/password=hunter2") == "GET /login/password=[redacted]"
    assert redact("headers/Authorization: Bearer xyz") == "headers/Authorization: [redacted]"


def test_a_sync_logs_its_window_in_the_ward_time(tmp_path: Path) -> None:
    """README: all times are the ward's; the log line's time is shown in it, so are its fields."""
    from sync_agent.config import load_settings
    from sync_agent.store.engine import open_engine
    from sync_agent.sync import sync_source
    from tests.daemon.conftest import SOURCES, config_text, free_port

    config = tmp_path / "sync-agent.toml"
    urls = {s: f"http://127.0.0.1:{free_port()}" for s in SOURCES}
    config.write_text(config_text(f"sqlite:///{tmp_path / 'store.db'}", urls), encoding="utf-8")
    settings = load_settings(config)
    engine = open_engine(settings.agent.database_url)
    with structlog.testing.capture_logs() as logs:
        sync_source(engine, settings, "residence")  # nothing listens: the window is logged anyway
    started = next(e for e in logs if e["event"] == "sync_started")
    assert started["until"].endswith("+07:00")


def test_the_executor_s_other_errors_still_reach_the_log(tmp_path: Path) -> None:
    """Only its copy of a job's exception is dropped (``job_failed`` says it); an error running
    a job raises no event, so the executor's line is the only one."""
    log_file = tmp_path / "agent.jsonl"
    agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
    try:
        executor = logging.getLogger("apscheduler.executors.default")
        executor.error("Error running job %s", "sync:one_stop")
        executor.error('Job "%s" raised an exception', "sync:one_stop")
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
        agent_logging.configure(level="INFO", stderr_level="CRITICAL")
    events = [json.loads(x)["event"] for x in log_file.read_text(encoding="utf-8").splitlines()]
    assert events == ["Error running job sync:one_stop"]


def test_a_configured_secret_is_masked_in_any_line_whatever_its_key(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret is masked by its key's name ("password"), or inside a text after one; a library's
    message may carry the bare value (a URL's user info, an echo of the request), and a third
    party's connector may name its secret in Vietnamese. The values the configuration holds as
    secrets are masked wherever they appear."""
    from sync_agent.cli.context import AgentContext
    from tests.test_config import EXAMPLE, SECRETS

    config = tmp_path / "sync-agent.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        'log_file = "logs/sync-agent.jsonl"', f'log_file = "{tmp_path / "agent.jsonl"}"'), encoding="utf-8")
    for name, value in {**SECRETS, "ONE_STOP_PASSWORD": "tiepnhan-2026-mk", "SMTP_PASSWORD": "thu-dien-tu-mk"}.items():
        monkeypatch.setenv(name, value)
    ctx = AgentContext(str(config))
    ctx.setup_logging(stderr_level="CRITICAL")
    try:
        structlog.get_logger("sync_agent.test").warning(
            "login_failed", error="GET http://tiepnhan:tiepnhan-2026-mk@127.0.0.1:8101/ refused",
            detail=["smtp said: thu-dien-tu-mk is wrong"])
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
        agent_logging.configure(level="INFO", stderr_level="CRITICAL")
    text = (tmp_path / "agent.jsonl").read_text(encoding="utf-8")
    assert "login_failed" in text and "tiepnhan:[redacted]@127.0.0.1" in text
    assert "tiepnhan-2026-mk" not in text and "thu-dien-tu-mk" not in text


def test_a_secret_value_is_masked_after_the_id_numbers_and_the_named_secrets() -> None:
    """Masked first, a short secret cut an ID number in two halves left in clear, and a secret
    that is a word of a header ate the header's own mask."""
    agent_logging.mask_values(["123456", "Bearer"])
    try:
        # the ID holds the secret: masked whole, as the secret it holds
        assert agent_logging.redact_value("applicant 079123456789 typed") == "applicant [redacted] typed"
        header = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc"
        assert agent_logging.redact_value(header) == "Authorization: [redacted]"
        assert agent_logging.redact_value("pin 123456 sent") == "pin [redacted] sent"
    finally:
        agent_logging.mask_values([])


def test_a_secret_holding_an_id_shaped_run_is_masked_whole() -> None:
    """Each mask is found in the line as it came: an ID masked first cut a secret holding nine
    digits in two, and the rest of it was left in clear (a bot token is "123456789:AAH...")."""
    agent_logging.mask_values(["Hcm@123456789", "123456789:AAHdqTcvCH1vGWJx", "Pw-079123456789-x"])
    try:
        redact = agent_logging.redact_value
        assert redact("login as x with Hcm@123456789 refused") == "login as x with [redacted] refused"
        assert redact("rejected 123456789:AAHdqTcvCH1vGWJx") == "rejected [redacted]"
        assert redact("auth failed: Pw-079123456789-x") == "auth failed: [redacted]"
        assert redact("citizen 079123456789, token=abc") == "citizen [id-redacted], token=[redacted]"
    finally:
        agent_logging.mask_values([])
