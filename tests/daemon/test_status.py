"""``status`` on a fresh store and on a setup whose sources are all down."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from sync_agent.config import load_settings
from sync_agent.locks import try_lock
from sync_agent.status import collect_status, in_doubt_after, render_text
from sync_agent.store.engine import open_engine, write_transaction
from sync_agent.store.tables import deliveries
from sync_agent.sync import sync_source

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 11, 27, 14, 0, tzinfo=ICT)  # a Friday afternoon
ALERTS = '''
[alerts]
recipients = ["tiepnhan@example.gov.vn"]
time = "07:30"
'''


def test_status_on_a_fresh_store(write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(extra=ALERTS))
    engine = open_engine(settings.agent.database_url)
    st = collect_status(engine, settings, now=NOW)
    assert not st.daemon_running
    assert [s.source for s in st.sources] == ["one_stop", "civil_status", "residence", "household_business"]
    for s in st.sources:
        assert (s.last_success, s.cursor, s.lag) == (None, None, None)
        assert (s.failures_in_a_row, s.last_status) == (0, None)
    assert st.open_flags == {"bypassed_reception": 0, "unknown_reception_code": 0, "status_mismatch": 0,
                             "data_quality": 0}
    jobs = {j.id: j for j in st.next_jobs}
    assert jobs["sync:one_stop"].note.startswith("never synced")
    assert jobs["alerts:digest"].next_run == dt.datetime(2026, 11, 30, 7, 30, tzinfo=ICT)  # Monday
    assert "report:monthly" not in jobs  # no report recipients configured
    text = render_text(st)
    assert "daemon: not running" in text and "no runs yet" in text and "alerts:digest" in text
    data = st.as_json()
    assert data["daemon"] == {"running": False, "pid": None, "host": None}
    assert data["next_jobs"][-1]["next_run"] == "2026-11-30T07:30:00+07:00"


def test_status_when_every_source_is_down_and_a_daemon_is_running(write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config())  # every base_url is a closed local port
    engine = open_engine(settings.agent.database_url)
    for _ in range(2):
        for source in settings.source_names:
            assert sync_source(engine, settings, source).status == "failed"
    lock = try_lock(engine, "daemon")
    assert lock is not None
    try:
        st = collect_status(engine, settings, now=dt.datetime.now(ICT))
    finally:
        lock.release()
    assert st.daemon_running and st.daemon is not None and st.daemon.pid == os.getpid()
    assert not st.healthy
    for s in st.sources:
        assert s.failures_in_a_row == 2 and s.last_status == "failed" and s.last_success is None
        assert s.last_error and s.stale
    text = render_text(st)
    assert "daemon: running" in text and "failed: " in text and "[STALE]" in text
    jobs = {j.id: j for j in st.next_jobs}
    assert jobs["sync:one_stop"].note in ("estimated from the last run", "due now")


def test_a_run_stopped_on_request_is_not_a_failure(write_config: Callable[..., Path]) -> None:
    """A daemon stopped for a restart ends its sync at a page boundary: routine, not a failure."""
    from sync_agent.store import runs as run_store
    from sync_agent.store.engine import read_connection, write_transaction

    settings = load_settings(write_config())
    engine = open_engine(settings.agent.database_url)
    assert sync_source(engine, settings, "residence").status == "failed"  # nothing listens there
    with write_transaction(engine) as conn:
        run_id = run_store.start_run(conn, "residence", NOW, None, None, NOW)
        run_store.finish_run(conn, run_id, run_store.INTERRUPTED, NOW, None,
                             "stopped on request at a page boundary")
    with read_connection(engine) as conn:
        assert run_store.source_health(conn, "residence").failures_in_a_row == 1
    # a run the process did not get to finish (killed, out of memory) is a failure
    with write_transaction(engine) as conn:
        run_store.start_run(conn, "residence", NOW, None, None, NOW)
        assert run_store.interrupt_stale_runs(conn, "residence", NOW) == 1
    with read_connection(engine) as conn:
        assert run_store.source_health(conn, "residence").failures_in_a_row == 2


def test_a_delivery_left_sending_is_shown_in_doubt_with_what_to_do(write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(extra=ALERTS))
    engine = open_engine(settings.agent.database_url)
    started = NOW - dt.timedelta(hours=3)
    rows = [("report:2026-11", "email", "sending", started),
            # a digest's email in doubt, hidden before behind its webhook's later failure
            ("alerts:2026-11-27", "email", "sending", started),
            ("alerts:2026-11-27", "webhook:http://127.0.0.1:9/x", "failed", started + dt.timedelta(minutes=5)),
            ("alerts:2026-11-28", "email", "sending", NOW - dt.timedelta(minutes=1))]  # being sent now
    with write_transaction(engine) as conn:
        for key, channel, status, at in rows:
            conn.execute(deliveries.insert().values(key=key, channel=channel, message_id=f"<{key}{channel}>",
                                                    status=status, attempts=1, created_at=at, updated_at=at))
    st = collect_status(engine, settings, now=NOW)
    assert st.last_report is not None and st.last_report.in_doubt
    assert [(r.key, r.channel) for r in st.in_doubt] == [("report:2026-11", "email"),
                                                          ("alerts:2026-11-27", "email")]
    assert [r["key"] for r in st.as_json()["in_doubt"]] == ["report:2026-11", "alerts:2026-11-27"]
    text = render_text(st)
    since = f"{started.astimezone(ICT):%Y-%m-%d %H:%M:%S}"
    assert (f"report:2026-11 [email] may have been sent: no confirmation since {since}; ask the recipients, "
            "and if it did not arrive: sync-agent report --period 2026-11 --send --force") in text
    assert ("if it did not arrive: sync-agent alerts --date 2026-11-27 --send --force --channel email"
            in text)
    assert "alerts:2026-11-28 [email] may have been sent" not in text
    # being sent now, or cut off a minute ago: not called in doubt yet, and not called in progress
    fresh = f"{NOW - dt.timedelta(minutes=1):%Y-%m-%d %H:%M:%S}"
    assert f"last digest: alerts:2026-11-28 [email] sending since {fresh}, no confirmation yet" in text


def test_a_send_is_called_in_doubt_only_after_the_slowest_the_configuration_allows(
        write_config: Callable[..., Path]) -> None:
    slow = load_settings(write_config(extra='[smtp]\nhost = "127.0.0.1"\nsender = "a@example.gov.vn"\n'
                                            'timeout = 120\nmax_attempts = 5\n'))
    assert in_doubt_after(slow) == dt.timedelta(seconds=5 * (7 * 120 + 60))  # 75 minutes
    assert in_doubt_after(load_settings(write_config())) == dt.timedelta(minutes=15)  # defaults: 13.5 min


def test_a_report_that_did_not_go_says_how_to_send_it(write_config: Callable[..., Path]) -> None:
    """A 'report --send' killed while writing the message leaves 'preparing'; the daemon tries a
    report again only at its next start or send day."""
    settings = load_settings(write_config(extra=ALERTS))
    engine = open_engine(settings.agent.database_url)
    at = NOW - dt.timedelta(hours=1)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(key="report:2026-11", channel="email", message_id="<m>",
                                                status="preparing", attempts=1, created_at=at, updated_at=at))
    assert ("report:2026-11 has not gone: sync-agent report --period 2026-11 --send"
            in render_text(collect_status(engine, settings, now=NOW)))
