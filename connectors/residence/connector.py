"""Reading the Ministry of Public Security residence system (``sources.md`` section 3)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from connectors.base import Option
from connectors.http import HttpConnector, json_list, json_object
from connectors.paging import aware, build_page, floor_second, latest, window_start
from connectors.residence import mapping
from sync_agent.errors import FatalSourceError
from sync_agent.model import Page

DOSSIERS_PATH = "/v1/dossiers"
#: empty pages in a row, each with a new cursor, before a run gives up (``max_empty_pages``).
#: Large on purpose: the source may scan the province and return only the ward's records, so a
#: long stretch of other units' records comes as empty pages, and the checkpoint cannot move
#: across them: a limit the stretch exceeds fails every run at the same place. A million
#: records scanned at the largest page size; only a source that never ends should reach it.
DEFAULT_MAX_EMPTY_PAGES = 10_000


class ResidenceConnector(HttpConnector):
    """The Ministry of Public Security residence system (cư trú).

    Quirks: an ``X-API-Key`` header (a wrong key is a 403: fatal); an opaque ``next_cursor``
    over records ordered by (``updated_at``, ``id``); ``updated_after`` is exclusive and there
    is no upper bound, so the read stops at the first record at or past ``until``; ISO 8601
    times with an offset; rate limited (429 with ``Retry-After`` in seconds, honoured by the
    HTTP layer).
    """

    type_name: ClassVar[str] = "residence"
    label: ClassVar[str | None] = "Cư trú (Bộ Công an)"
    short_label: ClassVar[str | None] = "Cư trú"
    options: ClassVar[Mapping[str, Option]] = {
        "api_key": Option(str, required=True, secret=True, help="API key issued to the ward (use ${ENV})"),
        "field_code": Option(str, default=mapping.DEFAULT_FIELD_CODE, help="field of procedures"),
        "field_name": Option(str, default=mapping.DEFAULT_FIELD_NAME, help="its name in reports"),
        "max_empty_pages": Option(int, default=DEFAULT_MAX_EMPTY_PAGES, low=1,
                                  help="empty pages in a row a read crosses before its run fails"),
    }
    default_page_size: ClassVar[int] = 100
    max_page_size: ClassVar[int] = 200

    def login(self) -> None:
        """There is no login: ask for one record updated from now on, so a wrong key shows (403)."""
        self._page(mapping.format_time(dt.datetime.now(self.context.timezone), self.context), None, 1)

    def fetch(self, since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
        """Dossiers updated in ``[since, until)``, oldest first.

        Checkpoint: the last update time reached (the cursor is stable, so everything before
        it has been read), and ``until`` once the source runs out or passes ``until``.
        """
        tz = self.context.timezone
        until = aware(until, tz)
        start = window_start(since, self.settings, tz)
        if start >= until:
            return
        # updated_after is exclusive: start a second early (the wire has whole seconds);
        # what that re-reads is absorbed by the idempotent upsert
        after = mapping.format_time(floor_second(start) - dt.timedelta(seconds=1), self.context)
        field_code = self.option("field_code")
        field_name = self.option("field_name")
        cursor: str | None = None
        seen: set[str] = set()  # every cursor given so far: one given again means the paging loops
        checkpoint: dt.datetime | None = None
        empty, max_empty = 0, self.option("max_empty_pages")
        while not self.stopping:
            body = self._page(after, cursor, self.page_size)
            items = json_list(body, "items", f"GET {DOSSIERS_PATH}")
            next_cursor = body.get("next_cursor")
            if next_cursor is not None and not isinstance(next_cursor, str):
                raise FatalSourceError(f"GET {DOSSIERS_PATH}: next_cursor is not text")
            outputs = [
                mapping.normalise_item(item, self.context, source=self.name, field_code=field_code,
                                       field_name=field_name)
                for item in items
            ]
            reached = latest(outputs)
            # An empty page that gives a new cursor is not the end (a source may filter a stretch
            # it read down to nothing); a missing cursor is, and so is an empty page that hands
            # back the cursor it was sent (a source that pages like a tail: nothing more for now).
            done = (not next_cursor or (not items and next_cursor == cursor)
                    or (reached is not None and reached >= until))
            if done:
                checkpoint = until
            elif reached is not None:
                checkpoint = reached if checkpoint is None else max(checkpoint, reached)
            yield build_page(outputs, until=until, checkpoint=checkpoint)
            if done:
                return
            assert next_cursor is not None  # not done
            if next_cursor in seen:
                raise FatalSourceError(f"GET {DOSSIERS_PATH}: the source gave a cursor it had given before; "
                                       "its paging loops")
            empty = empty + 1 if not items else 0
            if empty >= max_empty:
                raise FatalSourceError(
                    f"GET {DOSSIERS_PATH}: {empty} empty pages in a row, each with a new cursor "
                    f"(connectors.{self.name}.max_empty_pages); the cursor stays where the records ended")
            seen.add(next_cursor)
            cursor = next_cursor

    def _page(self, after: str, cursor: str | None, limit: int) -> Mapping[str, Any]:
        params: dict[str, str | int] = {
            "unit": self.context.ward_code, "updated_after": after, "limit": limit,
        }
        if cursor:
            params["cursor"] = cursor
        return json_object(
            self.http.get_json(DOSSIERS_PATH, params=params, headers={"X-API-Key": self.option("api_key")}),
            f"GET {DOSSIERS_PATH}",
        )
