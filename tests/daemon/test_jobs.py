"""The daemon's own jobs, called directly with a fixed clock: digest, retries, catch-ups."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, select

from sync_agent import logging as agent_logging
from sync_agent import notifiers
from sync_agent.alerts import build_digest, last_digest_at, send_digest
from sync_agent.config import Settings, load_settings
from sync_agent.daemon import DELIVERY_RETRY_DELAY, DELIVERY_RETRY_MAX_DELAY, Daemon, job_specs
from sync_agent.locks import try_lock
from sync_agent.mailer import MailTransientError
from sync_agent.status import collect_status
from sync_agent.status import render_text as status_text
from sync_agent.store.engine import open_engine, read_connection, write_transaction
from sync_agent.store.tables import deliveries, reconcile_queue, sync_runs
from tests.daemon import crafted
from tests.daemon.crafted import ICT
from tests.daemon.receiver import webhook_receiver

REPORT = '[report]\nrecipients = ["ttpvhcc@example.gov.vn"]\nsend_day = 15\nsend_time = "08:00"\n'


def ticking(settings: Settings, engine: Engine, start: dt.datetime) -> tuple[Daemon, list[dt.datetime]]:
    """A daemon whose clock the test moves (``clock[0] = ...``), its jobs as of ``start``."""
    clock = [start]
    d = Daemon(settings, engine, clock=lambda: clock[0])
    d.specs = job_specs(settings, start)
    return d, clock


def daemon_at(settings: Settings, engine: Engine, now: dt.datetime) -> Daemon:
    d = Daemon(settings, engine, clock=lambda: now)
    d.specs = job_specs(settings, now)
    return d


def setup(write_config: Callable[..., Path], extra: str) -> tuple[Settings, Engine]:
    settings = load_settings(write_config(extra=extra))
    return settings, open_engine(settings.agent.database_url)


@contextlib.contextmanager
def digest_failing_on_a_webhook(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
                                ) -> Iterator[tuple[Any, Settings, Engine, Daemon]]:
    """The daemon's digest job run once against a webhook that answers 503 (still listening)."""
    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    with webhook_receiver(statuses=[503] * 8) as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        d = daemon_at(settings, engine, crafted.NOW)
        d._digest()
        yield rx, settings, engine, d


def test_the_digest_job_skips_tet_and_sends_on_a_working_day(write_config: Callable[..., Path]) -> None:
    with webhook_receiver() as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        crafted.load(engine)
        tet = dt.datetime(2026, 2, 17, 7, 30, tzinfo=ICT)
        with structlog.testing.capture_logs() as logs:
            daemon_at(settings, engine, tet)._digest()
        assert next(e for e in logs if e["event"] == "digest_skipped")["reason"] == "not a working day"
        assert rx.requests == []
        daemon_at(settings, engine, crafted.NOW)._digest()
        assert len(rx.requests) == 1
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == crafted.NOW


def retry_note(d: Daemon) -> dict[str, Any]:
    """What the daemon noted of its retry (the scheduler is not started in these tests)."""
    [note] = collect_status(d.engine, d.settings, now=crafted.NOW).delivery_retries
    return dict(note)


def test_a_failed_digest_is_retried_later_without_resending_what_went(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with digest_failing_on_a_webhook(write_config, monkeypatch) as (_rx, _settings, _engine, d):
        pass
    job = d.scheduler.get_job("alerts:digest:retry")
    assert job is not None
    assert job.trigger.run_date == crafted.NOW + DELIVERY_RETRY_DELAY
    # tried again after 15, 30, 60 minutes, then every two hours, until the day is over
    now, waits = crafted.NOW, []
    while "at" in (note := retry_note(d)):
        at = dt.datetime.fromisoformat(note["at"])
        waits.append(int((at - now).total_seconds() // 60))
        now = at
        d._retry_later("alerts:digest", crafted.TODAY, d._digest, now)
    assert waits == [15, 30, 60, 120, 120, 120, 120, 120, 120, 120]
    assert now == dt.datetime.combine(crafted.TODAY, dt.time(23, 15), tzinfo=ICT)  # the next, 01:15: given up


def test_catch_up_at_start_for_a_due_report_and_a_missed_digest(write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT + '[alerts]\nrecipients = ["a@example.gov.vn"]\n')
    friday = dt.datetime(2026, 11, 27, 14, 0, tzinfo=ICT)  # the 2026-11 report was due on the 15th
    running_since(engine, dt.datetime(2026, 11, 1, 8, 0, tzinfo=ICT))  # and the agent ran by then
    d = daemon_at(settings, engine, friday)
    d._schedule_catch_ups(friday)
    assert {j.id for j in d.scheduler.get_jobs()} == {"report:monthly:catch-up", "alerts:digest:catch-up"}
    with write_transaction(engine) as conn:
        for key in ("report:2026-11", "alerts:2026-11-27"):
            conn.execute(deliveries.insert().values(key=key, channel="email", message_id=f"<{key}@x>",
                                                    status="sent", created_at=friday, updated_at=friday))
    d = daemon_at(settings, engine, friday)
    d._schedule_catch_ups(friday)
    assert d.scheduler.get_jobs() == []
    # on the send day before the send time the cron job will do it; on a Saturday no digest is due
    d = daemon_at(settings, engine, dt.datetime(2026, 12, 15, 7, 0, tzinfo=ICT))
    d._schedule_catch_ups(dt.datetime(2026, 12, 15, 7, 0, tzinfo=ICT))
    assert d.scheduler.get_jobs() == []
    saturday = dt.datetime(2026, 11, 28, 9, 0, tzinfo=ICT)
    d = daemon_at(settings, engine, saturday)
    d._schedule_catch_ups(saturday)
    assert d.scheduler.get_jobs() == []


def test_a_sync_that_lands_during_reconciliation_gets_another_run(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent import reconcile as reconcile_module

    settings, engine = setup(write_config, "")
    d = daemon_at(settings, engine, crafted.NOW)
    calls: list[int] = []

    def fake(engine: Engine, tz: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            d.request_reconcile()  # a sync committed records meanwhile

    monkeypatch.setattr(reconcile_module, "reconcile", fake)
    d._reconcile()
    assert len(calls) == 2 and not d._reconcile_running and not d._reconcile_pending
    woken: list[object] = []
    monkeypatch.setattr(d.scheduler, "modify_job", lambda job_id, **kw: woken.append((job_id, kw)))
    d.request_reconcile()  # nothing running: the job is woken now
    assert woken == [("reconcile", {"next_run_time": crafted.NOW})]


@pytest.fixture
def sent_reports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The periods whose report the daemon sends (recorded instead of sent)."""
    import sync_agent.report as report_package

    sent: list[str] = []

    def send(_engine: Engine, _settings: Settings, period: Any, **_kw: Any) -> Any:
        sent.append(period.label)
        return SimpleNamespace(status="sent", message_id="<m@x>")

    monkeypatch.setattr(report_package, "send_period_report", send)
    return sent


def test_the_report_waits_until_every_source_has_synced_past_the_period(
        write_config: Callable[..., Path], sent_reports: list[str]) -> None:
    """A daemon started on a new store must not send the city a report of the records its first
    sync has stored so far (seen in an install trial: a report of zeros, and the month then
    counted as sent)."""
    from sync_agent.daemon import REPORT_WAIT
    from sync_agent.store.runs import advance_cursor

    settings, engine = setup(write_config, REPORT)
    sent = sent_reports
    send_time = dt.datetime(2026, 12, 15, 8, 0, tzinfo=ICT)  # the 2026-12 period ended on the 14th
    d = daemon_at(settings, engine, send_time)
    with structlog.testing.capture_logs() as logs:
        d._report()
    assert sent == []
    waiting = next(e for e in logs if e["event"] == "report_waiting_for_sources")
    assert waiting["period"] == "2026-12" and waiting["sources"] == list(settings.source_names)
    job = d.scheduler.get_job("report:monthly:wait:2026-12")
    assert job is not None and job.trigger.run_date == send_time + REPORT_WAIT
    # every source read up to the end of the 14th but one; then all of them; then a record
    # stored but not yet reconciled
    end = dt.datetime(2026, 12, 15, 0, 0, tzinfo=ICT)
    with write_transaction(engine) as conn:
        for source in settings.source_names[:-1]:
            advance_cursor(conn, source, end, send_time)
        advance_cursor(conn, settings.source_names[-1], end - dt.timedelta(seconds=1), send_time)
    with structlog.testing.capture_logs() as logs:
        daemon_at(settings, engine, send_time)._report()
    assert sent == [] and next(e for e in logs if e["event"] == "report_waiting_for_sources")["sources"] == [
        settings.source_names[-1]]
    # waiting shows in status, from the first time it waited
    from sync_agent.status import collect_status, render_text

    st = collect_status(engine, settings, now=send_time)
    assert st.report_waiting == {"period": "2026-12", "sources": [settings.source_names[-1]],
                                 "since": send_time.isoformat()}
    assert "report 2026-12 WAITING since" in render_text(st)
    # all read: the records stored so far are reconciled, then it goes
    with write_transaction(engine) as conn:
        advance_cursor(conn, settings.source_names[-1], end, send_time)
        conn.execute(reconcile_queue.insert().values(dossier_id=1))
    daemon_at(settings, engine, send_time)._report()
    assert sent == ["2026-12"]
    with read_connection(engine) as conn:
        assert conn.execute(reconcile_queue.select()).all() == []
    assert collect_status(engine, settings, now=send_time).report_waiting is None


def test_a_report_that_waits_past_the_next_period_keeps_its_period(
        write_config: Callable[..., Path], sent_reports: list[str]) -> None:
    from sync_agent.store.runs import advance_cursor

    settings, engine = setup(write_config, REPORT)
    sent = sent_reports
    d = daemon_at(settings, engine, dt.datetime(2026, 12, 15, 8, 0, tzinfo=ICT))
    d._report()
    job = d.scheduler.get_job("report:monthly:wait:2026-12")
    assert job is not None and sent == []
    a_month_later = dt.datetime(2027, 1, 15, 0, 10, tzinfo=ICT)  # the 2027-01 period has ended too
    with write_transaction(engine) as conn:
        for source in settings.source_names:
            advance_cursor(conn, source, a_month_later, a_month_later)
    d.clock = lambda: a_month_later
    job.func()
    assert sent == ["2026-12"]


def test_a_database_error_while_checking_is_retried(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import sync_agent.report_readiness as readiness

    settings, engine = setup(write_config, REPORT)

    def broken(*_args: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(readiness, "sources_behind", broken)
    d = daemon_at(settings, engine, dt.datetime(2026, 12, 15, 8, 0, tzinfo=ICT))
    with pytest.raises(RuntimeError):
        d._report()
    assert d.scheduler.get_job("report:monthly:retry:2026-12") is not None


def test_a_source_configured_to_start_after_the_period_is_not_waited_for(
        write_config: Callable[..., Path]) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import sources_behind

    config = write_config(extra=REPORT)
    config.write_text(config.read_text(encoding="utf-8").replace(
        'type = "residence"', 'type = "residence"\nstart_date = 2027-01-01'), encoding="utf-8")
    settings = load_settings(config)
    engine = open_engine(settings.agent.database_url)
    behind = sources_behind(engine, settings, Period.parse("2026-12", 15))
    assert "residence" not in behind and "one_stop" in behind


def job_failed_lines(write_config: Callable[..., Path], tmp_path: Path, exc: Exception) -> list[dict[str, Any]]:
    """The error lines the daemon logs when a job raises ``exc``."""
    settings, engine = setup(write_config, "")
    log_file = tmp_path / "failed-job.jsonl"
    agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
    d = Daemon(settings, engine)
    done = threading.Event()

    def body() -> None:
        done.set()
        raise exc

    d.scheduler.add_job(d._wrap("report:monthly", body), trigger=DateTrigger(dt.datetime.now(ICT)),
                        id="report:monthly")
    d.scheduler.start()
    try:
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while "job_failed" not in log_file.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.05)
        # the scheduler's thread removes the run-once job after it ran: a shutdown before that
        # empties the job store under it, and its "No job by the id" kills the thread
        while d.scheduler.get_job("report:monthly") is not None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        d.scheduler.shutdown(wait=True)
        agent_logging.configure(level="INFO", stderr_level="CRITICAL")
    return [json.loads(x) for x in log_file.read_text(encoding="utf-8").splitlines()
            if json.loads(x)["level"] in ("error", "critical")]


def test_a_failed_job_is_one_error_line_with_its_traceback(write_config: Callable[..., Path],
                                                          tmp_path: Path) -> None:
    """apscheduler's own "Job ... raised an exception" repeated the daemon's ``job_failed``."""
    errors = job_failed_lines(write_config, tmp_path, RuntimeError("SMTP refused the report"))
    assert [e["event"] for e in errors] == ["job_failed"], errors
    assert errors[0]["job"] == "report:monthly" and errors[0]["error"] == "RuntimeError: SMTP refused the report"
    assert "in body" in errors[0]["traceback"]


def test_a_job_failing_on_the_outside_world_logs_its_error_without_a_traceback(write_config: Callable[..., Path],
                                                                               tmp_path: Path) -> None:
    """An SMTP server down for a day is one line every try, not a traceback every two hours: the
    error names the cause, and a traceback would point only at the agent's own send call."""
    errors = job_failed_lines(write_config, tmp_path, MailTransientError("SMTP 127.0.0.1:25: connection refused"))
    assert [e["event"] for e in errors] == ["job_failed"], errors
    assert errors[0]["error"] == "MailTransientError: SMTP 127.0.0.1:25: connection refused"
    assert "traceback" not in errors[0]


def test_a_job_failing_on_a_full_disk_logs_its_error_without_a_traceback(write_config: Callable[..., Path],
                                                                        tmp_path: Path) -> None:
    """The operator must free space; a traceback every cycle would hide that."""
    full = OSError(errno.ENOSPC, "No space left on device")
    errors = job_failed_lines(write_config, tmp_path, full)
    assert [e["event"] for e in errors] == ["job_failed"], errors
    assert errors[0]["error"] == "OSError: [Errno 28] No space left on device"
    assert "traceback" not in errors[0]


def test_status_shows_a_delivery_the_daemon_will_try_again_then_one_it_gave_up(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with digest_failing_on_a_webhook(write_config, monkeypatch) as (rx, settings, engine, d):
        with try_lock(engine, "daemon"):  # the daemon runs
            st = collect_status(engine, settings, now=crafted.NOW)
        retry_at = crafted.NOW + DELIVERY_RETRY_DELAY
        [note] = [dict(r) for r in st.delivery_retries]
        assert note == {"job": "alerts:digest", "what": "2026-02-12", "attempt": 1, "at": retry_at.isoformat(),
                        "error": f"WebhookError: {rx.url}: HTTP 503 after 4 attempt(s)"}
        failed = f"alerts:digest: delivery failed (WebhookError: {rx.url}: HTTP 503 after 4 attempt(s)); the daemon"
        assert f"{failed} tries again at {retry_at:%Y-%m-%d %H:%M:%S} (try 1)" in status_text(st)
        # stopped, its retry went with it: no promise of one, its next start's catch-up instead
        assert (f"{failed} stopped before its try at {retry_at:%Y-%m-%d %H:%M:%S}: its next start catches up the "
                "latest report and today's digest if still due and not in doubt; otherwise: sync-agent alerts "
                "--send --date 2026-02-12") in \
            status_text(collect_status(engine, settings, now=crafted.NOW))
        late = dt.datetime.combine(crafted.TODAY, dt.time(23, 45), tzinfo=ICT)
        d._retry_later("alerts:digest", crafted.TODAY, d._digest, late)  # its next try would be tomorrow
        [gave_up] = collect_status(engine, settings, now=crafted.NOW).delivery_retries
        assert gave_up["attempts"] == 1 and "at" not in gave_up
        assert "gave up after 1 more tries" in status_text(collect_status(engine, settings, now=crafted.NOW))
        # a daemon started again keeps showing what the last one gave up on...
        restarted = daemon_at(settings, engine, crafted.NOW)
        restarted.start()
        restarted.scheduler.shutdown(wait=False)
        assert len(collect_status(engine, settings, now=crafted.NOW).delivery_retries) == 1
        # ...until the digest goes, here sent by a person as status says
        rx.statuses.clear()
        assert send_digest(engine, settings, build_digest(engine, settings, crafted.TODAY, now=crafted.NOW),
                           now=crafted.NOW).ok
    assert collect_status(engine, settings, now=crafted.NOW).delivery_retries == ()


def test_a_report_that_cannot_go_is_tried_again_every_two_hours_until_it_goes(
        write_config: Callable[..., Path]) -> None:
    """An hour of SMTP maintenance on the send day left the city without the report until
    someone read status (three tries, then the daemon gave up)."""
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    now = crafted.NOW
    for _ in range(30):
        d._retry_later("report:monthly", now.date(), lambda: None, now, what="2026-02")
        note = retry_note(d)
        at = dt.datetime.fromisoformat(note["at"])
        assert note["what"] == "2026-02" and dt.timedelta(0) < at - now <= DELIVERY_RETRY_MAX_DELAY
        now = at
    assert now > crafted.NOW + dt.timedelta(days=1)  # and on


def test_the_report_given_up_on_names_its_period_in_the_command_status_gives(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    d._retry_later("report:monthly", crafted.TODAY, lambda: None, crafted.NOW, what="2026-02")
    d.stop.set()  # the daemon stops: the next start's catch-up sends it, or a person does
    d._retry_later("report:monthly", crafted.TODAY, lambda: None, crafted.NOW, what="2026-02")
    assert "send it by hand: sync-agent report --period 2026-02 --send" in status_text(
        collect_status(engine, settings, now=crafted.NOW))


def test_a_digest_that_went_on_one_channel_and_failed_on_another_shows_its_retry(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The channel that went was recorded after the job started: its time must not hide the
    note of the one that failed in the same run."""
    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    with webhook_receiver() as ok, webhook_receiver(statuses=[503] * 8) as bad:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{ok.url}"\n'
                                               f'[[alerts.webhooks]]\nurl = "{bad.url}"\n')
        d = daemon_at(settings, engine, crafted.NOW)
        d._digest()
    assert len(ok.requests) == 1 and d.scheduler.get_job("alerts:digest:retry") is not None
    [note] = collect_status(engine, settings, now=crafted.NOW).delivery_retries
    assert note["job"] == "alerts:digest" and note["attempt"] == 1


def test_a_report_sent_for_another_period_does_not_hide_this_one_s_failure(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    d._retry_later("report:monthly", crafted.TODAY, lambda: None, crafted.NOW, what="2026-02")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    with write_transaction(engine) as conn:  # someone resends January's report on purpose
        conn.execute(deliveries.insert().values(key="report:2026-01", channel="email", message_id="<m>",
                                                status="sent", attempts=2, created_at=later,
                                                updated_at=later, sent_at=later))
    [note] = collect_status(engine, settings, now=crafted.NOW).delivery_retries
    assert note["what"] == "2026-02"


def test_a_dossier_stored_before_the_digest_but_not_reconciled_yet_is_in_it(
        write_config: Callable[..., Path]) -> None:
    """Its case would be dated by the sync (07:28) once reconciled after the 07:30 digest, before
    the next one's start: listed in no digest at all."""
    with webhook_receiver() as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        crafted.load(engine)
        crafted.store_unreconciled(engine, "H01-LATE", crafted.NOW - dt.timedelta(minutes=2))
        daemon_at(settings, engine, crafted.NOW)._digest()
    [request] = rx.requests
    assert "H01-LATE" in {i["reception_code"] for i in json.loads(request.body)["digest"]["new"]}


def running_since(engine: Engine, at: dt.datetime) -> None:
    """The store's first sync run started at ``at``."""
    with write_transaction(engine) as conn:
        conn.execute(sync_runs.insert().values(source="one_stop", started_at=at, finished_at=at, status="success"))


def test_a_new_install_does_not_send_the_report_that_fell_due_before_it(write_config: Callable[..., Path]) -> None:
    """Installed on the 29th, the agent's first start would have emailed the city the report due
    on the 15th, which the ward had filed by hand: a catch-up is for a report the agent missed."""
    settings, engine = setup(write_config, REPORT)
    now = dt.datetime(2026, 11, 29, 10, 0, tzinfo=ICT)
    d = daemon_at(settings, engine, now)
    with structlog.testing.capture_logs() as logs:
        d._schedule_catch_ups(now)
    assert d.scheduler.get_jobs() == []
    skipped = next(e for e in logs if e["event"] == "report_catch_up_skipped")
    assert skipped["period"] == "2026-11" and "report --period 2026-11 --send" in skipped["hint"]
    running_since(engine, dt.datetime(2026, 11, 20, 8, 0, tzinfo=ICT))  # first synced after the 15th
    d._schedule_catch_ups(now)
    assert d.scheduler.get_jobs() == []


def test_a_digest_retry_that_runs_after_midnight_sends_nothing(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """It rebuilt the digest of the day the clock said: the next day's went at midnight, and its
    07:30 digest sent nothing."""
    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    clock = [dt.datetime.combine(crafted.TODAY, dt.time(21, 59, 59), tzinfo=ICT)]
    with webhook_receiver(statuses=[503] * 8) as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        crafted.load(engine)
        d = Daemon(settings, engine, clock=lambda: clock[0])
        d.specs = job_specs(settings, clock[0])
        d._digest()
        job = d.scheduler.get_job("alerts:digest:retry")
        assert job is not None
        clock[0] = dt.datetime.combine(crafted.TODAY + dt.timedelta(days=1), dt.time(0, 0, 1), tzinfo=ICT)
        rx.statuses.clear()
        sent = len(rx.requests)
        job.func()  # a moment late, past midnight
        assert len(rx.requests) == sent
    with read_connection(engine) as conn:
        keys = conn.execute(select(deliveries.c.key)).scalars().all()
    assert "alerts:2026-02-13" not in keys


def test_a_report_failing_for_a_reason_a_retry_cannot_mend_is_given_up_with_the_reason(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipient refused for good (5xx) was tried every two hours for ever, status saying only
    when the next try was."""
    import sync_agent.report as report_package
    from sync_agent.mailer import RecipientsRefused

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: False)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise RecipientsRefused({"ttpvhcc@example.gov.vn": (550, "no such user")})

    monkeypatch.setattr(report_package, "send_period_report", refused)
    for _ in range(5):
        with pytest.raises(RecipientsRefused):
            d._report()
        note = retry_note(d)
        if "at" not in note:
            break
        clock[0] = dt.datetime.fromisoformat(note["at"])
    assert "gave_up_at" in note and "550 no such user" in note["error"]
    text = status_text(collect_status(engine, settings, now=clock[0]))
    assert "550 no such user" in text and "sync-agent report --period 2026-03 --send" in text


def test_a_report_retried_across_midnight_keeps_counting(write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    now = crafted.NOW
    for _ in range(12):
        d._retry_later("report:monthly", now.date(), lambda: None, now, what="2026-02")
        note = retry_note(d)
        now = dt.datetime.fromisoformat(note["at"])
    assert now.date() > crafted.TODAY and note["attempt"] == 12


def test_a_catch_up_digest_that_runs_after_midnight_sends_nothing(write_config: Callable[..., Path]) -> None:
    """Started at 23:59 with the day's digest unsent, its catch-up ran at 00:01 and sent the
    next day's digest at midnight."""
    with webhook_receiver() as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        crafted.load(engine)
        d, clock = ticking(settings, engine, dt.datetime.combine(crafted.TODAY, dt.time(23, 59), tzinfo=ICT))
        d._schedule_catch_ups(clock[0])
        job = d.scheduler.get_job("alerts:digest:catch-up")
        assert job is not None
        clock[0] = dt.datetime.combine(crafted.TODAY + dt.timedelta(days=1), dt.time(0, 1), tzinfo=ICT)
        job.func()
        assert rx.requests == []


def failing_report(monkeypatch: pytest.MonkeyPatch, d: Daemon, *failures: BaseException) -> None:
    import sync_agent.report as report_package

    queue = list(failures)
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: False)

    def send(*args: Any, **kwargs: Any) -> Any:
        raise queue.pop(0)

    monkeypatch.setattr(report_package, "send_period_report", send)


def test_a_report_failing_for_good_after_a_retry_says_so_instead_of_a_retry_that_will_not_come(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.mailer import MailInDoubt, MailPermanentError, MailTransientError

    for last in (MailPermanentError("127.0.0.1:25: login refused (535)"),
                 MailInDoubt("connection lost after the message was sent")):
        settings, engine = setup(write_config, REPORT)
        d = daemon_at(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
        failing_report(monkeypatch, d, MailTransientError("127.0.0.1:25: cannot connect"), last)
        with pytest.raises(MailTransientError):
            d._report()
        assert "at" in retry_note(d)
        with pytest.raises(type(last)):
            d._report()
        note = retry_note(d)
        assert "at" not in note and str(last) in note["error"] and note["what"] == "2026-03"
        d.scheduler.remove_all_jobs()
        engine.dispose()


def test_a_dropped_digest_retry_notes_the_tries_made_and_the_last_error(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    clock = [dt.datetime.combine(crafted.TODAY, dt.time(23, 30), tzinfo=ICT)]
    with webhook_receiver(statuses=[503] * 8) as rx:
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        crafted.load(engine)
        d = Daemon(settings, engine, clock=lambda: clock[0])
        d.specs = job_specs(settings, clock[0])
        d._digest()  # fails; a retry at 23:45
        clock[0] = dt.datetime.combine(crafted.TODAY + dt.timedelta(days=1), dt.time(0, 10), tzinfo=ICT)
        d._digest(crafted.TODAY)  # the retry, late: dropped
    note = retry_note(d)
    assert note["attempts"] == 0 and "HTTP 503" in note["error"] and note["what"] == "2026-02-12"


def test_a_store_error_a_wait_will_not_mend_is_not_retried_for_ever(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    readonly = OperationalError("INSERT INTO deliveries ...", {"key": "report:2026-03"},
                                sqlite3.OperationalError("attempt to write a readonly database"))
    failing_report(monkeypatch, d, *[readonly] * 5)
    for _ in range(5):
        with pytest.raises(OperationalError):
            d._report()
        note = retry_note(d)
        if "at" not in note:
            break
        clock[0] = dt.datetime.fromisoformat(note["at"])
    assert note["error"] == "OperationalError: attempt to write a readonly database" and note["attempts"] == 3


def test_a_full_disk_is_retried_as_a_failure_a_wait_may_mend(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    full = OperationalError("INSERT INTO deliveries ...", {"key": "report:2026-03"},
                            sqlite3.OperationalError("database or disk is full"))
    failing_report(monkeypatch, d, *[full] * 5)
    for _ in range(5):
        with pytest.raises(OperationalError):
            d._report()
        note = retry_note(d)
        assert "at" in note, note  # space may be freed meanwhile: never given up on
        clock[0] = dt.datetime.fromisoformat(note["at"])
    assert note["error"] == "OperationalError: database or disk is full"


def test_failures_a_wait_may_mend_do_not_use_up_the_tries_of_one_it_may_not(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    now = crafted.NOW
    for transient in (True, True, True, False):
        d._retry_later("report:monthly", now.date(), lambda: None, now, what="2026-02", transient=transient)
        now = dt.datetime.fromisoformat(retry_note(d)["at"])
    assert retry_note(d)["attempt"] == 4


def test_a_digest_given_up_is_settled_by_the_next_digest_sent(write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, crafted.NOW)
    d._note_retry("alerts:digest", {"job": "alerts:digest", "what": "2026-02-12", "attempts": 2,
                                    "gave_up_at": crafted.NOW.isoformat()})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    with write_transaction(engine) as conn:  # the next day's digest, sent by hand
        conn.execute(deliveries.insert().values(key="alerts:2026-02-13", channel="email", message_id="<m>",
                                                status="sent", created_at=later, updated_at=later, sent_at=later))
    assert collect_status(engine, settings, now=crafted.NOW).delivery_retries == ()


def test_a_report_retry_runs_however_late_it_comes(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A host asleep for more than an hour past the retry's time made APScheduler drop it: the
    report was never tried again while the daemon ran."""
    from sync_agent.mailer import MailTransientError

    settings, engine = setup(write_config, REPORT)
    d = daemon_at(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    failing_report(monkeypatch, d, MailTransientError("127.0.0.1:25: cannot connect"))
    with pytest.raises(MailTransientError):
        d._report()
    job = d.scheduler.get_job("report:monthly:retry:2026-03")
    assert job is not None and job.misfire_grace_time is None


def sent_report(monkeypatch: pytest.MonkeyPatch, sent: list[str]) -> None:
    import types

    import sync_agent.report as report_package

    def send(_engine: Any, _settings: Any, period: Any, **_kwargs: Any) -> Any:
        sent.append(period.label)
        return types.SimpleNamespace(status="sent", message_id="<m@x>")

    monkeypatch.setattr(report_package, "send_period_report", send)


def test_one_period_s_report_going_does_not_hide_another_s_failure(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.mailer import MailPermanentError

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    failing_report(monkeypatch, d, MailPermanentError("127.0.0.1:25: message refused: 552 too big"))
    with pytest.raises(MailPermanentError):
        d._report()
    clock[0] = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    sent: list[str] = []
    sent_report(monkeypatch, sent)
    d._report()
    assert sent == ["2026-04"]
    [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
    assert note["what"] == "2026-03" and "gave_up_at" in note


def test_the_next_period_s_failure_does_not_replace_this_one_s_retry(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.mailer import MailTransientError

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    failing_report(monkeypatch, d, *[MailTransientError("smtp.example: cannot connect: gaierror")] * 2)
    d.scheduler.start(paused=True)
    try:
        with pytest.raises(MailTransientError):
            d._report()
        clock[0] = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
        with pytest.raises(MailTransientError):
            d._report()
        retries = sorted(j.id for j in d.scheduler.get_jobs() if ":retry" in j.id)
    finally:
        d.scheduler.shutdown(wait=False)
    assert retries == ["report:monthly:retry:2026-03", "report:monthly:retry:2026-04"]
    assert sorted(n["what"] for n in collect_status(engine, settings, now=clock[0]).delivery_retries) == [
        "2026-03", "2026-04"]


def test_the_report_catch_up_sends_the_period_it_was_scheduled_for(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scheduled at 23:59 on the 14th for November's, it ran at 00:01 and sent December's early,
    and November's never."""
    settings, engine = setup(write_config, REPORT)
    running_since(engine, dt.datetime(2026, 11, 1, 8, 0, tzinfo=ICT))
    sent: list[str] = []
    sent_report(monkeypatch, sent)
    d, clock = ticking(settings, engine, dt.datetime(2026, 12, 14, 23, 59, tzinfo=ICT))
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: False)
    d._schedule_catch_ups(clock[0])
    job = d.scheduler.get_job("report:monthly:catch-up")
    assert job is not None
    clock[0] = dt.datetime(2026, 12, 15, 0, 1, tzinfo=ICT)
    job.func()
    assert sent == ["2026-11"]


def test_a_digest_failing_on_a_busy_store_is_tried_again(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import sync_agent.reconcile as reconcile_module

    settings, engine = setup(write_config, '[[alerts.webhooks]]\nurl = "http://127.0.0.1:9/hook"\n')
    d = daemon_at(settings, engine, crafted.NOW)

    def busy(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(reconcile_module, "reconcile", busy)
    with pytest.raises(OperationalError):
        d._digest()
    assert d.scheduler.get_job("alerts:digest:retry") is not None
    assert retry_note(d)["error"] == "OperationalError: database is locked"


def test_a_digest_that_may_have_gone_is_not_retried_and_status_says_how_to_resend_it(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook's answer timed out after the body went: every retry met DeliveryInDoubt until
    the night, and status then advised a plain --send, which the outbox refuses."""
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    calls: list[int] = []

    def send(self: Any, message: Any) -> None:
        calls.append(1)
        raise WebhookError(f"{message.url}: ReadTimeout waiting for the answer", delivered=None)

    monkeypatch.setattr(WebhookNotifier, "send", send)
    settings, engine = setup(write_config, '[[alerts.webhooks]]\nurl = "http://127.0.0.1:9/hook"\n')
    crafted.load(engine)
    d = daemon_at(settings, engine, crafted.NOW)
    d._digest()
    assert d.scheduler.get_job("alerts:digest:retry") is None and len(calls) == 1
    note = retry_note(d)
    assert note["in_doubt"] and "gave_up_at" in note
    assert ("check with the recipients that it did not arrive, then sync-agent alerts --send --date 2026-02-12 "
            "--force") in status_text(collect_status(engine, settings, now=crafted.NOW))


def test_a_report_retry_that_must_wait_leaves_no_retry_promise(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.mailer import MailTransientError

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    failing_report(monkeypatch, d, MailTransientError("127.0.0.1:25: cannot connect"))
    with pytest.raises(MailTransientError):
        d._report()
    clock[0] = dt.datetime(2026, 3, 15, 8, 15, tzinfo=ICT)
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: True)  # a source fell behind
    from sync_agent.report.period import Period

    d._report(Period.parse("2026-03", 15))
    assert collect_status(engine, settings, now=clock[0]).delivery_retries == ()


def test_a_digest_in_doubt_on_one_channel_is_resent_on_that_one_only(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--force` resends every channel: the advice names the one in doubt."""
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    original = WebhookNotifier.send
    bad_url = "http://127.0.0.1:9/hook"

    def send(self: Any, message: Any) -> None:
        if message.url == bad_url:
            raise WebhookError(f"{message.url}: ReadTimeout waiting for the answer", delivered=None)
        original(self, message)

    with webhook_receiver() as ok:
        monkeypatch.setattr(WebhookNotifier, "send", send)
        settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{ok.url}"\n'
                                               f'[[alerts.webhooks]]\nurl = "{bad_url}"\n')
        crafted.load(engine)
        daemon_at(settings, engine, crafted.NOW)._digest()
        assert len(ok.requests) == 1
    text = status_text(collect_status(engine, settings, now=crafted.NOW))
    assert f"sync-agent alerts --send --date 2026-02-12 --force --channel webhook:{bad_url}" in text


def test_a_report_being_sent_by_a_person_when_its_retry_comes_is_tried_again(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Read 'tries again at 08:15', a person ran `report --send` at 08:15: the retry met their
    row 'sending' and was given up as in doubt; their send then failed too, and nothing was left."""
    import sync_agent.report.deliver as deliver_module
    from sync_agent.mailer import DeliveryInDoubt, MailTransientError
    from sync_agent.report import send_period_report
    from sync_agent.report.period import Period

    settings, engine = setup(write_config, REPORT)
    d, clock = ticking(settings, engine, dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT))
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: False)

    def smtp_down(*_args: Any, **_kwargs: Any) -> None:
        raise MailTransientError("smtp.example:25: cannot connect")

    monkeypatch.setattr(deliver_module, "send_email", smtp_down)
    with pytest.raises(MailTransientError):
        d._report()
    retry = d.scheduler.get_job("report:monthly:retry:2026-03")
    assert retry is not None
    clock[0] = dt.datetime(2026, 3, 15, 8, 15, tzinfo=ICT)

    def person_s_smtp(*_args: Any, **_kwargs: Any) -> None:  # the daemon's retry fires meanwhile
        with pytest.raises(DeliveryInDoubt):
            retry.func()
        raise MailTransientError("smtp.example:25: cannot connect")

    monkeypatch.setattr(deliver_module, "send_email", person_s_smtp)
    with pytest.raises(MailTransientError):
        send_period_report(engine, settings, Period.parse("2026-03", 15), now=clock[0])
    assert d.scheduler.get_job("report:monthly:retry:2026-03") is not None
    assert "at" in retry_note(d) and not retry_note(d).get("in_doubt")


def test_a_digest_retry_runs_however_late_it_comes(write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, '[[alerts.webhooks]]\nurl = "http://127.0.0.1:9/hook"\n')
    d = daemon_at(settings, engine, crafted.NOW)
    d._retry_later("alerts:digest", crafted.TODAY, lambda: None, crafted.NOW, error="WebhookError: HTTP 503")
    job = d.scheduler.get_job("alerts:digest:retry")
    assert job is not None and job.misfire_grace_time is None  # past midnight the day check drops it


def test_one_period_s_check_keeps_another_period_s_wait(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting, report_waiting

    _settings, engine = setup(write_config, REPORT)
    at = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    mark_report_waiting(engine, Period.parse("2026-04", 15), ("residence",), at)
    mark_report_waiting(engine, Period.parse("2026-03", 15), (), at)  # March's retry: nothing behind it
    waiting = report_waiting(engine)
    assert waiting is not None and waiting["period"] == "2026-04"


def test_a_retry_a_stopped_daemon_left_is_shown_as_given_up_after_a_restart(
        write_config: Callable[..., Path]) -> None:
    """Started again on 15/04 before April's send time, the daemon catches up no older report:
    March's note was dropped, and March was never sent nor shown."""
    settings, engine = setup(write_config, REPORT)
    march = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    d = daemon_at(settings, engine, march)
    d._retry_later("report:monthly", march.date(), lambda: None, march, what="2026-03",
                   error="MailTransientError: cannot connect")
    later = dt.datetime(2026, 4, 15, 7, 0, tzinfo=ICT)
    restarted = Daemon(settings, engine, clock=lambda: later)
    restarted.start()
    restarted.scheduler.shutdown(wait=False)
    [note] = collect_status(engine, settings, now=later).delivery_retries
    assert note["what"] == "2026-03" and "gave_up_at" in note and "at" not in note
    assert "sync-agent report --period 2026-03 --send" in status_text(collect_status(engine, settings, now=later))


def test_a_sources_changes_wait_for_the_reception_registers_sync_running_beside_it(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconciling while one_stop's pages are still coming would flag as bypassed every dossier
    whose reception record is in them, and clear the flags a minute later."""
    from sync_agent import reconcile as reconcile_module
    from sync_agent import sync as sync_module

    settings, engine = setup(write_config, "")
    d = daemon_at(settings, engine, crafted.NOW)
    requested: list[str] = []
    monkeypatch.setattr(d, "request_reconcile", lambda: requested.append("reconcile"))
    reading, release = threading.Event(), threading.Event()

    def fake_sync(engine: Engine, settings: Settings, source: str, stop: object = None) -> Any:
        if source == "one_stop":
            reading.set()
            release.wait(10)
            return SimpleNamespace(status="success", inserted=0, updated=0, quarantined=0)
        return SimpleNamespace(status="success", inserted=3, updated=0, quarantined=0)

    monkeypatch.setattr(sync_module, "sync_source", fake_sync)
    one_stop = threading.Thread(target=d._sync, args=("one_stop",))
    one_stop.start()
    assert reading.wait(10)
    d._sync("civil_status")  # three new records, while one_stop is being read
    assert requested == []
    reconciled: list[int] = []
    monkeypatch.setattr(reconcile_module, "reconcile", lambda engine, tz: reconciled.append(1))
    d._reconcile()  # the hourly run, meanwhile
    assert reconciled == []
    release.set()
    one_stop.join(10)
    assert requested == ["reconcile"]  # one_stop changed nothing, but the civil_status records wait
    d._sync("civil_status")  # one_stop not running: at once
    assert requested == ["reconcile", "reconcile"]
