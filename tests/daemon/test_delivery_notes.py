"""What the daemon notes of a delivery it could not make, and what it does next, in the cases a
restart, a person's hand send, a channel in doubt or a second waiting period make hard."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError

import sync_agent.daemon as daemon_mod
from sync_agent.alerts import digest_key
from sync_agent.config import Settings
from sync_agent.daemon import Daemon, job_specs
from sync_agent.mailer import DeliveryInDoubt
from sync_agent.status import collect_status
from sync_agent.status import render_text as status_text
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.state import read_states
from sync_agent.store.tables import deliveries, sync_runs
from tests.daemon import crafted
from tests.daemon.crafted import ICT
from tests.daemon.receiver import webhook_receiver
from tests.daemon.test_jobs import REPORT, daemon_at, setup, ticking


def on_two_webhooks(write_config: Callable[..., Path], a: Any, b: Any) -> tuple[Settings, Engine]:
    """Settings sending the digest to webhooks ``a`` and ``b``, and the crafted store."""
    settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{a.url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{b.url}"\n')
    crafted.load(engine)
    return settings, engine


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- 1: start() resurrects the note of a delivery sent by hand while the daemon was down -----

def test_a_report_sent_by_hand_while_the_daemon_was_down_stays_settled_after_a_restart(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    march = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    d = daemon_at(settings, engine, march)
    d._retry_later("report:monthly", march.date(), lambda: None, march, what="2026-03",
                   error="MailTransientError: cannot connect")
    time.sleep(0.01)
    # the daemon is stopped; a person runs `report --period 2026-03 --send`, and it goes
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<m@x>", status="sent", attempts=1,
            created_at=_utcnow(), updated_at=_utcnow(), sent_at=_utcnow()))
    time.sleep(0.01)
    later = dt.datetime(2026, 3, 15, 10, 0, tzinfo=ICT)
    assert collect_status(engine, settings, now=later).delivery_retries == ()  # moot: hidden
    restarted = Daemon(settings, engine, clock=lambda: later)
    restarted.start()
    restarted.scheduler.shutdown(wait=False)
    assert restarted.scheduler.get_job("report:monthly:catch-up") is None  # delivered: no catch-up
    assert collect_status(engine, settings, now=later).delivery_retries == ()


def test_a_digest_sent_by_hand_while_the_daemon_was_down_stays_settled_after_a_restart(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, '[[alerts.webhooks]]\nurl = "http://127.0.0.1:9/hook"\n')
    d = daemon_at(settings, engine, crafted.NOW)
    d._retry_later("alerts:digest", crafted.TODAY, lambda: None, crafted.NOW, error="WebhookError: HTTP 503")
    time.sleep(0.01)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key=digest_key(crafted.TODAY), channel="webhook:http://127.0.0.1:9/hook", message_id="<m@x>",
            status="sent", attempts=1, created_at=_utcnow(), updated_at=_utcnow(), sent_at=_utcnow()))
    time.sleep(0.01)
    later = crafted.NOW + dt.timedelta(hours=2)
    assert collect_status(engine, settings, now=later).delivery_retries == ()
    restarted = Daemon(settings, engine, clock=lambda: later)
    restarted.start()
    restarted.scheduler.shutdown(wait=False)
    assert collect_status(engine, settings, now=later).delivery_retries == ()


# --- 2: in-doubt digest advice drops a channel that failed for another reason --------------

def test_the_advice_for_a_digest_in_doubt_also_names_a_channel_refused_meanwhile(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    doubt_url, refused_url = "http://127.0.0.1:9/doubt", "http://127.0.0.1:9/refused"

    def send(self: Any, message: Any) -> None:
        if message.url == doubt_url:
            raise WebhookError(f"{message.url}: ReadTimeout waiting for the answer", delivered=None)
        raise WebhookError(f"{message.url}: HTTP 404 (not retried)", refused_for_good=True)

    monkeypatch.setattr(WebhookNotifier, "send", send)
    settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{doubt_url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{refused_url}"\n')
    crafted.load(engine)
    daemon_at(settings, engine, crafted.NOW)._digest()
    later = crafted.NOW + dt.timedelta(hours=1)
    text = status_text(collect_status(engine, settings, now=later))
    assert f"--force --channel webhook:{doubt_url}" in text
    assert f"sync-agent alerts --send --date 2026-02-12 --channel webhook:{refused_url}" in text


# --- 3: _being_sent counts the daemon's own in-doubt row (any channel) as "a person's send" ---

def test_a_channel_the_daemon_itself_left_in_doubt_is_not_taken_for_a_send_under_way(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent import notifiers
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    original = WebhookNotifier.send
    with webhook_receiver() as a, webhook_receiver(statuses=[503] * 4) as b:
        def send(self: Any, message: Any) -> None:
            original(self, message)  # the body reached the receiver...
            if message.url == a.url:  # ...but for A the answer never came back
                raise WebhookError(f"{message.url}: ReadTimeout waiting for the answer", delivered=None)

        monkeypatch.setattr(WebhookNotifier, "send", send)
        settings, engine = on_two_webhooks(write_config, a, b)
        d, clock = ticking(settings, engine, crafted.NOW)
        d._digest()  # A in doubt, B 503: retried (B may pass)
        assert d.scheduler.get_job("alerts:digest:retry") is not None
        # the retry, 15 min after the job started: A's row (written when A failed) is < 15 min old
        with write_transaction(engine) as conn:
            conn.execute(update(deliveries).where(deliveries.c.channel == f"webhook:{a.url}")
                         .values(updated_at=_utcnow() - dt.timedelta(minutes=14, seconds=30)))
        clock[0] = crafted.NOW + dt.timedelta(minutes=15)
        d.scheduler.get_job("alerts:digest:retry").func()
        assert len(b.requests) == 5  # B went on this retry
        [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
        assert note.get("in_doubt") and note.get("channels") == [f"webhook:{a.url}"] and "at" not in note
        assert len(a.requests) == 1  # never sent twice


def test_an_old_channel_in_doubt_and_a_fresh_one_of_the_daemon_s_own_are_left_to_a_person(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A: left 'sending' an hour ago (a process died). B: the daemon's own read timeout now. B's
    fresh row made A look 'being sent', and the digest was retried though nobody was sending."""
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    a_url, b_url = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"

    def send(self: Any, message: Any) -> None:
        raise WebhookError(f"{message.url}: ReadTimeout waiting for the answer", delivered=None)

    monkeypatch.setattr(WebhookNotifier, "send", send)
    settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{a_url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{b_url}"\n')
    crafted.load(engine)
    with write_transaction(engine) as conn:
        old = _utcnow() - dt.timedelta(hours=1)
        conn.execute(deliveries.insert().values(
            key=digest_key(crafted.TODAY), channel=f"webhook:{a_url}", message_id="<a@x>", status="sending",
            attempts=1, created_at=old, updated_at=old))
    d = daemon_at(settings, engine, crafted.NOW)
    d._digest()
    [note] = collect_status(engine, settings, now=crafted.NOW).delivery_retries
    assert note.get("in_doubt") and "at" not in note


# --- 4: one waiting slot for two periods ------------------------------------------------------

def test_two_periods_waiting_keep_each_its_own_since(write_config: Callable[..., Path]) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting, report_waiting

    _settings, engine = setup(write_config, REPORT)
    t1 = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), t1)
    t2 = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    mark_report_waiting(engine, Period.parse("2026-04", 15), ("residence",), t2)
    t3 = t2 + dt.timedelta(minutes=30)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), t3)
    w = report_waiting(engine)  # the earliest waiting period, since it began
    assert w is not None and w["period"] == "2026-03" and w["since"] == t1.isoformat()


def test_a_restart_after_the_daemon_s_own_report_in_doubt_does_not_catch_it_up(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.daemon import due_unsent_report
    from sync_agent.store.tables import sync_runs

    settings, engine = setup(write_config, REPORT)
    at = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    period = due_unsent_report(engine, settings, at)
    with write_transaction(engine) as conn:  # the agent existed before the report fell due
        conn.execute(sync_runs.insert().values(source="residence", started_at=at - dt.timedelta(days=40),
                                               status="success"))
        # the daemon's own send, cut off after DATA (MailInDoubt) two minutes ago
        young = _utcnow() - dt.timedelta(minutes=2)
        conn.execute(deliveries.insert().values(
            key=f"report:{period.label}", channel="email", message_id="<r@x>", status="sending",
            attempts=1, created_at=young, updated_at=young, error="MailInDoubt: connection lost"))
    d = daemon_at(settings, engine, at)
    d._give_up("report:monthly", period.label, "MailInDoubt: connection lost", at, in_doubt=True)
    later = at + dt.timedelta(minutes=3)
    restarted = Daemon(settings, engine, clock=lambda: later)
    monkeypatch.setattr(restarted, "_report_must_wait", lambda period, now: False)
    real_start = restarted.scheduler.start
    monkeypatch.setattr(restarted.scheduler, "start", lambda *a, **k: real_start(paused=True))
    restarted.start()
    assert restarted.scheduler.get_job("report:monthly:catch-up") is None  # in doubt: for a person
    restarted.scheduler.shutdown(wait=False)
    [note] = collect_status(engine, settings, now=later).delivery_retries
    assert note.get("in_doubt") and "at" not in note


def test_a_digest_retry_run_the_next_day_keeps_the_note_of_the_channel_that_never_got_it(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent import notifiers

    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    with webhook_receiver() as a, webhook_receiver(statuses=[503] * 8) as b:
        settings, engine = on_two_webhooks(write_config, a, b)
        d, clock = ticking(settings, engine, crafted.NOW)
        d._digest()
        assert len(a.requests) == 1
        [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
        assert "at" in note
        clock[0] = crafted.NOW + dt.timedelta(days=1)  # the host slept: the retry runs the next morning
        d.scheduler.get_job("alerts:digest:retry").func()
        [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
        assert note.get("other_channels") == [f"webhook:{b.url}"] and "at" not in note


def test_a_channel_in_the_advice_is_quoted_for_the_shell() -> None:
    import subprocess

    from sync_agent.status import _by_hand

    url = "https://sms.example.vn/api/send?key=abc&to=0900"
    advice = _by_hand({"job": "alerts:digest", "what": "2026-02-12", "in_doubt": True,
                       "channels": [f"webhook:{url}"]})
    command = advice.split("then ", 1)[1].split(" (the next", 1)[0]
    out = subprocess.run(["bash", "-c", command.replace("sync-agent", "printf '<%s>\\n'", 1)],
                         capture_output=True, text=True).stdout
    assert f"<webhook:{url}>" in out


def _ran_long_before(engine: Any) -> None:
    from sync_agent.store.tables import sync_runs

    with write_transaction(engine) as conn:  # the agent has run since long before
        conn.execute(sync_runs.insert().values(source="residence", status="success",
                                               started_at=dt.datetime(2026, 1, 1, tzinfo=ICT)))


def paused(d: Daemon, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """``d`` whose scheduler starts paused: its catch-ups are scheduled, not run."""
    start = d.scheduler.start
    monkeypatch.setattr(d.scheduler, "start", lambda *a, **k: start(paused=True))
    return d


def test_a_wait_no_catch_up_covers_becomes_a_note_to_send_it_by_hand(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """March waited for its sources when the daemon stopped; started again after April's send
    time, it catches up April only: March's wait was shown (and promised to go by itself) for ever."""
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    march = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), march)
    april = dt.datetime(2026, 4, 15, 9, 0, tzinfo=ICT)
    restarted = paused(Daemon(settings, engine, clock=lambda: april), monkeypatch)
    restarted.start()
    restarted.scheduler.shutdown(wait=False)
    st = collect_status(engine, settings, now=april)
    assert st.report_waiting is None  # April's own catch-up has not run yet
    [note] = st.delivery_retries
    assert note["what"] == "2026-03" and "waited for residence" in note["error"] and "gave_up_at" in note
    assert "sync-agent report --period 2026-03 --send" in status_text(st)


def test_an_earlier_release_s_single_wait_of_another_period_is_its_own(write_config: Callable[..., Path]) -> None:
    import json

    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting, report_waiting
    from sync_agent.store.state import write_state

    _settings, engine = setup(write_config, REPORT)
    at = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    with write_transaction(engine) as conn:
        write_state(conn, "report_waiting", json.dumps({"period": "2026-04", "sources": ["residence"],
                                                        "since": "2026-04-15T08:00:00+07:00"}), at)
    mark_report_waiting(engine, Period.parse("2026-04", 15), ("one_stop",), at + dt.timedelta(minutes=30))
    w = report_waiting(engine)
    assert w is not None and (w["period"], w["sources"], w["since"]) == (
        "2026-04", ["one_stop"], "2026-04-15T08:00:00+07:00")


def test_a_digest_retry_run_the_next_day_keeps_a_channel_the_store_never_recorded(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    import sync_agent.mailer as mailer
    from sync_agent import notifiers

    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    with webhook_receiver() as a, webhook_receiver() as b:
        settings, engine = on_two_webhooks(write_config, a, b)
        real_claim = mailer._claim

        def claim(engine: Any, key: str, channel: str, **kw: Any) -> Any:
            if channel == f"webhook:{b.url}":  # the store busy just when B is claimed: no row
                raise OperationalError("INSERT", {}, Exception("database is locked"))
            return real_claim(engine, key, channel, **kw)

        monkeypatch.setattr(mailer, "_claim", claim)
        clock = [crafted.NOW]
        d = Daemon(settings, engine, clock=lambda: clock[0])
        d._digest()
        clock[0] = crafted.NOW + dt.timedelta(days=1)
        d.scheduler.get_job("alerts:digest:retry").func()
    [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
    assert note.get("other_channels") == [f"webhook:{b.url}"]


def test_a_person_s_send_under_way_when_the_daemon_starts_is_still_caught_up(
        write_config: Callable[..., Path]) -> None:
    """Its row young and with no failure recorded: being sent now. If it fails, the catch-up,
    meeting it, tries again later; the daemon's own send left in doubt records why, and is not."""
    from sync_agent.daemon import due_unsent_report

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    at = dt.datetime(2026, 3, 15, 9, 0, tzinfo=ICT)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sending", attempts=1,
            created_at=_utcnow(), updated_at=_utcnow()))
    assert due_unsent_report(engine, settings, at) is not None
    with write_transaction(engine) as conn:
        conn.execute(update(deliveries).values(error="MailInDoubt: connection lost after the message went"))
    assert due_unsent_report(engine, settings, at) is None


def test_a_retry_note_of_a_report_left_sending_turns_in_doubt_at_a_restart(
        write_config: Callable[..., Path]) -> None:
    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    march = dt.datetime(2026, 3, 15, 8, 0, tzinfo=ICT)
    d = daemon_at(settings, engine, march)
    d._retry_later("report:monthly", march.date(), lambda: None, march, what="2026-03",
                   error="MailTransientError: cannot connect")
    t = (march + dt.timedelta(minutes=15)).astimezone(dt.UTC)
    with write_transaction(engine) as conn:  # its retry's send, cut off after DATA (the power went)
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sending", attempts=2,
            created_at=t, updated_at=t))
    later = march + dt.timedelta(hours=2)
    restarted = Daemon(settings, engine, clock=lambda: later)
    restarted.start()
    restarted.scheduler.shutdown(wait=False)
    [note] = collect_status(engine, settings, now=later).delivery_retries
    assert note.get("in_doubt") and "--send --force" in status_text(collect_status(engine, settings, now=later))


def test_a_restart_catches_up_today_s_digest_one_channel_of_which_never_got_it(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent import notifiers

    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    with webhook_receiver() as a, webhook_receiver(statuses=[503] * 4) as b:
        settings, engine = on_two_webhooks(write_config, a, b)
        daemon_at(settings, engine, crafted.NOW)._digest()
        later = crafted.NOW + dt.timedelta(minutes=10)
        restarted = paused(Daemon(settings, engine, clock=lambda: later), monkeypatch)
        restarted.start()
        job = restarted.scheduler.get_job("alerts:digest:catch-up")
        restarted.scheduler.shutdown(wait=False)
    assert job is not None


def _waits(engine: Any) -> dict[str, str]:
    with read_connection(engine) as conn:
        return read_states(conn, "report_waiting")


def test_a_wait_is_kept_when_its_note_cannot_be_written(write_config: Callable[..., Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), dt.datetime(2026, 3, 15, 8, tzinfo=ICT))
    real = daemon_mod.write_state

    def flaky(conn: Any, name: str, value: str, at: Any) -> None:
        if name.startswith("delivery_retry:report:monthly:2026-03"):
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        real(conn, name, value, at)

    monkeypatch.setattr(daemon_mod, "write_state", flaky)
    april = dt.datetime(2026, 4, 15, 9, 0, tzinfo=ICT)
    d = paused(Daemon(settings, engine, clock=lambda: april), monkeypatch)
    with pytest.raises(OperationalError):  # the start fails (systemd starts it again), nothing lost
        d.start()
    assert any(json.loads(v).get("period") == "2026-03" for v in _waits(engine).values())


def test_the_wait_of_a_period_whose_report_is_in_doubt_becomes_an_in_doubt_note(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), dt.datetime(2026, 3, 15, 8, tzinfo=ICT))
    old = _utcnow() - dt.timedelta(days=3)
    with write_transaction(engine) as conn:  # a person's `report --period 2026-03 --send`, cut off after DATA
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sending", attempts=1,
            created_at=old, updated_at=old, error="MailInDoubt: connection lost"))
    april = dt.datetime(2026, 4, 15, 9, 0, tzinfo=ICT)
    d = paused(Daemon(settings, engine, clock=lambda: april), monkeypatch)
    d.start()
    d.scheduler.shutdown(wait=False)
    st = collect_status(engine, settings, now=april)
    [march] = [n for n in st.delivery_retries if n.get("what") == "2026-03"]
    assert march.get("in_doubt") and "--send --force" in status_text(st)


def test_the_latest_period_s_wait_no_catch_up_covers_becomes_a_note(write_config: Callable[..., Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting, report_waiting

    settings, engine = setup(write_config, REPORT)
    due = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    with write_transaction(engine) as conn:  # installed just before: the first sync began a second late
        conn.execute(sync_runs.insert().values(source="residence", status="running",
                                               started_at=due + dt.timedelta(seconds=1)))
    mark_report_waiting(engine, Period.parse("2026-04", 15), ("residence",), due)  # the 08:00 job waited
    later = due + dt.timedelta(hours=1)
    d = paused(Daemon(settings, engine, clock=lambda: later), monkeypatch)
    d.start()
    job = d.scheduler.get_job("report:monthly:catch-up")
    d.scheduler.shutdown(wait=False)
    assert job is None and report_waiting(engine) is None  # no catch-up: nothing says it goes by itself


def test_a_digest_given_up_at_the_end_of_its_day_keeps_the_channel_in_doubt(write_config: Callable[..., Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    a_url, b_url = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"

    def send(self: Any, message: Any) -> None:
        if message.url == a_url:
            raise WebhookError(f"{a_url}: ReadTimeout waiting for the answer", delivered=None)
        raise WebhookError(f"{b_url}: HTTP 503 after 4 attempt(s)")

    monkeypatch.setattr(WebhookNotifier, "send", send)
    settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{a_url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{b_url}"\n')
    crafted.load(engine)
    late = dt.datetime.combine(crafted.TODAY, dt.time(23, 50), tzinfo=ICT)
    d = Daemon(settings, engine, clock=lambda: late)
    d.specs = job_specs(settings, late)
    d._digest()
    [note] = collect_status(engine, settings, now=late).delivery_retries
    assert note.get("in_doubt") and note.get("channels") == [f"webhook:{a_url}"]
    assert note.get("other_channels") == [f"webhook:{b_url}"]


def test_a_report_whose_sender_was_killed_mid_send_is_retried_then_left_in_doubt_never_resent(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    young = _utcnow() - dt.timedelta(minutes=2)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sending", attempts=1,
            created_at=young, updated_at=young))
    at = dt.datetime(2026, 3, 15, 8, 5, tzinfo=ICT)
    clock = [at]
    d = paused(Daemon(settings, engine, clock=lambda: clock[0]), monkeypatch)
    monkeypatch.setattr(d, "_report_must_wait", lambda period, now: False)
    d.start()
    job = d.scheduler.get_job("report:monthly:catch-up")
    assert job is not None
    with pytest.raises(DeliveryInDoubt):
        job.func()
    [note] = collect_status(engine, settings, now=at).delivery_retries
    assert "at" in note and not note.get("in_doubt")  # shown as a retry, not in doubt, meanwhile
    # 16 min later: the row is old, the retry gives up in doubt (nothing resent)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.update().values(updated_at=_utcnow() - dt.timedelta(minutes=18)))
    clock[0] = at + dt.timedelta(minutes=17)
    with pytest.raises(DeliveryInDoubt):
        d.scheduler.get_job("report:monthly:retry:2026-03").func()
    d.scheduler.shutdown(wait=False)
    [note] = collect_status(engine, settings, now=clock[0]).delivery_retries
    assert note.get("in_doubt") and "at" not in note
    with read_connection(engine) as conn:
        row = conn.execute(deliveries.select()).one()
    assert row.attempts == 1 and row.status == "sending"


def test_with_no_channel_there_is_no_digest_to_catch_up(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, engine = setup(write_config, "")
    d = paused(Daemon(settings, engine, clock=lambda: crafted.NOW + dt.timedelta(hours=3)), monkeypatch)
    d.start()
    job = d.scheduler.get_job("alerts:digest:catch-up")
    d.scheduler.shutdown(wait=False)
    assert job is None
    assert daemon_mod.fully_sent(engine, settings, digest_key(crafted.TODAY)) is False


def test_the_wait_of_a_period_whose_report_went_is_forgotten_without_a_note(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), dt.datetime(2026, 3, 15, 8, tzinfo=ICT))
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sent", attempts=1,
            created_at=_utcnow(), updated_at=_utcnow(), sent_at=_utcnow()))
    april = dt.datetime(2026, 4, 15, 9, 0, tzinfo=ICT)
    for _ in range(2):
        d = paused(Daemon(settings, engine, clock=lambda: april), monkeypatch)
        d.start()
        d.scheduler.shutdown(wait=False)
    assert _waits(engine) == {}
    assert collect_status(engine, settings, now=april).delivery_retries == ()


def test_an_older_wait_becomes_a_note_even_with_a_send_under_way(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """March waited; at April's restart a person's `report --period 2026-03 --send` is under way,
    so March's wait is kept. That send then fails: nothing of the daemon will ever check March
    again, yet status and every digest say March WAITS (the digest: 'will be sent automatically')."""
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting, report_waiting

    settings, engine = setup(write_config, REPORT)
    _ran_long_before(engine)
    mark_report_waiting(engine, Period.parse("2026-03", 15), ("residence",), dt.datetime(2026, 3, 15, 8, tzinfo=ICT))
    young = _utcnow() - dt.timedelta(seconds=5)
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(
            key="report:2026-03", channel="email", message_id="<r@x>", status="sending", attempts=1,
            created_at=young, updated_at=young))
    april = dt.datetime(2026, 4, 15, 9, 0, tzinfo=ICT)
    d = paused(Daemon(settings, engine, clock=lambda: april), monkeypatch)
    d.start()
    jobs = [j.id for j in d.scheduler.get_jobs()]
    d.scheduler.shutdown(wait=False)
    assert not any("2026-03" in j for j in jobs)  # no catch-up covers March: a note says so
    with write_transaction(engine) as conn:              # the person's send fails (SMTP refused)
        conn.execute(deliveries.update().values(status="failed", error="MailPermanentError: 550",
                                                updated_at=_utcnow()))
    st = collect_status(engine, settings, now=april)
    text = status_text(st)
    assert report_waiting(engine) is None and "report 2026-03 WAITING" not in text
    assert [n for n in st.delivery_retries if n.get("what") == "2026-03"]  # if that send fails: by hand


def test_a_new_install_s_wait_for_the_report_the_ward_filed_by_hand_leaves_no_note(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    settings, engine = setup(write_config, REPORT)
    due = dt.datetime(2026, 4, 15, 8, 0, tzinfo=ICT)
    with write_transaction(engine) as conn:
        conn.execute(sync_runs.insert().values(source="residence", status="running",
                                               started_at=due + dt.timedelta(seconds=1)))
    mark_report_waiting(engine, Period.parse("2026-04", 15), ("residence",), due)
    later = due + dt.timedelta(hours=1)
    d = paused(Daemon(settings, engine, clock=lambda: later), monkeypatch)
    d.start()
    d.scheduler.shutdown(wait=False)
    # a month later, the ward having filed April as before (outside the agent), status still says:
    may = dt.datetime(2026, 5, 20, 9, 0, tzinfo=ICT)
    text = status_text(collect_status(engine, settings, now=may))
    assert "waited for residence" not in text and "sync-agent report --period 2026-04 --send" not in text


def test_a_channel_a_person_is_sending_now_is_not_called_in_doubt(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from sync_agent.alerts import digest_key
    from sync_agent.notifiers import WebhookError, WebhookNotifier

    a_url, b_url = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"

    def send(self: Any, message: Any) -> None:
        raise WebhookError(f"{message.url}: HTTP 503 after 4 attempt(s)")

    monkeypatch.setattr(WebhookNotifier, "send", send)
    settings, engine = setup(write_config, f'[[alerts.webhooks]]\nurl = "{a_url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{b_url}"\n')
    crafted.load(engine)
    late = dt.datetime.combine(crafted.TODAY, dt.time(23, 50), tzinfo=ICT)
    young = _utcnow() - dt.timedelta(seconds=5)
    with write_transaction(engine) as conn:  # a person's `alerts --send --channel webhook:a`, under way
        conn.execute(deliveries.insert().values(
            key=digest_key(crafted.TODAY), channel=f"webhook:{a_url}", message_id="<d@x>", status="sending",
            attempts=1, created_at=young, updated_at=young))
    d = Daemon(settings, engine, clock=lambda: late)
    d.specs = job_specs(settings, late)
    d._digest()
    st = collect_status(engine, settings, now=late)
    text = status_text(st)
    [note] = st.delivery_retries
    assert not note.get("in_doubt") and f"--force --channel webhook:{a_url}" not in text
