"""Sending email, and the outbox that makes each message go out at most once.

Two halves, both generic (the period report and the alert digest use them alike):

- ``send_email``: one message over SMTP with ``security = starttls | ssl | none``, certificate
  verification always on (the system's trust store, or ``smtp.ca_file``), a timeout on every
  socket operation, and tenacity retries of what is worth retrying (connection refused, reset,
  timed out, any 4xx reply). A refused recipient stops the message before DATA, so a message
  reaches all of its recipients or none of them; the caller hears which address was refused.
- ``deliver_once``: the outbox. It writes ``sending`` (with the message's deterministic
  Message-ID) before talking to the server and ``sent`` after. A second call finds ``sent`` and
  does nothing; a row left in ``sending`` means a process died, or the connection broke after the
  message text went out, so the message *may* have been delivered: it is never resent without
  ``force``. A failure that certainly delivered nothing is recorded as ``failed`` and the next
  call tries again.

The errors say what the caller must do: ``MailTransientError`` (retried here, then given up),
``MailPermanentError`` (fix the configuration or the address), ``MailInDoubt`` (look before
resending). All are ``WorkFailed``: the command exits with status 1.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import IntegrityError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from sync_agent.config import SmtpSettings
from sync_agent.errors import WorkFailed, one_line
from sync_agent.locks import advisory_key
from sync_agent.redaction import redact_message
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.tables import deliveries

log = structlog.get_logger("sync_agent.mailer")

#: first wait between attempts (seconds), doubled each time up to ``BACKOFF_MAX``; module-level
#: so tests can shorten it
BACKOFF_INITIAL = 2.0
BACKOFF_MAX = 60.0

#: claimed, the message being written: nothing has gone to a server yet, so a row left so by a
#: dead process is simply sent again (and a live one loses its claim to whoever takes it over)
PREPARING = "preparing"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
ALREADY_SENT = "already_sent"

M = TypeVar("M")


# --- errors -----------------------------------------------------------------------------------

class MailError(WorkFailed):
    """Sending failed. ``delivered``: False (certainly not delivered) or None (may have been)."""

    delivered: bool | None = False


class MailTransientError(MailError):
    """Worth another try later: the server is down or busy, a 4xx reply, a timeout."""


class MailPermanentError(MailError):
    """Retrying will not help: authentication, certificate, a 5xx reply, a refused address."""


class RecipientsRefused(MailError):
    """The server refused one or more recipients; nothing was sent to anyone.

    ``transient`` when every refusal was 4xx (mailbox busy, greylisting): worth another try.
    """

    def __init__(self, refused: dict[str, tuple[int, str]]) -> None:
        shown = ", ".join(f"{addr} ({code} {msg})" for addr, (code, msg) in refused.items())
        super().__init__(f"recipients refused by the SMTP server: {shown}; nothing was sent")
        self.refused = refused
        self.transient = all(400 <= code < 500 for code, _ in refused.values())


class MailInDoubt(MailError):
    """The connection broke after the message text was sent: it may have been delivered."""

    delivered = None


class DeliveryInDoubt(WorkFailed):
    """The outbox holds this message in ``sending``: an earlier attempt may have delivered it."""


# --- sending ----------------------------------------------------------------------------------

def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """Verification on, hostname checked: the default context, trusting ``ca_file`` if set. A
    ``ca_file`` gone or spoilt since the start is a person's to mend, not a wait's."""
    try:
        ctx = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailPermanentError(f"smtp.ca_file: cannot load {smtp.ca_file}: {exc.strerror or exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _recipients(msg: EmailMessage) -> list[str]:
    fields = [str(v) for k in ("To", "Cc", "Bcc") for v in (msg.get_all(k) or [])]
    return [addr for _name, addr in getaddresses(fields) if addr]


def _sender(smtp: SmtpSettings, msg: EmailMessage) -> str:
    from_ = [addr for _n, addr in getaddresses([str(v) for v in (msg.get_all("From") or [])]) if addr]
    return smtp.sender or (from_[0] if from_ else "")


def _classify_reply(code: int, text: str, what: str) -> MailError:
    message = f"{what}: SMTP {code} {text}"
    return MailTransientError(message) if 400 <= code < 500 else MailPermanentError(message)


def _text(resp: bytes | str) -> str:
    return (resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp).strip()


def _wire_bytes(msg: EmailMessage) -> bytes:
    """The message as sent: CRLF lines, dot-stuffed, without Bcc."""
    if msg.get("Bcc") is not None:
        msg = copy.deepcopy(msg)
        del msg["Bcc"]
    data = msg.as_bytes(policy=policy.SMTP)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    """An open, greeted connection (TLS as configured); the socket is closed if any step fails."""
    conn: smtplib.SMTP
    if smtp.security == "ssl":
        conn = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=tls_context(smtp))
    else:
        conn = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        if smtp.security == "starttls":
            conn.ehlo()
            if not conn.has_extn("starttls"):
                raise MailPermanentError(
                    f"{smtp.host}:{smtp.port} does not offer STARTTLS; refusing to send in clear "
                    "(set smtp.security = \"none\" only for a server on this machine)")
            conn.starttls(context=tls_context(smtp))
        conn.ehlo_or_helo_if_needed()
    except BaseException:
        conn.close()
        raise
    return conn


def _send_once(smtp: SmtpSettings, msg: EmailMessage, recipients: list[str]) -> None:
    """One attempt. Errors before DATA are sorted transient/permanent; after, in doubt."""
    where = f"{smtp.host}:{smtp.port}"
    try:
        conn = _connect(smtp)
    except MailError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise MailPermanentError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); "
            "set smtp.ca_file to the CA that signed it") from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:  # cut off mid-handshake: a restart, a load
        raise MailTransientError(f"{where}: TLS handshake cut off: {exc.reason or exc}") from None
    except ssl.SSLError as exc:
        raise MailPermanentError(f"{where}: TLS failed: {exc.reason or exc}") from None
    except smtplib.SMTPConnectError as exc:
        raise _classify_reply(exc.smtp_code, _text(exc.smtp_error), f"{where} greeting") from None
    except smtplib.SMTPResponseException as exc:
        raise _classify_reply(exc.smtp_code, _text(exc.smtp_error), where) from None
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, name lookup
        raise MailTransientError(f"{where}: cannot connect: {type(exc).__name__}: {exc}") from None
    try:
        try:
            if smtp.username:
                conn.login(smtp.username, smtp.password)
            code, resp = conn.mail(_sender(smtp, msg))
            if code != 250:
                raise _classify_reply(code, _text(resp), "sender refused")
            refused: dict[str, tuple[int, str]] = {}
            for rcpt in recipients:
                code, resp = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, _text(resp))
            if refused:
                conn.rset()
                raise RecipientsRefused(refused)
            code, resp = conn.docmd("DATA")
            if code != 354:
                raise _classify_reply(code, _text(resp), "DATA refused")
        except MailError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _classify_reply(exc.smtp_code, _text(exc.smtp_error), "login refused") from None
        except smtplib.SMTPResponseException as exc:
            raise _classify_reply(exc.smtp_code, _text(exc.smtp_error), where) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailTransientError(f"{where}: {type(exc).__name__}: {exc}") from None
        # From here on the server may hold the message: a broken connection is "in doubt".
        try:
            conn.send(_wire_bytes(msg))
            code, resp = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise MailInDoubt(
                f"{where}: connection lost after the message was sent, before the server "
                f"confirmed it ({type(exc).__name__}); it may have been delivered") from None
        if code != 250:
            raise _classify_reply(code, _text(resp), "message refused")
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("smtp_retry", attempt=state.attempt_number, error=redact_message(str(exc)),
                wait=round(float(wait), 2))


def worth_retrying(exc: BaseException) -> bool:
    """Whether a failed send may go through later: the server down or busy, a 4xx reply."""
    return isinstance(exc, MailTransientError) or (isinstance(exc, RecipientsRefused) and exc.transient)


def send_email(smtp: SmtpSettings, msg: EmailMessage, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Send ``msg`` to its To/Cc/Bcc through ``smtp``; raise a ``MailError`` if it did not go.

    Transient failures are retried ``smtp.max_attempts`` times in all, with exponential backoff;
    a message that may have reached the server (``MailInDoubt``) is never retried here.
    """
    recipients = _recipients(msg)
    if not recipients:
        raise MailPermanentError("the message has no recipients")
    retrying = Retrying(
        stop=stop_after_attempt(max(1, smtp.max_attempts)),
        wait=wait_exponential(multiplier=BACKOFF_INITIAL, max=BACKOFF_MAX),
        retry=retry_if_exception(worth_retrying),
        before_sleep=_log_retry,
        sleep=sleep,
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            _send_once(smtp, msg, recipients)
    log.info("email_sent", host=smtp.host, recipients=len(recipients), message_id=str(msg.get("Message-ID")))


# --- the outbox -------------------------------------------------------------------------------

def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:60] or "x"


def message_id(key: str, channel: str, *, generation: int = 1, ward_code: str | None = None,
               domain: str | None = None) -> str:
    """The Message-ID of (key, channel): the same on every attempt, so a receiving system can
    also recognise a duplicate; a deliberate resend (``force`` after ``sent``) gets ``.rN``."""
    parts = ["sync-agent"]
    if ward_code:
        parts.append(_slug(ward_code))
    parts.append(_slug(key))
    if channel != "email":
        parts.append(hashlib.sha256(channel.encode("utf-8")).hexdigest()[:10])
    if generation > 1:
        parts.append(f"r{generation}")
    host = re.sub(r"[^A-Za-z0-9.-]", "", domain or "") or "sync-agent.invalid"
    return f"<{'.'.join(parts)}@{host}>"


def _generation(mid: str) -> int:
    m = re.search(r"\.r(\d+)@", mid)
    return int(m.group(1)) if m else 1


@dataclass(frozen=True)
class DeliveryResult:
    """What ``deliver_once`` did: ``sent`` now, or ``already_sent`` earlier (nothing done)."""

    key: str
    channel: str
    status: str  # sent | already_sent
    message_id: str
    attempts: int
    sent_at: dt.datetime | None

    @property
    def already_sent(self) -> bool:
        return self.status == ALREADY_SENT

    def __str__(self) -> str:
        return f"{self.key} [{self.channel}] {self.status} {self.message_id}"


@dataclass(frozen=True)
class OutboxRow:
    """One ``deliveries`` row as read back (``status`` and audits)."""

    key: str
    channel: str
    status: str
    message_id: str
    attempts: int
    recipients: str | None
    subject: str | None
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None


def outbox_row(engine: Engine, key: str, channel: str = "email") -> OutboxRow | None:
    """The outbox row of (key, channel), or None if it was never attempted."""
    d = deliveries.c
    with read_connection(engine) as conn:
        r = conn.execute(select(deliveries).where(d.key == key, d.channel == channel)).first()
    if r is None:
        return None
    return OutboxRow(key=r.key, channel=r.channel, status=r.status, message_id=r.message_id,
                     attempts=r.attempts, recipients=r.recipients, subject=r.subject, error=r.error,
                     created_at=r.created_at, updated_at=r.updated_at, sent_at=r.sent_at)


def _describe(message: Any) -> tuple[str | None, str | None]:
    if isinstance(message, EmailMessage):
        return ", ".join(_recipients(message)) or None, message.get("Subject")
    return None, None


def _in_doubt_message(key: str, channel: str, since: dt.datetime, error: str | None) -> str:
    why = f" ({error})" if error else ""
    # only the time tells a send cut off from one still under way in another process
    return (f"{key} on {channel} was being sent at {since.isoformat(timespec='seconds')} and no "
            f"confirmation was recorded{why}: it may have been sent (if that was moments ago, another "
            "process may still be sending it). Check with the recipients; use --force to send it again.")


def _claim(engine: Engine, key: str, channel: str, *, force: bool, clock: dt.datetime,
           ward_code: str | None, domain: str | None) -> DeliveryResult | tuple[str, int]:
    """Mark (key, channel) ``preparing`` and return (Message-ID, attempt), or the earlier result."""
    d = deliveries.c
    with write_transaction(engine) as conn:
        row = conn.execute(select(deliveries).where(d.key == key, d.channel == channel)).first()
        if row is None:
            mid = message_id(key, channel, ward_code=ward_code, domain=domain)
            conn.execute(deliveries.insert().values(
                key=key, channel=channel, message_id=mid, status=PREPARING, attempts=1,
                created_at=clock, updated_at=clock))
            return mid, 1
        if row.status == SENT and not force:
            log.info("delivery_already_sent", key=key, channel=channel, message_id=row.message_id)
            return DeliveryResult(key, channel, ALREADY_SENT, row.message_id, row.attempts, row.sent_at)
        if row.status == SENDING and not force:
            since = row.updated_at.astimezone(clock.tzinfo)
            raise DeliveryInDoubt(_in_doubt_message(key, channel, since, row.error))
        mid = row.message_id
        attempts = int(row.attempts) + 1
        if row.status == SENT:
            # a deliberate resend needs a new identity, or mailboxes drop it: numbered by the
            # attempt, which only grows (the stored one may be an older generation's, recorded by
            # a confirmation that landed late)
            mid = message_id(key, channel, generation=max(attempts, _generation(row.message_id) + 1),
                             ward_code=ward_code, domain=domain)
        claimed = conn.execute(
            update(deliveries)
            .where(d.id == row.id, d.status == row.status, d.attempts == row.attempts)
            .values(status=PREPARING, attempts=attempts, message_id=mid, error=None, updated_at=clock))
        if claimed.rowcount != 1:
            raise DeliveryInDoubt(f"{key} on {channel} is being sent by another process")
        if force:
            log.warning("delivery_forced", key=key, channel=channel, previous=row.status, message_id=mid)
        return mid, attempts


def _serialise(conn: Connection, key: str) -> None:
    """On PostgreSQL, one transaction at a time records a message of ``key`` as sent: two processes
    finishing two channels of one digest would each read the other's row as not sent yet (read
    committed), and neither would do what waits for the last one. SQLite writes one at a time."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(f"outbox:{key}")})


def _to_sending(engine: Engine, key: str, channel: str, attempts: int, at: dt.datetime) -> DeliveryResult | None:
    """``preparing`` → ``sending``, the last step before the server is contacted, only while this
    process still holds the claim (the attempt it made). Else the row as another process left it:
    already sent (returned), or being sent (``DeliveryInDoubt``)."""
    d = deliveries.c
    with write_transaction(engine) as conn:
        moved = conn.execute(update(deliveries)
                             .where(d.key == key, d.channel == channel, d.status == PREPARING,
                                    d.attempts == attempts)
                             .values(status=SENDING, updated_at=at)).rowcount
        row = None if moved == 1 else conn.execute(
            select(deliveries).where(d.key == key, d.channel == channel)).first()
    if row is None:
        return None
    if row.status == SENT:
        log.info("delivery_already_sent", key=key, channel=channel, message_id=row.message_id)
        return DeliveryResult(key, channel, ALREADY_SENT, row.message_id, row.attempts, row.sent_at)
    raise DeliveryInDoubt(f"{key} on {channel} is being sent by another process")


def deliver_once(
    engine: Engine,
    key: str,
    channel: str,
    build_message: Callable[[str], M],
    send: Callable[[M], None],
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    ward_code: str | None = None,
    domain: str | None = None,
    describe: Callable[[M], tuple[str | None, str | None]] | None = None,
    on_sent: Callable[[Connection], None] | None = None,
) -> DeliveryResult:
    """Build and send the message for (key, channel) unless the outbox says it already went.

    ``build_message(message_id)`` makes the message (called only when it will be sent);
    ``send(message)`` sends it and raises on failure. An exception with ``delivered = False``
    (or none) marks the row ``failed`` (retried on the next call), ``delivered = None`` leaves it
    in ``sending`` (in doubt: only ``force`` resends). ``force`` resends a ``sent`` message under
    a new Message-ID and an in-doubt one under the same Message-ID.
    Raises ``DeliveryInDoubt`` for a row already in ``sending`` (without ``force``).
    ``on_sent(conn)`` runs in the transaction that records the message as sent, for what must
    change with it or not at all (a crash between two transactions would split them).
    """
    clock = now or dt.datetime.now(dt.UTC)
    d = deliveries.c
    try:
        claim = _claim(engine, key, channel, force=force, clock=clock, ward_code=ward_code, domain=domain)
    except IntegrityError:  # another process inserted the row between our read and write
        raise DeliveryInDoubt(f"{key} on {channel} is being sent by another process") from None
    if isinstance(claim, DeliveryResult):
        return claim
    mid, attempts = claim

    def finish(status: str, error: str | None = None, **extra: Any) -> None:
        # the real time: ``now`` is when the job started, and writing and sending take a while
        at = dt.datetime.now(dt.UTC)
        if status == SENT:
            # a delivery the server confirmed is recorded whoever holds the row now (a forced
            # resend that took it over and failed must not leave it to be sent once more)...
            mine = (d.attempts == attempts) | (d.status != SENT)
        else:
            # ...and no failure of this attempt overwrites another's row, or a confirmed one
            mine = (d.attempts == attempts) & (d.status != SENT)
        stmt = update(deliveries).where(d.key == key, d.channel == channel, mine).values(
            status=status, error=error, updated_at=at, **extra)
        try:
            with write_transaction(engine) as conn:
                if status == SENT and on_sent is not None:
                    _serialise(conn, key)
                done = conn.execute(stmt).rowcount
                if status == SENT and on_sent is not None and done:
                    on_sent(conn)
        except Exception as exc:
            if status != SENT or on_sent is None:
                raise
            # what must change with it failed; the message went all the same: record that
            log.error("delivery_follow_up_failed", key=key, channel=channel, message_id=mid,
                      error=redact_message(f"{type(exc).__name__}: {exc}"))
            with write_transaction(engine) as conn:
                done = conn.execute(stmt).rowcount
        if not done:
            log.warning("delivery_taken_over", key=key, channel=channel, message_id=mid, status=status)

    try:
        message = build_message(mid)
    except Exception as exc:
        finish(FAILED, f"building the message failed: {type(exc).__name__}: {redact_message(str(exc))}")
        raise
    recipients, subject = (describe or _describe)(message)
    other = _to_sending(engine, key, channel, attempts, dt.datetime.now(dt.UTC))
    if other is not None:
        return other
    try:
        send(message)
    except Exception as exc:
        error = redact_message(f"{type(exc).__name__}: {exc}")[:2000]
        delivered = getattr(exc, "delivered", False)
        if delivered is None:
            finish(SENDING, error, recipients=recipients, subject=subject)
            log.error("delivery_in_doubt", key=key, channel=channel, message_id=mid, error=error)
        else:
            finish(FAILED, error, recipients=recipients, subject=subject)
            log.error("delivery_failed", key=key, channel=channel, message_id=mid, error=error)
        raise
    sent_at = dt.datetime.now(dt.UTC)
    # the Message-ID that went, should the row have been claimed meanwhile under another
    try:
        finish(SENT, None, recipients=recipients, subject=subject, sent_at=sent_at, message_id=mid)
    except Exception as exc:  # the store went away after the server took the message
        error = one_line(exc)
        log.error("delivery_not_recorded", key=key, channel=channel, message_id=mid, error=error)
        raise MailInDoubt(f"the message went (Message-ID {mid}), but the store could not record it ({error}): "
                          "the outbox still shows it being sent; do not send it again") from None
    log.info("delivered", key=key, channel=channel, message_id=mid, attempts=attempts)
    return DeliveryResult(key, channel, SENT, mid, attempts, sent_at)


__all__ = [
    "ALREADY_SENT", "BACKOFF_INITIAL", "BACKOFF_MAX", "DeliveryInDoubt", "DeliveryResult", "MailError",
    "MailInDoubt", "MailPermanentError", "MailTransientError", "OutboxRow", "RecipientsRefused",
"deliver_once", "message_id", "outbox_row", "send_email", "tls_context",
]
