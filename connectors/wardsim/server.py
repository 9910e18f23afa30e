"""The HTTP harness every source simulator plugs into.

``SimServer`` owns what all four sources share: a loopback ``ThreadingHTTPServer`` in a daemon
thread, a clock (real time, or pinned by a test), the record store with its visibility rules, the
faults, the request log and the credentials. A ``SourceHandler`` (one per source, in
``connectors/<source>/simulator.py``) only speaks its wire format: auth, parameters, paging and the
shape of a record.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import email.utils
import importlib
import json
import logging
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

from connectors.wardsim.catalogue import DEFAULT_WARD_CODE, SOURCES
from connectors.wardsim.dataset import TZ, RecordVersion, WardDataset, to_epoch
from connectors.wardsim.faults import BadRecordKind, Faults, Trigger
from connectors.wardsim.store import Key, RecordStore

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: the request log keeps this many entries (oldest dropped): a server may run for days
REQUEST_LOG_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a source accepts: user/password (one_stop, household_business), client id/secret
    (civil_status, in ``username``/``password``) or an API key (residence)."""

    username: str = ""
    password: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)


#: the credentials each simulator accepts unless told otherwise
DEFAULT_CREDENTIALS: Mapping[str, Credentials] = MappingProxyType(
    {
        "one_stop": Credentials(username="tiepnhan", password="matkhau-tiepnhan"),
        "civil_status": Credentials(username="phuong-11311", password="bimat-hotich"),
        "residence": Credentials(api_key="khoa-cutru"),
        "household_business": Credentials(username="phuong-11311", password="matkhau-hkd"),
    }
)


class SimClock:
    """The servers' idea of now: real time by default, or pinned (and moved) by a test."""

    def __init__(self, at: dt.datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._pinned: dt.datetime | None = None
        self._offset = dt.timedelta(0)
        self.set(at)

    def now(self) -> dt.datetime:
        with self._lock:
            if self._pinned is not None:
                return self._pinned
            return dt.datetime.now(TZ) + self._offset

    def timestamp(self) -> int:
        return int(self.now().timestamp())

    def set(self, at: dt.datetime | None) -> None:
        """Pin the clock at ``at``; ``None`` returns to real time."""
        if at is not None and at.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware datetime")
        with self._lock:
            self._pinned = None if at is None else at.astimezone(TZ)
            self._offset = dt.timedelta(0)

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock (pinned or real) by ``delta``."""
        with self._lock:
            if self._pinned is not None:
                self._pinned += delta
            else:
                self._offset += delta

    @property
    def pinned(self) -> bool:
        return self._pinned is not None


@dataclass(frozen=True, slots=True)
class SimRequest:
    """An HTTP request as a handler sees it (header names lower-cased, last query value wins)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> SimResponse:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSONL file: sent as the escape it was there
            body = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")
        return cls(status, body, headers=tuple(headers))


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw and answered it (secrets masked)."""

    at: dt.datetime
    method: str
    path: str
    query: Mapping[str, str]
    #: the parsed JSON or form body, secrets masked; None when empty or unparseable
    body: Mapping[str, Any] | None
    #: "login", "data" or "other"
    kind: str
    status: int
    #: faults that touched the answer, comma-separated ("error:503", "duplicates", "bad_records:2", ...)
    fault: str | None
    #: how the caller authenticated: "basic:USER", "bearer", "api-key" or None
    auth: str | None


@dataclass(frozen=True, slots=True)
class ServedPage:
    """What a handler puts on the wire for one page."""

    items: list[dict[str, Any]]
    total: int
    more: bool
    #: the (update time, id) of the last real record of the page, for cursors
    last_key: Key | None


_SECRET_KEYS = frozenset({"password", "client_secret", "session", "access_token", "token"})


class SessionBook:
    """Sessions or tokens a source issued, with their expiry on the server clock."""

    def __init__(self, clock: SimClock, ttl: int, prefix: str, seed: int) -> None:
        self._clock = clock
        self.ttl = ttl
        self._prefix = prefix
        self._rng = random.Random(f"wardsim-sessions:{prefix}:{seed}")
        self._lock = threading.Lock()
        self._expires: dict[str, int] = {}

    def issue(self) -> str:
        with self._lock:
            token = f"{self._prefix}{self._rng.getrandbits(96):024x}"
            self._expires[token] = self._clock.timestamp() + self.ttl
            return token

    def valid(self, token: str | None) -> bool:
        with self._lock:
            expires = self._expires.get(token or "")
        return expires is not None and self._clock.timestamp() < expires

    def clear(self) -> None:
        with self._lock:
            self._expires.clear()


class SourceHandler(abc.ABC):
    """One source's wire format. Subclasses live in ``connectors/<source>/simulator.py``."""

    source: ClassVar[str]
    #: record fields the bad-records fault breaks
    id_field: ClassVar[str]
    status_field: ClassVar[str]
    unknown_status: ClassVar[Any]
    date_field: ClassVar[str]
    bad_date: ClassVar[str]
    login_paths: ClassVar[frozenset[str]] = frozenset()
    data_paths: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._server: SimServer | None = None

    @property
    def server(self) -> SimServer:
        if self._server is None:
            raise RuntimeError("handler is not bound to a server")
        return self._server

    def bind(self, server: SimServer) -> None:
        self._server = server

    def classify(self, request: SimRequest) -> str:
        """ "login", "data" or "other": what a fault's target matches."""
        if request.path in self.login_paths:
            return "login"
        return "data" if request.path in self.data_paths else "other"

    @abc.abstractmethod
    def handle(self, request: SimRequest, kind: str) -> SimResponse:
        """Answer one request (auth, parameters, the page)."""

    @staticmethod
    @abc.abstractmethod
    def render(version: RecordVersion) -> dict[str, Any]:
        """A generated record version as this source's wire item."""

    def render_item(self, version: RecordVersion) -> dict[str, Any]:
        """What this handler instance serves for a generated version (options may change it)."""
        return self.render(version)

    @staticmethod
    @abc.abstractmethod
    def updated_of(item: Mapping[str, Any]) -> dt.datetime:
        """The wire item's last-update time; ``ValueError`` when it does not parse."""

    @classmethod
    def id_of(cls, item: Mapping[str, Any]) -> str | None:
        value = item.get(cls.id_field)
        return None if value in (None, "") else str(value)

    def expire_sessions(self) -> None:  # noqa: B027 - sources without sessions have nothing to expire
        """Invalidate every session/token (sources without sessions do nothing)."""

    def break_record(self, item: Mapping[str, Any], kind: BadRecordKind) -> dict[str, Any]:
        """A copy of ``item`` a connector must quarantine."""
        broken = dict(item)
        rid = self.id_of(item) or "?"
        if kind == "missing_id":
            broken.pop(self.id_field, None)
        elif kind == "unknown_status":
            broken[self.id_field] = f"{rid}-LOI"
            broken[self.status_field] = self.unknown_status
        else:
            broken[self.id_field] = f"{rid}-LOI"
            broken[self.date_field] = self.bad_date
        return broken


_H = TypeVar("_H", bound=type[SourceHandler])
_REGISTRY: dict[str, type[SourceHandler]] = {}


def register_handler(cls: _H) -> _H:
    """Class decorator: make ``cls`` the handler of ``cls.source``."""
    _REGISTRY[cls.source] = cls
    return cls


def handler_class(source: str) -> type[SourceHandler]:
    """The handler class of a source (imports ``connectors.<source>.simulator`` on first use)."""
    if source not in _REGISTRY:
        if source not in SOURCES:
            raise KeyError(f"no simulator for source {source!r} (known: {', '.join(SOURCES)})")
        importlib.import_module(f"connectors.{source}.simulator")
    return _REGISTRY[source]


def _html_error_page() -> bytes:
    return (
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>Lỗi hệ thống</title></head>'
        "<body><h1>Hệ thống đang bảo trì</h1><p>Xin vui lòng quay lại sau ít phút.</p></body></html>"
    ).encode()


class SimServer:
    """One source system on loopback. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        handler: SourceHandler | str,
        *,
        ward_code: str = DEFAULT_WARD_CODE,
        credentials: Credentials | None = None,
        port: int = 0,
        clock: SimClock | None = None,
        seed: int = 0,
        session_ttl: int = 1800,
        rate_limit: float | None = None,
    ) -> None:
        self.handler = handler_class(handler)() if isinstance(handler, str) else handler
        self.source = self.handler.source
        self.ward_code = ward_code
        self.credentials = credentials or DEFAULT_CREDENTIALS.get(self.source, Credentials())
        self.port = port
        self.clock = clock or SimClock()
        self.store = RecordStore()
        self.sessions = SessionBook(self.clock, session_ttl, f"{self.source}-", seed)
        self.faults = Faults(seed=seed, on_expire=self.expire_sessions)
        #: real rate limit on data requests, per second (None: unlimited)
        self.rate_limit = rate_limit
        self._recent: deque[float] = deque()
        self._log: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._log_lock = threading.Lock()
        self._local = threading.local()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.handler.bind(self)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on 127.0.0.1 (port 0: a free one); returns the base URL."""
        if self._httpd is not None:
            return self.url
        httpd = _HTTPServer((LOOPBACK, self.port), _RequestHandler)
        httpd.sim = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"wardsim-{self.source}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{LOOPBACK}:{self.port}"

    # --- data -------------------------------------------------------------------------------------

    def load_dataset(self, dataset: WardDataset) -> int:
        """Serve ``dataset``'s records of this source (replacing what was loaded); returns the count."""
        skeleton = dataset.skeleton(self.source)
        render = self.handler.render_item
        source = self.source

        def provider(index: int, k: int) -> dict[str, Any]:
            return render(dataset.version(source, index, k))

        self.ward_code = dataset.ward_code
        self.store.load_generated(
            skeleton.ids,
            skeleton.refs,
            skeleton.ver_start,
            skeleton.ver_updated,
            skeleton.ver_visible,
            provider,
        )
        return len(skeleton.ids)

    def load_jsonl(self, path: str | Path) -> int:
        """Add one wire item per line; several lines with one id are successive versions.

        Optional keys: ``_visible_from`` (ISO 8601; default: the item's update time) and
        ``_updated`` (ISO 8601 sort time for an item whose own update time does not parse).
        """
        n = 0
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    updated = self._updated_epoch(item)
                    visible_raw = item.get("_visible_from")
                    visible = to_epoch(dt.datetime.fromisoformat(visible_raw)) if visible_raw else updated
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc
                self._store_item(item, updated, visible)
                n += 1
        return n

    def add(self, items: Iterable[Mapping[str, Any]], visible_from: dt.datetime | None = None) -> int:
        """Push new records or new versions of existing ones (matched by id).

        A version becomes visible at ``visible_from``; by default at its own update time, or now
        if that is past: an item whose update time is an hour ago arrives late, as real sources do.
        """
        now = self.clock.timestamp()
        n = 0
        for item in items:
            updated = self._updated_epoch(item)
            visible = to_epoch(visible_from) if visible_from is not None else max(updated, now)
            self._store_item(item, updated, visible)
            n += 1
        return n

    def _updated_epoch(self, item: Mapping[str, Any]) -> int:
        try:
            return to_epoch(self.handler.updated_of(item))
        except (ValueError, TypeError, KeyError):
            if item.get("_updated"):
                return to_epoch(dt.datetime.fromisoformat(str(item["_updated"])))
            raise

    def _store_item(self, item: Mapping[str, Any], updated: int, visible: int) -> None:
        payload = {k: v for k, v in item.items() if not k.startswith("_")}
        self.store.add(self.handler.id_of(payload), updated, visible, payload)

    # --- sessions and log -------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Invalidate every session/token now."""
        self.sessions.clear()
        self.handler.expire_sessions()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def credentials_ok(self, username: str | None, password: str | None) -> bool:
        return bool(self.credentials.username) and (username, password) == (
            self.credentials.username,
            self.credentials.password,
        )

    # --- what handlers call -----------------------------------------------------------------------

    def page(
        self,
        lower: Key | None,
        upper: Key | None,
        *,
        lower_exclusive: bool = False,
        skip: int = 0,
        limit: int,
    ) -> ServedPage:
        """One page of the visible records in a key range, with the page-level faults applied."""
        selection = self.store.select(
            self.clock.timestamp(), lower, upper, lower_exclusive=lower_exclusive, skip=skip, limit=limit
        )
        items = [self.store.payload(e) for e in selection.entries]
        last_key = selection.entries[-1].key if selection.entries else None
        if self.faults.duplicates and selection.previous is not None and items:
            items.insert(0, self.store.payload(selection.previous))
            self._note("duplicates")
        bad = self.faults.bad_records_for(len(items))
        if bad:
            out: list[dict[str, Any]] = []
            cursor = 0
            for position, item in enumerate(items):
                out.append(item)
                while cursor < len(bad) and bad[cursor][0] == position:
                    out.append(self.handler.break_record(item, bad[cursor][1]))
                    cursor += 1
            items = out
            self._note(f"bad_records:{len(bad)}")
        return ServedPage(items, selection.total, selection.more, last_key)

    def _note(self, text: str) -> None:
        notes: list[str] | None = getattr(self._local, "notes", None)
        if notes is not None:
            notes.append(text)

    def dispatch(self, request: SimRequest) -> SimResponse:
        """Answer one request: latency, pre-faults, rate limit, the handler, post-faults, the log."""
        self._local.notes = notes = []
        kind = self.handler.classify(request)
        delay = self.faults.latency(kind)
        if delay > 0:
            time.sleep(delay)
            notes.append(f"latency:{delay:g}")
        trigger = self.faults.before(kind)
        if trigger is not None:
            response = self._faulty(trigger)
            notes.append(trigger.label)
        elif kind == "data" and self._rate_limited():
            response = SimResponse.json(
                {"error": "too_many_requests", "message": "Vượt quá số yêu cầu cho phép"},
                429,
                [("Retry-After", "1")],
            )
            notes.append("rate_limit")
        else:
            try:
                response = self.handler.handle(request, kind)
            except Exception:  # a bug in a handler must show up as a 500, not a dead socket
                log.exception("wardsim %s handler failed on %s %s", self.source, request.method, request.path)
                response = SimResponse.json({"error": "internal"}, 500)
            if response.status == 200:
                post = self.faults.after(kind)
                if post is not None:
                    response = self._faulty(post, response)
                    notes.append(post.label)
        self._record(request, kind, response.status, notes)
        return response

    def _faulty(self, trigger: Trigger, response: SimResponse | None = None) -> SimResponse:
        """The answer a fault puts in place of (or makes of) the real one."""
        if trigger.kind == "throttle":
            retry_after = str(trigger.retry_after)
            if trigger.http_date:
                when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=trigger.retry_after)
                retry_after = email.utils.format_datetime(when, usegmt=True)
            return SimResponse.json(
                {"error": "too_many_requests", "message": "Vượt quá số yêu cầu cho phép"},
                429,
                [("Retry-After", retry_after)],
            )
        if trigger.kind == "html" or (trigger.kind == "error" and trigger.status in (502, 504)):
            # what a gateway in front of the source answers
            return SimResponse(trigger.status, _html_error_page(), content_type="text/html; charset=utf-8")
        if trigger.kind == "error":
            return SimResponse.json({"error": "server_error", "message": "Lỗi máy chủ"}, trigger.status)
        assert response is not None  # truncate
        return SimResponse(200, response.body[: max(1, len(response.body) // 2)], response.content_type)

    def _rate_limited(self) -> bool:
        if not self.rate_limit:
            return False
        now = time.monotonic()
        with self._log_lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return True
            self._recent.append(now)
            return False

    def _record(self, request: SimRequest, kind: str, status: int, notes: list[str]) -> None:
        body: dict[str, Any] | None = None
        if request.body:
            try:
                parsed = request.json() if request.body.lstrip()[:1] == b"{" else request.form()
                if isinstance(parsed, dict):
                    body = {k: ("***" if k in _SECRET_KEYS else v) for k, v in parsed.items()}
            except (ValueError, UnicodeDecodeError):
                body = None
        authz = request.header("authorization") or ""
        auth: str | None = None
        if authz.lower().startswith("basic "):
            auth = f"basic:{_basic_user(authz) or '?'}"
        elif authz.lower().startswith("bearer "):
            auth = "bearer"
        elif request.header("x-api-key") is not None:
            auth = "api-key"
        entry = RequestRecord(
            at=dt.datetime.now(TZ),
            method=request.method,
            path=request.path,
            query=MappingProxyType(dict(request.query)),
            body=MappingProxyType(body) if body is not None else None,
            kind=kind,
            status=status,
            fault=",".join(notes) or None,
            auth=auth,
        )
        with self._log_lock:
            self._log.append(entry)


def _basic_user(header: str) -> str | None:
    creds = basic_credentials(header)
    return creds[0] if creds else None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, None when absent or malformed."""
    import base64
    import binascii

    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class _HTTPServer(ThreadingHTTPServer):
    allow_reuse_address = True
    sim: SimServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # skip HTTPServer's reverse DNS lookup of the address (slow on some hosts)
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def close_connections(self) -> None:
        """Cut open keep-alive connections, so a stopped source really is down."""
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away: nothing to report
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 60  # an idle keep-alive connection is dropped after this many seconds

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        request = SimRequest(
            method=self.command,
            path=parts.path.rstrip("/") or "/",
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        response = self.server.sim.dispatch(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept by ``SimServer`` instead."""


def start_simulators(
    dataset: WardDataset,
    sources: Iterable[str] | None = None,
    ports: Mapping[str, int] | None = None,
    *,
    clock: SimClock | None = None,
    credentials: Mapping[str, Credentials] | None = None,
    seed: int = 0,
    rate_limit: float | None = None,
) -> dict[str, SimServer]:
    """Start one server per source of ``dataset`` (all by default) on loopback, sharing one clock.

    ``ports`` maps a source to its port (missing or None: a free port). The servers are started;
    stop them with ``stop_simulators`` or each ``stop()``.
    """
    clock = clock or SimClock()
    chosen = list(sources) if sources is not None else list(dataset.sources)
    servers: dict[str, SimServer] = {}
    try:
        for source in chosen:
            server = SimServer(
                source,
                ward_code=dataset.ward_code,
                credentials=(credentials or {}).get(source),
                port=(ports or {}).get(source) or 0,
                clock=clock,
                seed=seed,
                rate_limit=rate_limit if source == "residence" else None,
            )
            server.load_dataset(dataset)
            server.start()
            servers[source] = server
    except BaseException:
        stop_simulators(servers)
        raise
    return servers


def stop_simulators(servers: Mapping[str, SimServer]) -> None:
    for server in servers.values():
        server.stop()
