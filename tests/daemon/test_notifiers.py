"""Delivering the digest: a webhook with a retry, an email via a real SMTP server, never twice."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, select

from sync_agent import alerts, notifiers
from sync_agent.alerts import build_digest, last_digest_at, send_digest
from sync_agent.config import Settings, WebhookSettings, load_settings
from sync_agent.errors import UsageError
from sync_agent.notifiers import EmailNotifier, Notifier, WebhookNotifier, load_notifiers
from sync_agent.store.engine import read_connection
from sync_agent.store.tables import deliveries
from tests.daemon import crafted
from tests.daemon.conftest import free_port
from tests.daemon.crafted import NOW, TODAY
from tests.daemon.receiver import webhook_receiver


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def _settings(write_config: Callable[..., Path], alerts: str) -> Settings:
    return load_settings(write_config(extra=alerts))


def _rows(engine: Engine) -> list[Any]:
    with read_connection(engine) as conn:
        return list(conn.execute(select(deliveries).order_by(deliveries.c.id)).all())


def test_webhook_is_retried_after_a_500_and_never_posted_twice(engine: Engine,
                                                               write_config: Callable[..., Path]) -> None:
    crafted.load(engine)
    sleeps: list[float] = []
    with webhook_receiver(statuses=[500]) as rx:
        hook_table = f'[[alerts.webhooks]]\nurl = "{rx.url}"\nheaders = {{ Authorization = "Bearer t0k" }}\n'
        settings = _settings(write_config, f'[alerts]\ntime = "07:30"\n{hook_table}')
        [configured] = load_notifiers(settings)
        assert isinstance(configured, WebhookNotifier) and configured.channel == f"webhook:{rx.url}"
        hook = WebhookNotifier(settings.alerts.webhooks[0], sleep=sleeps.append)
        digest = build_digest(engine, settings, TODAY, now=NOW)
        first = send_digest(engine, settings, digest, now=NOW, notifiers=[hook])
        assert first.ok and first.sent_now
        assert len(rx.requests) == 2 and len(sleeps) == 1  # the 500, then the delivery
        again = send_digest(engine, settings, digest, now=NOW, notifiers=[hook])
        assert again.ok and not again.sent_now and again.outcomes[0].status == "already_sent"
        later = build_digest(engine, settings, TODAY, now=NOW + dt.timedelta(hours=3))
        send_digest(engine, settings, later, now=later.until, notifiers=[hook])
        assert len(rx.requests) == 2  # the same day's digest never goes out twice
    body = json.loads(rx.requests[-1].body)
    assert body["key"] == "alerts:2026-02-12" and body["digest"] == digest.as_json()
    assert body["summary"].startswith("Phường Thạch Khôi 12/02/2026: 4 hồ sơ mới")
    # a receiver shows staff the systems' names, not the store's
    assert body["source_labels"]["one_stop"] == "Một cửa (HTTT giải quyết TTHC thành phố)"
    named = {*body["new_by_source"], *(s["source"] for s in body["digest"]["stale_sources"])}
    assert set(body["source_labels"]) >= named and "?" not in body["source_labels"]
    assert rx.requests[-1].headers["Authorization"] == "Bearer t0k"
    assert rx.requests[0].headers["Idempotency-Key"] == rx.requests[1].headers["Idempotency-Key"]
    [row] = _rows(engine)
    assert (row.key, row.channel, row.status) == ("alerts:2026-02-12", f"webhook:{rx.url}", "sent")
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == NOW


def test_a_webhook_that_keeps_failing_leaves_since_where_it_was(engine: Engine,
                                                                write_config: Callable[..., Path]) -> None:
    crafted.load(engine)
    with webhook_receiver(statuses=[503, 503, 503, 503]) as rx:
        settings = _settings(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        hook = WebhookNotifier(settings.alerts.webhooks[0], sleep=lambda s: None)
        result = send_digest(engine, settings, build_digest(engine, settings, TODAY, now=NOW), now=NOW,
                             notifiers=[hook])
    assert not result.ok and "503" in (result.failed[0].error or "")
    assert len(rx.requests) == 4
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == crafted.LAST_DIGEST


def test_a_webhook_refusal_is_not_retried() -> None:
    with webhook_receiver(statuses=[400]) as rx:
        hook = WebhookNotifier(WebhookSettings(url=rx.url), sleep=lambda s: None)
        with pytest.raises(Exception, match="HTTP 400"):
            hook.send(hook.build(_empty_digest(), "<x@y>"))
    assert len(rx.requests) == 1


def _empty_digest() -> Any:
    from sync_agent.alerts import Digest

    return Digest(date=TODAY, since=crafted.LAST_DIGEST, until=NOW, ward_name="Phường Thạch Khôi")


def test_the_email_digest_in_vietnamese_via_smtp_once(engine: Engine, write_config: Callable[..., Path],
                                                      smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    crafted.load(engine)
    settings = _settings(write_config, f'''
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "sync-agent@example.gov.vn"

[alerts]
recipients = ["tiepnhan@example.gov.vn", "lanhdao@example.gov.vn"]
time = "07:30"
''')
    notifiers: list[Notifier] = load_notifiers(settings)
    assert [type(n) for n in notifiers] == [EmailNotifier]
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert send_digest(engine, settings, digest, now=NOW).sent_now
    assert not send_digest(engine, settings, digest, now=NOW).sent_now
    deadline = time.monotonic() + 5
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(inbox.messages) == 1
    rcpts, raw = inbox.messages[0]
    assert sorted(rcpts) == ["lanhdao@example.gov.vn", "tiepnhan@example.gov.vn"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"].startswith("[Phường Thạch Khôi] Bản tin hồ sơ ngày 12/02/2026")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert "H01-0001" in body and "N. V. An" in body and "Nguyễn Văn An" not in body
        assert not re.search(r"(?<!\d)\d{12}(?!\d)", body)
    assert "Hồ sơ sắp đến hạn trong 2 ngày làm việc (2)" in text
    [row] = _rows(engine)
    assert (row.key, row.channel, row.status) == ("alerts:2026-02-12", "email", "sent")
    assert msg["Message-ID"] == row.message_id
    assert msg["Content-Language"] == "vi"


def test_a_webhook_that_times_out_after_the_post_is_in_doubt_and_never_resent(
        engine: Engine, write_config: Callable[..., Path]) -> None:
    with webhook_receiver(delay=1.0) as rx:
        settings = _settings(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\ntimeout = 0.3\n')
        digest = build_digest(engine, settings, TODAY, now=NOW)
        first = send_digest(engine, settings, digest, now=NOW)
        second = send_digest(engine, settings, digest, now=NOW)
    assert not first.ok and "may have been delivered" in (first.failed[0].error or "")
    assert not second.ok and "DeliveryInDoubt" in (second.failed[0].error or "")
    assert len(rx.requests) == 1  # the gateway may hold it: not posted again without --force
    [row] = _rows(engine)
    assert row.status == "sending"


class Pager(Notifier):
    """A third-party notifier, installed under the entry-point group."""

    name = "pager"
    sent: ClassVar[list[str]] = []

    @property
    def channel(self) -> str:
        return "pager:duty"

    def build(self, digest: Any, message_id: str) -> str:
        return f"{digest.key} {message_id}"

    def send(self, message: Any) -> None:
        self.sent.append(message)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sequence[Notifier]:
        return [cls()]


def test_a_notifier_installed_by_entry_point_is_loaded_and_delivers_once(
        engine: Engine, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    class EP:
        name = "pager"

        def load(self) -> type[Notifier]:
            return Pager

    class Broken(EP):
        name = "broken"

        def load(self) -> type:
            return dict

    Pager.sent.clear()
    monkeypatch.setattr(notifiers, "entry_points", lambda group: [EP(), Broken()])
    notifiers.notifier_classes.cache_clear()
    try:
        settings = _settings(write_config, "")
        [pager] = load_notifiers(settings)  # no email or webhook configured; "broken" is refused
        assert isinstance(pager, Pager)
        digest = build_digest(engine, settings, TODAY, now=NOW)
        assert send_digest(engine, settings, digest, now=NOW).sent_now
        assert not send_digest(engine, settings, digest, now=NOW).sent_now
        assert Pager.sent == [f"alerts:2026-02-12 {_rows(engine)[0].message_id}"]
    finally:
        notifiers.notifier_classes.cache_clear()


class _Killed(BaseException):
    """The process dying at that instant: nothing after it runs."""


def test_a_process_killed_just_after_the_digest_went_does_not_make_the_next_one_repeat_it(
        engine: Engine, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox said "sent" in one transaction and "since the last digest" moved in the next:
    a kill in between left the email delivered and the window where it was, so the next working
    day's digest announced every dossier and flag of this one again."""
    crafted.load(engine)
    with webhook_receiver() as rx:
        settings = _settings(write_config, f'[[alerts.webhooks]]\nurl = "{rx.url}"\n')
        hook = WebhookNotifier(settings.alerts.webhooks[0], sleep=lambda s: None)
        digest = build_digest(engine, settings, TODAY, now=NOW)

        def killed(*args: object, **kwargs: object) -> None:
            raise _Killed

        monkeypatch.setattr(alerts, "mark_digest_sent", killed)
        with pytest.raises(_Killed):
            send_digest(engine, settings, digest, now=NOW, notifiers=[hook])
    assert len(rx.requests) == 1 and [r.status for r in _rows(engine)] == ["sent"]
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == NOW


def test_one_channel_is_sent_again_alone_and_since_waits_for_the_others(
        engine: Engine, write_config: Callable[..., Path]) -> None:
    """Resending the channel a person checked (``alerts --send --force --channel``) repeats no
    other channel, and a channel sent alone does not close the window the others still owe."""
    crafted.load(engine)
    with webhook_receiver() as one, webhook_receiver(statuses=[503] * 8) as two:
        settings = _settings(write_config, f'[[alerts.webhooks]]\nurl = "{one.url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{two.url}"\n')
        digest = build_digest(engine, settings, TODAY, now=NOW)
        first = send_digest(engine, settings, digest, now=NOW, only=f"webhook:{one.url}")
        assert [o.channel for o in first.outcomes] == [f"webhook:{one.url}"] and first.ok
        assert two.requests == []
        with read_connection(engine) as conn:
            assert last_digest_at(conn) == crafted.LAST_DIGEST  # the second channel has not gone
        again = send_digest(engine, settings, digest, now=NOW, force=True, only=f"webhook:{one.url}")
        assert again.ok and len(one.requests) == 2 and two.requests == []
        with pytest.raises(UsageError, match="no channel webhook:nowhere; configured: webhook:"):
            send_digest(engine, settings, digest, now=NOW, only="webhook:nowhere")


def test_a_channel_sent_hours_later_carries_the_day_s_window_and_since_does_not_pass_it(
        engine: Engine, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """One webhook went at 07:30, the other failed; a person sends the failed one at 10:30. It
    carries the 07:30 digest, and "since" stops at 07:30: what came after reaches both channels
    in the next digest, instead of never reaching the first."""
    monkeypatch.setattr(notifiers, "WEBHOOK_BACKOFF_BASE", 0.01)
    crafted.load(engine)
    with webhook_receiver() as ok, webhook_receiver(statuses=[503] * 4) as bad:
        settings = _settings(write_config, f'[[alerts.webhooks]]\nurl = "{ok.url}"\n'
                                           f'[[alerts.webhooks]]\nurl = "{bad.url}"\n')
        morning, later = NOW, NOW + dt.timedelta(hours=3)
        assert not send_digest(engine, settings, build_digest(engine, settings, TODAY, now=morning), now=morning).ok
        rebuilt = build_digest(engine, settings, TODAY, now=later)
        assert rebuilt.until == morning  # the day's window, saved when it first went
        assert send_digest(engine, settings, rebuilt, now=later, only=f"webhook:{bad.url}").ok
    sent = [json.loads(r.body)["digest"] for r in (ok.requests[0], bad.requests[-1])]
    assert sent[0] == sent[1]  # the same digest on both channels
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == morning
    tomorrow = build_digest(engine, settings, TODAY + dt.timedelta(days=1), now=later + dt.timedelta(days=1))
    assert tomorrow.since == morning
