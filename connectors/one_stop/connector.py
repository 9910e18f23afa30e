"""Reading the city's one-stop reception register (``sources.md`` section 1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import structlog

from connectors.base import ConnectorContext, Option
from connectors.http import (
    HttpClient,
    HttpConnector,
    answer_message,
    json_int,
    json_list,
    json_object,
    renew_at,
    token_lifetime,
)
from connectors.one_stop import mapping
from connectors.paging import Batch, aware, ceil_second, floor_second, keyset_pages, window_start
from sync_agent.config import ConnectorSettings
from sync_agent.errors import FatalSourceError, SessionExpired
from sync_agent.model import Page
from sync_agent.redaction import keep_secret

log = structlog.get_logger()

LOGIN_PATH = "/dangnhap"
SERVICE_PATH = "/dichvu"
SERVICE = "LayDanhSachHoSo"
_OK_CODES = frozenset({"0", "00"})
_EXPIRED = "-1"


class OneStopConnector(HttpConnector):
    """The city's administrative-procedure information system (Hệ thống thông tin giải quyết TTHC).

    Quirks: a session login, then one ``/dichvu`` endpoint for everything; failures come back as
    HTTP 200 with an ``error_code`` (``"-1"`` = session expired: log in again, repeat once);
    times are ``yyyyMMddHHmmss`` local time; pages are numbered from 1 over a window that
    changes while it is read, so paging is keyset-emulated on ``NgayCapNhat``. The field of
    procedures comes with each record (``MaLinhVuc``/``TenLinhVuc``).
    """

    type_name: ClassVar[str] = "one_stop"
    label: ClassVar[str | None] = "Một cửa (HTTT giải quyết TTHC thành phố)"
    short_label: ClassVar[str | None] = "Một cửa"
    reception_register: ClassVar[bool] = True
    options: ClassVar[Mapping[str, Option]] = {
        "username": Option(str, required=True, help="account on the one-stop system"),
        "password": Option(str, required=True, secret=True, help="its password (use ${ENV})"),
    }
    default_page_size: ClassVar[int] = 500
    max_page_size: ClassVar[int] = 1000

    def __init__(
        self, settings: ConnectorSettings, context: ConnectorContext, *, http: HttpClient | None = None
    ) -> None:
        super().__init__(settings, context, http=http)
        self._session: str | None = None
        self._renew_at = 0.0

    def login(self) -> None:
        """Open a session; ``FatalSourceError`` when the credentials are refused."""
        credentials = {"username": self.option("username"), "password": self.option("password")}
        body = json_object(self.http.post_json(LOGIN_PATH, json_body=credentials), f"POST {LOGIN_PATH}")
        code = str(body.get("error_code"))
        if code not in _OK_CODES:
            raise FatalSourceError(f"login refused (error_code {code}): {answer_message(body)}")
        session = body.get("session")
        if not isinstance(session, str) or not session:
            raise FatalSourceError("login answered without a session")
        keep_secret(session)  # a server may quote it in an error that reaches runs, status, the report
        self._session = session
        self._renew_at = renew_at(self.http.clock(), token_lifetime(body.get("expires_in")))

    def fetch(self, since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
        """Dossiers updated in ``[since, until)``, oldest first; checkpoint = last time reached."""
        tz = self.context.timezone
        until = aware(until, tz)
        start = window_start(since, self.settings, tz)
        if start >= until:
            return
        size = self.page_size
        to_time = mapping.format_time(ceil_second(until), self.context)

        def request(position: dt.datetime, page_no: int) -> Batch:
            body = self._service(
                {
                    "madonvi": self.context.ward_code,
                    "service": SERVICE,
                    "TuNgay": mapping.format_time(floor_second(position), self.context),
                    "DenNgay": to_time,
                    "TrangSo": page_no,
                    "SoBanGhi": size,
                }
            )
            total = json_int(body, "TongSoBanGhi")
            items = json_list(body, "data", f"{SERVICE} page {page_no}")
            return Batch(items, total=total)

        yield from keyset_pages(
            request,
            lambda item: mapping.normalise_item(item, self.context, source=self.name),
            start=start,
            until=until,
            page_size=size,
            first_page=1,
            stopping=lambda: self.stopping,
            updated=(lambda item: mapping.updated_at(item, self.context)) if self.read_ahead else None,
        )

    def _service(self, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        """Call ``/dichvu``; an expired session is renewed and the call repeated once."""
        if self._session is None or self.http.clock() >= self._renew_at:
            self.login()
        body = self._post_service(payload)
        if str(body.get("error_code")) == _EXPIRED:
            log.info("source_session_renewed", source=self.name, reason="error_code -1")
            self.login()
            body = self._post_service(payload)
            if str(body.get("error_code")) == _EXPIRED:
                raise SessionExpired(f"{SERVICE}: session refused again right after a new login")
        code = str(body.get("error_code"))
        if code not in _OK_CODES:
            raise FatalSourceError(f"{SERVICE} answered error_code {code}: {answer_message(body)}")
        return body

    def _post_service(self, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        return json_object(
            self.http.post_json(SERVICE_PATH, json_body={"session": self._session, **payload}),
            f"POST {SERVICE_PATH}",
        )

