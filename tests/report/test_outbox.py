"""The outbox (``mailer.deliver_once``): at most once per (key, channel), whatever fails where."""

from __future__ import annotations

import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from sync_agent.locks import advisory_key
from sync_agent.mailer import DeliveryInDoubt, MailInDoubt, deliver_once, message_id, outbox_row

NOW = dt.datetime(2026, 2, 15, 8, 0, tzinfo=dt.UTC)


class Channel:
    """A fake channel: records what it was asked to send; can fail on demand."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.built: list[str] = []
        self.fail: BaseException | None = None

    def build(self, mid: str) -> str:
        self.built.append(mid)
        return f"message {mid}"

    def send(self, message: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(message)


class Undelivered(Exception):
    delivered = False


class Unknown(Exception):
    delivered = None


def test_once_then_already_sent(engine: Engine) -> None:
    ch = Channel()
    first = deliver_once(engine, "alerts:2026-02-16", "email", ch.build, ch.send, now=NOW)
    second = deliver_once(engine, "alerts:2026-02-16", "email", ch.build, ch.send, now=NOW)
    assert (first.status, second.status, second.already_sent) == ("sent", "already_sent", True)
    assert ch.sent == [f"message {first.message_id}"] and len(ch.built) == 1
    assert first.message_id == "<sync-agent.alerts-2026-02-16@sync-agent.invalid>"


def test_failure_that_sent_nothing_is_retried_with_the_same_id(engine: Engine) -> None:
    ch = Channel()
    ch.fail = Undelivered("SMTP 451 try later")
    with pytest.raises(Undelivered):
        deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW)
    row = outbox_row(engine, "k")
    assert row is not None and (row.status, row.attempts) == ("failed", 1) and "451" in (row.error or "")
    ch.fail = None
    result = deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW)
    assert result.status == "sent" and result.attempts == 2 and ch.built == [result.message_id] * 2
    row = outbox_row(engine, "k")
    assert row is not None and row.status == "sent" and row.error is None and row.sent_at is not None


def test_unknown_outcome_needs_force_and_keeps_the_id(engine: Engine) -> None:
    ch = Channel()
    ch.fail = Unknown("connection lost after DATA")
    with pytest.raises(Unknown):
        deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW)
    ch.fail = None
    ward_now = NOW.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    with pytest.raises(DeliveryInDoubt, match="may have been sent") as refused:
        deliver_once(engine, "k", "email", ch.build, ch.send, now=ward_now)
    assert ch.sent == []
    row = outbox_row(engine, "k")
    assert row is not None
    # in the ward's time, as every time staff and operators read
    shown = row.updated_at.astimezone(ward_now.tzinfo).isoformat(timespec="seconds")
    assert shown.endswith("+07:00") and f"was being sent at {shown}" in str(refused.value)
    # a send cut off and one still under way look alike but for the time, which the reader has
    assert "it may have been sent (if that was moments ago, another process may still be sending it)" in str(
        refused.value)
    forced = deliver_once(engine, "k", "email", ch.build, ch.send, force=True, now=NOW)
    assert forced.status == "sent" and forced.message_id == ch.built[0]


def test_failed_build_sends_nothing_and_is_retried(engine: Engine) -> None:
    ch = Channel()

    def broken(mid: str) -> str:
        raise ValueError("template error")

    with pytest.raises(ValueError):
        deliver_once(engine, "k", "email", broken, ch.send, now=NOW)
    row = outbox_row(engine, "k")
    assert row is not None and row.status == "failed" and "template error" in (row.error or "")
    assert deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW).status == "sent"


class Killed(BaseException):
    """The process dying at that instant: no handler runs."""


def test_a_process_killed_while_writing_the_message_left_nothing_in_doubt(engine: Engine) -> None:
    """Nothing reached the server: the next send goes without --force (a kill while building the
    report's HTML and spreadsheet used to leave it 'sending', refused until a person forced it)."""
    ch = Channel()

    def killed(mid: str) -> str:
        raise Killed

    with pytest.raises(Killed):
        deliver_once(engine, "report:2026-02", "email", killed, ch.send, now=NOW)
    row = outbox_row(engine, "report:2026-02")
    assert row is not None and row.status == "preparing"
    result = deliver_once(engine, "report:2026-02", "email", ch.build, ch.send, now=NOW)
    assert result.status == "sent" and ch.sent == [f"message {result.message_id}"]


def test_a_sender_that_lost_its_claim_while_writing_sends_nothing(engine: Engine) -> None:
    """Another process took over a row left 'preparing' (its owner seemed dead but was only
    slow): of the two, only the one holding the claim sends; the other finds it sent."""
    ch = Channel()
    taken: list[str] = []

    def slow_build(mid: str) -> str:
        if not taken:  # meanwhile another process takes the row over and sends
            taken.append(deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW).status)
        return ch.build(mid)

    result = deliver_once(engine, "k", "email", slow_build, ch.send, now=NOW)
    assert result.already_sent and taken == ["sent"] and len(ch.sent) == 1


def test_a_delivery_confirmed_after_a_forced_resend_took_the_row_stays_sent(engine: Engine) -> None:
    """A person forced a resend while the first process was still talking to the server; the
    forced one failed, the first one went. The row must say sent, or the daemon's next try sends
    the report a second time."""
    delivered: list[str] = []

    def forced_send(message: str) -> None:
        raise Undelivered("server busy")

    def slow_send(message: str) -> None:
        with pytest.raises(Undelivered):
            deliver_once(engine, "report:2026-02", "email", Channel().build, forced_send, force=True, now=NOW)
        delivered.append(message)

    first = deliver_once(engine, "report:2026-02", "email", Channel().build, slow_send, now=NOW)
    row = outbox_row(engine, "report:2026-02")
    assert first.status == "sent" and row is not None and row.status == "sent"
    again = deliver_once(engine, "report:2026-02", "email", Channel().build, delivered.append, now=NOW)
    assert again.already_sent and len(delivered) == 1


def test_the_outbox_keeps_when_a_message_really_went(engine: Engine) -> None:
    """``now`` is when the job started; building and sending may take minutes after it."""
    ch = Channel()
    before = dt.datetime.now(dt.UTC)
    deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW)
    row = outbox_row(engine, "k")
    assert row is not None and row.created_at == NOW and row.sent_at is not None and row.sent_at >= before


def test_channels_are_independent(engine: Engine) -> None:
    email, hook = Channel(), Channel()
    a = deliver_once(
        engine,
        "alerts:2026-02-16",
        "email",
        email.build,
        email.send,
        now=NOW,
        ward_code="11311",
        domain="example.gov.vn",
    )
    b = deliver_once(
        engine,
        "alerts:2026-02-16",
        "webhook:https://sms.example/hook",
        hook.build,
        hook.send,
        now=NOW,
        ward_code="11311",
        domain="example.gov.vn",
    )
    assert a.message_id != b.message_id and len(email.sent) == len(hook.sent) == 1
    assert a.message_id == "<sync-agent.11311.alerts-2026-02-16@example.gov.vn>"


def test_error_text_is_redacted(engine: Engine) -> None:
    ch = Channel()
    ch.fail = Undelivered("recipient 001203004567@example refused")
    with pytest.raises(Undelivered):
        deliver_once(engine, "k", "email", ch.build, ch.send, now=NOW)
    row = outbox_row(engine, "k")
    assert row is not None and "001203004567" not in (row.error or "")


def test_concurrent_senders_send_once(engine: Engine) -> None:
    ch = Channel()
    slow_send = ch.send

    def send(message: str) -> None:
        time.sleep(0.3)
        slow_send(message)

    outcomes: list[str] = []

    def worker() -> None:
        try:
            outcomes.append(deliver_once(engine, "k", "email", ch.build, send).status)
        except DeliveryInDoubt:
            outcomes.append("in_doubt")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ch.sent) == 1
    assert sorted(outcomes).count("sent") == 1 and len(outcomes) == 4


def test_message_id_shape() -> None:
    assert message_id("report:2026-02", "email", ward_code="11311", domain="example.gov.vn") == (
        "<sync-agent.11311.report-2026-02@example.gov.vn>"
    )
    assert (
        message_id("report:2026-02", "email", generation=3)
        == "<sync-agent.report-2026-02.r3@sync-agent.invalid>"
    )


def test_recording_a_message_of_one_key_as_sent_waits_for_another_doing_the_same(engine: Engine) -> None:
    """On PostgreSQL (read committed) two processes recording two channels of one digest would
    each read the other's row as not sent yet, and neither would move 'since the last digest'."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    ch, followed = Channel(), threading.Event()
    with engine.connect() as other:  # another process, in the middle of recording its channel
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key("outbox:alerts:d")})
        worker = threading.Thread(target=lambda: deliver_once(
            engine, "alerts:d", "email", ch.build, ch.send, now=NOW, on_sent=lambda conn: followed.set()))
        worker.start()
        assert not followed.wait(1.0)  # the message went; recording it waits for the other
        other.commit()
    worker.join(10)
    assert followed.is_set() and len(ch.sent) == 1


def test_a_confirmation_that_lands_late_records_the_message_id_that_went(engine: Engine) -> None:
    """P1 is sending; P2 forces a resend, which goes; P3 forces another and is writing it (under a
    new Message-ID) when P1's confirmation lands. The row says sent under P1's Message-ID, and P3,
    finding it sent, sends nothing and says so (not "in doubt")."""
    went: list[str] = []
    p1_may_finish, p3_may_finish, p3_writing = threading.Event(), threading.Event(), threading.Event()
    p3_result: list[object] = []

    def p1_send(message: str) -> None:
        p1_may_finish.wait(10)
        went.append(message)

    def p3_build(mid: str) -> str:
        p3_writing.set()
        p3_may_finish.wait(10)
        return f"message {mid}"

    p1 = threading.Thread(target=lambda: deliver_once(engine, "k", "email", Channel().build, p1_send, now=NOW))
    p1.start()
    deadline = time.monotonic() + 10
    while (row := outbox_row(engine, "k")) is None or row.status != "sending":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p1_mid = row.message_id
    deliver_once(engine, "k", "email", Channel().build, went.append, force=True, now=NOW)  # P2
    p3 = threading.Thread(target=lambda: p3_result.append(
        deliver_once(engine, "k", "email", p3_build, went.append, force=True, now=NOW)))
    p3.start()
    assert p3_writing.wait(10)
    p1_may_finish.set()
    p1.join(10)
    p3_may_finish.set()
    p3.join(10)
    row = outbox_row(engine, "k")
    assert row is not None and row.status == "sent" and row.message_id == p1_mid
    [result] = p3_result
    assert getattr(result, "already_sent", False) and len(went) == 2  # P1's and P2's, not P3's


def test_a_deliberate_resend_never_reuses_a_message_id_that_went(engine: Engine) -> None:
    """P1's confirmation lands late and records its own (first) Message-ID; a resend numbered
    from that would repeat '.r2', which already went, and mailboxes would drop it."""
    went: list[str] = []
    p1_may_finish, p1_inside = threading.Event(), threading.Event()

    def p1_send(message: str) -> None:
        p1_inside.set()
        assert p1_may_finish.wait(10)
        went.append(message)

    p1 = threading.Thread(target=deliver_once, args=(engine, "k", "email", lambda m: m, p1_send))
    p1.start()
    assert p1_inside.wait(10)
    deliver_once(engine, "k", "email", lambda m: m, went.append, force=True)  # in doubt: same id again
    deliver_once(engine, "k", "email", lambda m: m, went.append, force=True)  # sent: a new id goes

    def p4_build(mid: str) -> str:  # a fourth claims the row; P1's confirmation lands meanwhile
        p1_may_finish.set()
        p1.join(10)
        return mid

    deliver_once(engine, "k", "email", p4_build, went.append, force=True)
    fifth = deliver_once(engine, "k", "email", lambda m: m, went.append, force=True)
    assert went.count(fifth.message_id) == 1, went


def test_a_message_that_went_but_could_not_be_recorded_is_said_to_have_gone(engine: Engine) -> None:
    """The store's server went away between SMTP's acceptance and the outbox's update: the
    error must not read as a plain database failure that a person would answer by resending."""
    from tests.test_sync_errors import refusing_writes

    ch = Channel()
    refuse = refusing_writes(engine)

    def send_then_lose_the_store(message: str) -> None:
        ch.send(message)
        refuse.set()

    with pytest.raises(MailInDoubt, match=r"^the message went \(Message-ID <sync-agent\.k@sync-agent\.invalid>\), "
                                          r"but the store could not record it \(.*\): the outbox still shows it "
                                          r"being sent; do not send it again$"):
        deliver_once(engine, "k", "email", ch.build, send_then_lose_the_store, now=NOW)
    refuse.clear()
    row = outbox_row(engine, "k")
    assert row is not None and row.status == "sending" and len(ch.sent) == 1
