"""The HTTP layer every connector shares: timeouts, a total deadline, retries, error mapping.

``requests`` has no default timeout, and its read timeout bounds each gap between bytes rather
than the call, so a server that drips its answer could hold a sync forever; this module bounds
both. Which failures are worth retrying, and what each HTTP status means to the caller, is
decided here and only here, so the four connectors cannot drift apart on it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
import urllib3.exceptions
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type

from connectors.base import Connector, ConnectorContext
from sync_agent.config import ConnectorSettings
from sync_agent.errors import (
    ConfigError,
    FatalSourceError,
    SessionExpired,
    SourceError,
    TransientSourceError,
)
from sync_agent.payload import decode_json
from sync_agent.prefetch import cpu_turn
from sync_agent.redaction import redact_message

log = structlog.get_logger()

#: statuses that say "try again later"; every other 4xx/5xx is final for this run
TRANSIENT_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: statuses that say "who you are was refused"
AUTH_STATUSES: frozenset[int] = frozenset({401, 403})

_READ_CHUNK = 64 * 1024
_USER_AGENT = "sync-agent/0.1 (+ward dossier sync)"

Params = Mapping[str, str | int]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, either delta-seconds or an HTTP-date.

    ``None`` when the header is absent or unreadable (the caller then falls back to backoff);
    a date in the past means "now" (0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read the same way
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def status_error(
    status: int,
    where: str,
    *,
    retry_after: float | None = None,
    session_expired_on: Collection[int] = (),
) -> SourceError | None:
    """The error an HTTP status means to the caller, or ``None`` for a success.

    The single place where statuses are sorted: 429/5xx-transient are retried, a status the
    connector declares as "session expired" renews the session, 401/403 otherwise mean the
    credentials were refused, and any other non-2xx is final for this run.
    """
    if 200 <= status < 300:
        return None
    if status in TRANSIENT_STATUSES:
        return TransientSourceError(f"{where}: HTTP {status}", retry_after=retry_after)
    if status in session_expired_on:
        return SessionExpired(f"{where}: HTTP {status}, the session or token has expired")
    if status in AUTH_STATUSES:
        return FatalSourceError(f"{where}: HTTP {status}, credentials refused (check the connector options)")
    if 300 <= status < 400:
        return FatalSourceError(f"{where}: HTTP {status}, unexpected redirect (check base_url)")
    return FatalSourceError(f"{where}: HTTP {status}")


def transport_error(exc: requests.RequestException | urllib3.exceptions.HTTPError, where: str,
                    host: str | None = None) -> SourceError:
    """The error a failure below HTTP means: network trouble is transient, a bad request is not.

    It names the request, the ``host`` it went to and the system's reason when there is one
    ("Connection refused", "Name or service not known"): what an operator reading ``runs``
    needs, where the class name alone said only that something failed.
    """
    name = type(exc).__name__
    reason = _os_reason(exc)
    if host:
        where = f"{where} to {host}"
    if reason:
        name = f"{name} ({reason})"
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalSourceError(f"{where}: TLS failure ({name})")
    transient = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        urllib3.exceptions.HTTPError,
    )
    if isinstance(exc, transient):
        # The class name only: requests' messages repeat the URL with its query string.
        return TransientSourceError(f"{where}: {name}")
    return FatalSourceError(f"{where}: {name}")


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words for the failure under ``exc`` (requests wraps urllib3, which
    wraps the socket's error), never the library's own message, which repeats the URL."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and not isinstance(e, requests.RequestException) and e.strerror:
            return str(e.strerror)
        todo.extend((getattr(e, "reason", None), e.__cause__, e.__context__, *e.args))
    return None


def _host(url: str) -> str | None:
    """``host:port`` of ``url``, without any user or password."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6, as in a URL
    return host if parts.port is None else f"{host}:{parts.port}"


class _Schedule:
    """The wait before each retry and the decision to stop, shared by tenacity's two hooks.

    Tenacity asks for the wait and for the stop decision separately (and in an order that
    changed between versions); the stop decision needs the wait, to give up early rather than
    sleep past the deadline. So each attempt's wait is computed once and remembered.
    """

    def __init__(
        self,
        *,
        max_attempts: int,
        deadline: float,
        clock: Callable[[], float],
        retry_after_cap: float,
        backoff_base: float,
        backoff_max: float,
        rng: random.Random,
    ) -> None:
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.clock = clock
        self.retry_after_cap = retry_after_cap
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rng = rng
        self._waits: dict[int, float] = {}
        self.gave_up_for: str = ""

    def wait(self, state: RetryCallState) -> float:
        n = state.attempt_number
        if n not in self._waits:
            self._waits[n] = self._compute(state)
        return self._waits[n]

    def _compute(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, TransientSourceError) else None
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        # exponential backoff with "equal jitter": half fixed, half random, so that many
        # agents failing together do not come back in lockstep
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))
        return backoff / 2 + self.rng.uniform(0, backoff / 2)

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            self.gave_up_for = f"{state.attempt_number} attempt(s)"
            return True
        if self.clock() + self.wait(state) > self.deadline:
            self.gave_up_for = f"the call deadline, after {state.attempt_number} attempt(s)"
            return True
        return False


#: seconds between a source's clock and ours from which the difference is logged
CLOCK_DIFFERENCE_REPORTED = 300
#: seconds below which a difference may be the ``Date`` header's whole seconds and the network
CLOCK_RESOLUTION = 5


class HttpClient:
    """One connector's HTTP session: JSON in, JSON out, with its settings' limits.

    ``sleep``, ``clock`` (monotonic seconds), ``now`` (UTC wall time, for HTTP-date
    ``Retry-After``) and ``rng`` are injectable so tests neither wait nor depend on chance.
    """

    def __init__(
        self,
        settings: ConnectorSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utc_now,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = _USER_AGENT
        self._session.headers["Accept"] = "application/json"
        self._clock_checked = False

    @property
    def source(self) -> str:
        return self.settings.name

    def get_json(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        session_expired_on: Collection[int] = (),
    ) -> Any:
        """``GET`` a JSON document; see ``request_json``."""
        return self.request_json(
            "GET", path, params=params, headers=headers, auth=auth, session_expired_on=session_expired_on
        )

    def post_json(
        self,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        session_expired_on: Collection[int] = (),
    ) -> Any:
        """``POST`` a JSON body or a form and read a JSON answer; see ``request_json``."""
        return self.request_json(
            "POST", path, json_body=json_body, form=form, headers=headers,
            session_expired_on=session_expired_on,
        )

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        session_expired_on: Collection[int] = (),
    ) -> Any:
        """Call ``base_url + path`` and return the decoded JSON body.

        Transient failures are retried within ``max_attempts`` and ``request_deadline``; then
        ``TransientSourceError``. A status in ``session_expired_on`` raises ``SessionExpired``
        (the connector renews and repeats once); other 4xx raise ``FatalSourceError``.
        """
        where = f"{method} {path}"
        url = self.settings.base_url.rstrip("/") + path
        deadline = self.clock() + self.settings.request_deadline
        kwargs: dict[str, Any] = {"params": params, "headers": headers, "auth": auth}
        if json_body is not None:
            kwargs["json"] = json_body
        if form is not None:
            kwargs["data"] = dict(form)
        schedule = _Schedule(
            max_attempts=self.settings.max_attempts,
            deadline=deadline,
            clock=self.clock,
            retry_after_cap=self.settings.retry_after_cap,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            rng=self.rng,
        )
        retrying = Retrying(
            retry=retry_if_exception_type(TransientSourceError),
            wait=schedule.wait,
            stop=schedule.stop,
            sleep=self.sleep,
            before_sleep=self._log_retry(where),
            reraise=False,
        )
        try:
            return retrying(self._attempt, method, url, where, deadline, kwargs, session_expired_on)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            retry_after = last.retry_after if isinstance(last, TransientSourceError) else None
            raise TransientSourceError(
                f"gave up after {schedule.gave_up_for}: {last}", retry_after=retry_after
            ) from last

    def _attempt(
        self,
        method: str,
        url: str,
        where: str,
        deadline: float,
        kwargs: Mapping[str, Any],
        session_expired_on: Collection[int],
    ) -> Any:
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise TransientSourceError(f"{where}: {self._deadline_text} passed")
        timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
        try:
            # No redirects: following one could hand an API key header to another host.
            with self._session.request(
                method, url, timeout=timeout, stream=True, allow_redirects=False, **kwargs
            ) as response:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.now())
                error = status_error(
                    response.status_code, where, retry_after=retry_after,
                    session_expired_on=session_expired_on,
                )
                if error is not None:
                    raise error
                if not self._clock_checked:
                    self._check_clock(response.headers.get("Date"), response.headers.get("Age"))
                body = self._read_body(response, deadline, where)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise transport_error(exc, where, _host(url)) from exc
        return _decode_json(body, where)

    def _check_clock(self, date: str | None, age: str | None = None) -> None:
        """Report, once per client, a source whose clock is far from ours (its ``Date`` header;
        ``Age``: how long a cache between us kept the answer).

        The cursor moves by our clock, the records' times by the source's: a source behind ours
        by more than the lookback stamps its next updates before the next read's start, and they
        are never read. Ahead, its records wait until our clock reaches them (those more than a day
        ahead are quarantined meanwhile, see ``paging.FUTURE_TOLERANCE``)."""
        self._clock_checked = True
        try:
            theirs = email.utils.parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError, IndexError):
            return
        if theirs is None or theirs.tzinfo is None:
            return
        lookback = self.settings.lookback_minutes * 60
        # a cache's answer is as old as its Age; one beyond the lookback (a proxy that dates its
        # answers itself may pass the source's on) or unreadable is not taken
        text = (age or "").strip()
        kept = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
        if kept > lookback:
            kept = 0
        ahead = (theirs - self.now()).total_seconds() + kept
        # behind by the lookback or more (a few seconds at least: the header has whole seconds)
        if -ahead >= max(lookback, CLOCK_RESOLUTION):
            log.error("source_clock_differs", source=self.source, seconds=round(ahead), age=kept or None,
                      lookback_minutes=self.settings.lookback_minutes,
                      note="its clock is behind ours by more than the lookback: records it updates may never "
                           "be read; have its clock set, or raise lookback_minutes above the difference")
        elif abs(ahead) >= CLOCK_DIFFERENCE_REPORTED:
            log.warning("source_clock_differs", source=self.source, seconds=round(ahead), age=kept or None,
                        lookback_minutes=self.settings.lookback_minutes,
                        note="its clock differs from ours (the records' times are its)")

    def _read_body(self, response: requests.Response, deadline: float, where: str) -> bytes:
        """Read the body in whatever pieces arrive, checking the deadline between them.

        The read timeout only bounds each wait for a piece; the deadline check bounds the
        whole, so a call overruns its deadline by at most one read timeout.
        """
        raw = response.raw
        read1 = getattr(raw, "read1", None)
        pieces: list[bytes] = []
        while True:
            piece = (read1 or raw.read)(_READ_CHUNK, decode_content=True)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)
            if self.clock() > deadline:
                raise TransientSourceError(f"{where}: {self._deadline_text} passed while reading the body")

    @property
    def _deadline_text(self) -> str:
        return f"call deadline of {self.settings.request_deadline:g}s"

    def _log_retry(self, where: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else None
            log.warning(
                "source_request_retry",
                source=self.source,
                request=where,
                attempt=state.attempt_number,
                max_attempts=self.settings.max_attempts,
                wait_s=round(wait, 3) if wait is not None else None,
                reason=redact_message(str(exc)) if exc else None,
            )

        return before_sleep

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()


def _decode_json(body: bytes, where: str) -> Any:
    """A 200 whose body is not JSON (cut short, or a proxy's HTML error page) is worth a retry."""
    try:
        with cpu_turn():
            return decode_json(body)
    except (UnicodeDecodeError, ValueError):
        hint = "empty body" if not body.strip() else f"{len(body)} bytes that are not JSON"
        raise TransientSourceError(f"{where}: {hint}") from None
    except RecursionError:  # lists or objects nested 1,000 deep and more: no reader here goes that far
        # the same answer fails the same way however often it is asked for: no retry
        raise FatalSourceError(f"{where}: {len(body)} bytes of JSON nested deeper than the agent reads "
                               "(1,000 levels)") from None


class HttpConnector(Connector):
    """A connector that reaches its source through one ``HttpClient``.

    ``http`` may be passed in (tests inject one whose sleep and clock they control).
    """

    #: a keyset-paged connector asks for the next page while it normalises this one (see
    #: ``keyset_pages``); off, every request waits for the page before it (tests that move a
    #: fake clock between pages turn it off, so no request is in flight when the clock jumps)
    read_ahead: bool = True

    def __init__(
        self, settings: ConnectorSettings, context: ConnectorContext, *, http: HttpClient | None = None
    ) -> None:
        super().__init__(settings, context)
        self._stop = threading.Event()
        self.http = http or HttpClient(settings, sleep=self._sleep)

    def option(self, name: str) -> Any:
        """A connector option's value: configured, else its declared default."""
        spec = self.options[name]
        value = self.settings.options.get(name)
        if value is None or value == "":
            if spec.required:
                raise ConfigError(f"connectors.{self.name}.{name}", "missing (required)")
            return spec.default
        return value

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> None:
        # a wait between retries (up to retry_after_cap) must not hold up a shutdown
        self._stop.wait(seconds)

    def request_stop(self) -> None:
        """Stop before the next page request, cutting short any wait between retries."""
        self._stop.set()

    def close(self) -> None:
        self.http.close()


def json_object(body: Any, where: str) -> Mapping[str, Any]:
    """The answer must be a JSON object; anything else is a broken contract, not bad luck."""
    if not isinstance(body, Mapping):
        raise FatalSourceError(f"{where}: expected a JSON object, got {type(body).__name__}")
    return body


def json_list(body: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A list field of an answer; ``null`` or missing is an empty list."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FatalSourceError(f"{where}: field {key} is not a list")
    return value


def json_int(body: Mapping[str, Any], key: str) -> int | None:
    """An integer field of an answer (a count or a page total), or ``None`` when unusable."""
    value = body.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():  # what int() reads; "²" is a digit, not
        try:
            return int(value)
        except ValueError:  # more digits than int() reads from text
            return None
    return None


def token_lifetime(value: Any) -> float | None:
    """Seconds a session or token lives, from an ``expires_in`` field; ``None`` if not said."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds > 0 else None
    return None


def renew_at(now: float, lifetime: float | None) -> float:
    """When to renew a credential: a little before it runs out (10 %, at most a minute)."""
    if lifetime is None:
        return math.inf
    return now + lifetime - min(60.0, lifetime * 0.1)


def answer_message(body: Mapping[str, Any]) -> str:
    """A source's own error message, fit for a log line or a run record."""
    message = body.get("message")
    return redact_message(str(message))[:200] if message else "(no message)"
