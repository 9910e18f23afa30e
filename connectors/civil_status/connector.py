"""Reading the Ministry of Justice civil-status system (``sources.md`` section 2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import structlog

from connectors.base import ConnectorContext, Option
from connectors.civil_status import mapping
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
from connectors.paging import Batch, aware, ceil_second, floor_second, keyset_pages, window_start
from sync_agent.config import ConnectorSettings
from sync_agent.errors import FatalSourceError, SessionExpired
from sync_agent.model import Page
from sync_agent.redaction import keep_secret

log = structlog.get_logger()

TOKEN_PATH = "/api/token"
DOSSIERS_PATH = "/api/hotich/hoso"


class CivilStatusConnector(HttpConnector):
    """The Ministry of Justice civil-status system (hộ tịch).

    Quirks: OAuth2 client credentials (the token is renewed shortly before ``expires_in``
    runs out, and on a 401: new token, the call repeated once); times are
    ``dd/MM/yyyy HH:mm:ss`` local time; ``trangThai`` is an integer; pages are numbered from 0
    over a window that changes while it is read, so paging is keyset-emulated on
    ``ngayCapNhat``. ``maHoSoMCDT`` (the Centre's reception code) is empty for dossiers filed
    on the ministry's own portal.
    """

    type_name: ClassVar[str] = "civil_status"
    label: ClassVar[str | None] = "Hộ tịch (Bộ Tư pháp)"
    short_label: ClassVar[str | None] = "Hộ tịch"
    options: ClassVar[Mapping[str, Option]] = {
        "client_id": Option(str, required=True, help="OAuth2 client id issued to the ward"),
        "client_secret": Option(str, required=True, secret=True, help="its secret (use ${ENV})"),
        "field_code": Option(str, default=mapping.DEFAULT_FIELD_CODE, help="field of procedures"),
        "field_name": Option(str, default=mapping.DEFAULT_FIELD_NAME, help="its name in reports"),
    }
    default_page_size: ClassVar[int] = 200
    max_page_size: ClassVar[int] = 500

    def __init__(
        self, settings: ConnectorSettings, context: ConnectorContext, *, http: HttpClient | None = None
    ) -> None:
        super().__init__(settings, context, http=http)
        self._token: str | None = None
        self._renew_at = 0.0

    def login(self) -> None:
        """Get a token; ``FatalSourceError`` when the client credentials are refused (401)."""
        body = json_object(
            self.http.post_json(
                TOKEN_PATH,
                form={
                    "grant_type": "client_credentials",
                    "client_id": self.option("client_id"),
                    "client_secret": self.option("client_secret"),
                },
            ),
            f"POST {TOKEN_PATH}",
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FatalSourceError("the token endpoint answered without an access_token")
        keep_secret(token)  # a server may quote it in an error that reaches runs, status, the report
        self._token = token
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
        field_code = self.option("field_code")
        field_name = self.option("field_name")

        def request(position: dt.datetime, page_no: int) -> Batch:
            body = self._get(
                {
                    "maDonVi": self.context.ward_code,
                    "tuNgay": mapping.format_time(floor_second(position), self.context),
                    "denNgay": to_time,
                    "page": page_no,
                    "size": size,
                }
            )
            status = str(body.get("status"))
            if status != "1":
                raise FatalSourceError(
                    f"GET {DOSSIERS_PATH} answered status {status}: {answer_message(body)}"
                )
            pages = json_int(body, "totalPages")
            items = json_list(body, "content", f"GET {DOSSIERS_PATH} page {page_no}")
            if pages is None:
                return Batch(items)
            return Batch(items, last=page_no + 1 >= pages, more=page_no + 1 < pages)

        yield from keyset_pages(
            request,
            lambda item: mapping.normalise_item(
                item, self.context, source=self.name, field_code=field_code, field_name=field_name
            ),
            start=start,
            until=until,
            page_size=size,
            first_page=0,
            stopping=lambda: self.stopping,
            updated=(lambda item: mapping.updated_at(item, self.context)) if self.read_ahead else None,
        )

    def _get(self, params: Mapping[str, str | int]) -> Mapping[str, Any]:
        """One data call with a valid token; a 401 gets a new token and one more try."""
        if self._token is None or self.http.clock() >= self._renew_at:
            self.login()
        try:
            return self._get_once(params)
        except SessionExpired:
            log.info("source_session_renewed", source=self.name, reason="HTTP 401")
            self.login()
            return self._get_once(params)

    def _get_once(self, params: Mapping[str, str | int]) -> Mapping[str, Any]:
        return json_object(
            self.http.get_json(
                DOSSIERS_PATH,
                params=params,
                headers={"Authorization": f"Bearer {self._token}"},
                session_expired_on={401},
            ),
            f"GET {DOSSIERS_PATH}",
        )

