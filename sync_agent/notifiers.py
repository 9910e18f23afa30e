"""Ways to deliver the daily digest: email, a generic webhook, and whatever a ward installs.

A ward may want the digest as an SMS, a chat message or a ticket; the core cannot know every
gateway, so a notifier is a small class found through the ``sync_agent.notifiers`` entry-point
group (built-ins included), like connectors. Every notifier delivers through the outbox
(``mailer.deliver_once``) under the digest's key and its own channel, so a digest reaches each
channel at most once, whatever restarts or retries happen around it.
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import requests
import structlog
from sqlalchemy import Connection, Engine

from connectors.http import parse_retry_after
from sync_agent.config import Settings, WebhookSettings
from sync_agent.errors import one_line
from sync_agent.redaction import redact_message

if TYPE_CHECKING:
    from sync_agent.alerts import Digest

ENTRY_POINT_GROUP = "sync_agent.notifiers"
log = structlog.get_logger("sync_agent.notifiers")

#: first wait between webhook attempts (seconds), doubled each time; module-level so tests can
#: shorten it
WEBHOOK_BACKOFF_BASE = 1.0

SENT = "sent"
ALREADY_SENT = "already_sent"
FAILED = "failed"


@dataclass(frozen=True)
class NotifyOutcome:
    """What happened to one digest on one channel."""

    channel: str
    status: str  # sent | already_sent | failed
    error: str | None = None
    #: failed in a way a later try may mend (not a refusal, not one that may have been delivered)
    may_pass: bool = True
    #: failed after the message may have gone: resent only by a person, with ``--force``
    in_doubt: bool = False
    #: the outbox row was another attempt's (``sending``): a process sending it now, or one that
    #: died or lost the line (the daemon tells the two apart by the row's age)
    claimed_elsewhere: bool = False

    @property
    def ok(self) -> bool:
        return self.status != FAILED


class Notifier(abc.ABC):
    """One channel a digest goes out on.

    Subclasses say how to build the message (``build``) and how to send it (``send``); the base
    class wraps the pair in the outbox so that the same digest is never sent twice on the same
    channel. ``from_settings`` returns the instances the configuration asks for (none when the
    channel is not configured).
    """

    #: entry-point name
    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def channel(self) -> str:
        """The outbox channel, e.g. ``email`` or ``webhook:<url>``; unique per destination."""

    @abc.abstractmethod
    def build(self, digest: Digest, message_id: str) -> Any:
        """The message for ``digest``; ``message_id`` is deterministic for (key, channel)."""

    @abc.abstractmethod
    def send(self, message: Any) -> None:
        """Send it; raise on failure (after the notifier's own retries)."""

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Sequence[Notifier]:
        """The configured instances of this notifier."""

    def describe(self, message: Any) -> tuple[str | None, str | None]:
        """(recipients, subject) kept in the outbox row, for audits."""
        return self.channel, None

    def message_domain(self) -> str | None:
        """The right-hand side of the Message-ID (the sender's domain for email)."""
        return None

    def deliver(self, engine: Engine, digest: Digest, *, force: bool = False,
                now: dt.datetime | None = None,
                on_sent: Callable[[Connection], None] | None = None) -> NotifyOutcome:
        """Send ``digest`` unless the outbox says it already went (or may have) on this channel;
        ``on_sent(conn)`` runs in the transaction that records it as sent."""
        from sync_agent.mailer import DeliveryInDoubt, MailInDoubt, MailPermanentError, RecipientsRefused, deliver_once

        try:
            result = deliver_once(engine, digest.key, self.channel,
                                  lambda message_id: self.build(digest, message_id), self.send,
                                  force=force, now=now, ward_code=digest.ward_code or None,
                                  domain=self.message_domain(), describe=self.describe, on_sent=on_sent)
        except Exception as exc:  # logged by the outbox; the other channels still go
            in_doubt = isinstance(exc, DeliveryInDoubt | MailInDoubt) or getattr(exc, "delivered", False) is None
            refused = isinstance(exc, MailPermanentError) or getattr(exc, "refused_for_good", False) or (
                isinstance(exc, RecipientsRefused) and not exc.transient)
            error = redact_message(one_line(exc))
            return NotifyOutcome(self.channel, FAILED, error,
                                 may_pass=not (in_doubt or refused), in_doubt=in_doubt,
                                 claimed_elsewhere=isinstance(exc, DeliveryInDoubt))
        return NotifyOutcome(self.channel, ALREADY_SENT if result.already_sent else SENT)


# --- email ----------------------------------------------------------------------------------

class EmailNotifier(Notifier):
    """The digest in Vietnamese, text and HTML, to ``[alerts] recipients`` through ``[smtp]``."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def channel(self) -> str:
        return "email"

    @classmethod
    def from_settings(cls, settings: Settings) -> Sequence[Notifier]:
        return [cls(settings)] if settings.alerts.recipients else []

    def describe(self, message: Any) -> tuple[str | None, str | None]:
        return ", ".join(self.settings.alerts.recipients), str(message["Subject"])

    def message_domain(self) -> str | None:
        return self.settings.smtp.sender.rpartition("@")[2] or None

    def build(self, digest: Digest, message_id: str) -> EmailMessage:
        from sync_agent.alerts import EMAIL_ROWS_PER_SECTION, render_html, render_text, subject

        msg = EmailMessage()
        msg["Subject"] = subject(digest)
        msg["From"] = self.settings.smtp.sender
        msg["To"] = ", ".join(self.settings.alerts.recipients)
        msg["Message-ID"] = message_id
        msg["Date"] = digest.until
        msg.set_content(render_text(digest, limit=EMAIL_ROWS_PER_SECTION, tz=self.settings.agent.timezone))
        msg.add_alternative(render_html(digest), subtype="html")
        msg["Content-Language"] = "vi"  # after the body: set_content clears Content-* headers
        return msg

    def send(self, message: Any) -> None:
        from sync_agent.mailer import send_email

        send_email(self.settings.smtp, message)


# --- webhook --------------------------------------------------------------------------------

class WebhookError(Exception):
    """The webhook refused the digest, or kept failing until the retries ran out.

    ``delivered`` follows the outbox's convention: False means certainly not delivered (the
    next call tries again), None means it may have been (a read timeout after the body went
    out): the outbox then keeps it "sending" and never resends it without ``--force``.
    """

    def __init__(self, message: str, delivered: bool | None = False, refused_for_good: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        #: a 4xx other than 408/429: the same request will be refused again
        self.refused_for_good = refused_for_good


@dataclass(frozen=True)
class WebhookMessage:
    """What a webhook receives: a JSON body and an idempotency key the receiver may use too."""

    url: str
    body: bytes
    idempotency_key: str


class WebhookNotifier(Notifier):
    """JSON POST of the digest (e.g. to an SMS gateway), retried on network errors, 429 and 5xx."""

    name = "webhook"
    #: statuses worth another try; any other non-2xx is final
    RETRY_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 425, 429, 500, 502, 503, 504})

    def __init__(self, hook: WebhookSettings, *, max_attempts: int = 4, backoff_base: float | None = None,
                 retry_after_cap: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None, rng: random.Random | None = None) -> None:
        self.hook = hook
        self.max_attempts = max_attempts
        self.backoff_base = WEBHOOK_BACKOFF_BASE if backoff_base is None else backoff_base
        self.retry_after_cap = retry_after_cap
        self.sleep = sleep
        self.session = session or requests.Session()
        self.rng = rng or random.Random()

    @property
    def channel(self) -> str:
        return f"webhook:{self.hook.url}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Sequence[Notifier]:
        return [cls(h) for h in settings.alerts.webhooks]

    def describe(self, message: Any) -> tuple[str | None, str | None]:
        return self.hook.url, "alerts digest (webhook)"

    def build(self, digest: Digest, message_id: str) -> WebhookMessage:
        from sync_agent.alerts import webhook_payload

        payload = webhook_payload(digest)
        payload["message_id"] = message_id
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        key = hashlib.sha256(f"{digest.key}|{self.channel}".encode()).hexdigest()[:32]
        return WebhookMessage(url=self.hook.url, body=body, idempotency_key=key)

    def send(self, message: Any) -> None:
        assert isinstance(message, WebhookMessage)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": message.idempotency_key,
                   "User-Agent": "sync-agent/0.1 (alerts webhook)", **dict(self.hook.headers)}
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                resp = self.session.post(message.url, data=message.body, headers=headers,
                                         timeout=(min(5.0, self.hook.timeout), self.hook.timeout),
                                         allow_redirects=False)
            except requests.ConnectionError as exc:  # connect refused or timed out: nothing went
                last = f"{type(exc).__name__}"
            except requests.Timeout as exc:  # the body went out, the answer did not come back
                raise WebhookError(f"{message.url}: {type(exc).__name__} waiting for the answer; "
                                   "it may have been delivered, so it is not retried",
                                   delivered=None) from None
            else:
                if 200 <= resp.status_code < 300:
                    if attempt > 1:
                        log.info("webhook_delivered_after_retry", url=message.url, attempts=attempt)
                    return
                last = f"HTTP {resp.status_code}"
                if resp.status_code not in self.RETRY_STATUSES:
                    raise WebhookError(f"{message.url}: {last} (not retried)",
                                       refused_for_good=400 <= resp.status_code < 500)
                wait = parse_retry_after(resp.headers.get("Retry-After"), dt.datetime.now(dt.UTC))
            if attempt == self.max_attempts:
                break
            if wait is None:
                backoff = self.backoff_base * 2 ** (attempt - 1)
                wait = backoff / 2 + self.rng.uniform(0, backoff / 2)
            wait = min(wait, self.retry_after_cap)
            log.warning("webhook_retry", url=message.url, attempt=attempt, error=last, wait=round(wait, 2))
            self.sleep(wait)
        raise WebhookError(f"{message.url}: {last} after {self.max_attempts} attempt(s)")


# --- discovery ------------------------------------------------------------------------------

BUILTIN: dict[str, type[Notifier]] = {"email": EmailNotifier, "webhook": WebhookNotifier}


@cache
def notifier_classes() -> tuple[type[Notifier], ...]:
    """Built-ins, then every class installed under the entry-point group (checked, deduplicated)."""
    classes: dict[str, type[Notifier]] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in classes:
            continue
        try:
            cls = ep.load()
        except Exception as exc:
            log.error("notifier_not_loaded", name=ep.name, error=f"{type(exc).__name__}: {exc}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Notifier)):
            log.error("notifier_not_loaded", name=ep.name, error="not a Notifier subclass")
            continue
        classes[ep.name] = cls
    return tuple(classes.values())


def load_notifiers(settings: Settings) -> list[Notifier]:
    """Every configured notifier instance, built-ins first."""
    out: list[Notifier] = []
    for cls in notifier_classes():
        out.extend(cls.from_settings(settings))
    return out
