"""Reading the national household-business registration system (``sources.md`` section 4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from connectors.base import Option
from connectors.household_business import mapping
from connectors.http import HttpConnector, json_int, json_list, json_object
from connectors.paging import aware, build_page, local_midnight, window_start
from sync_agent.errors import TransientSourceError
from sync_agent.model import Page

log = structlog.get_logger()

DOSSIERS_PATH = "/apiDKKD/HoKinhDoanh/danhSachHoSo"
#: the source's fixed page size
PAGE_SIZE = 50
#: a range of days whose answer has more pages than this is split in two, so that a re-read
#: after a change costs little and is unlikely to meet another change
MAX_WINDOW_PAGES = 20
#: reads of one window before giving up on it for this run
MAX_READS = 4
#: how close to midnight (by this machine's clock, which may lag the source's) a day is taken
#: as over: records may then leave it for the next day
DAY_END_MARGIN = dt.timedelta(minutes=10)


def _now(tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.now(tz)


@dataclass(frozen=True)
class _Answer:
    items: list[Any]
    total: int | None
    pages: int | None


@dataclass(frozen=True)
class _Read:
    """One read of a window: whether a record moved (came twice with different ``NgayCapNhat``)
    or ``TongSo`` changed while it was read, and what it saw, page by page (each page's
    ``TongSo``, then each record's ``MaHoSo`` and ``NgayCapNhat``)."""

    moved: bool
    total_changed: bool
    sightings: tuple[tuple[int | None, tuple[tuple[object, object], ...]], ...]

    @property
    def unchanged(self) -> bool:
        return not (self.moved or self.total_changed)

    def twins(self) -> dict[str, frozenset[object]]:
        """The source ids seen with more than one update time, with those times."""
        times: dict[object, set[object]] = {}
        for _total, records in self.sightings:
            for key, at in records:
                times.setdefault(key, set()).add(at)
        return {str(key): frozenset(seen) for key, seen in times.items() if len(seen) > 1}


class HouseholdBusinessConnector(HttpConnector):
    """The national household-business registration system (Hệ thống thông tin đăng ký hộ kinh doanh).

    Quirks: HTTP Basic auth (401: fatal); the only filter is whole calendar days
    (``tuNgay``/``denNgay`` inclusive) and pages are a fixed 50, numbered from 1, over records
    ordered by update time, so a record updated while we read shifts the rest. The read goes
    window by window (past days as ranges, split when large; the day of ``until`` on its own)
    and a window that changed while we read it is read again; its checkpoint only then moves
    past it. Changed means ``TongSo`` moved (a record left a range of past days), or a record
    came twice with different ``NgayCapNhat``: updated during the read, it left a page already
    read for the end of the same day, the records behind it moved up one, and one of them
    crossed a page boundary unread while the total stayed the same. Neither shows when a record
    leaves a range of past days and a late update lands in it behind the boundary at the same
    time: the total holds, nothing comes twice, and the record that crossed is lost for good
    (later runs do not go back to those days). So a window of several pages that looked still is
    read once more, without yielding, and settled only if the second read is the same record by
    record. Not needed: a window of one page (one answer), and the window of a day still running
    (an update keeps a record in it, and shows as a move); the second read would there meet every
    new filing as a change. Records updated at or after ``until`` are left for the next run, which
    re-reads that whole day anyway.
    """

    type_name: ClassVar[str] = "household_business"
    # a system, as the others are named: not a field's name (Đăng ký kinh doanh)
    label: ClassVar[str | None] = "Đăng ký hộ kinh doanh (HTTT quốc gia)"
    short_label: ClassVar[str | None] = "Hộ kinh doanh"
    options: ClassVar[Mapping[str, Option]] = {
        "username": Option(str, required=True, help="account on the registration system"),
        "password": Option(str, required=True, secret=True, help="its password (use ${ENV})"),
        "field_code": Option(str, default=mapping.DEFAULT_FIELD_CODE, help="field of procedures"),
        "field_name": Option(str, default=mapping.DEFAULT_FIELD_NAME, help="its name in reports"),
    }
    default_page_size: ClassVar[int] = PAGE_SIZE
    max_page_size: ClassVar[int] = PAGE_SIZE

    @property
    def page_size(self) -> int:
        """Fixed by the source; a configured ``page_size`` cannot change it."""
        return PAGE_SIZE

    def login(self) -> None:
        """There is no login: ask for today's first page, so wrong credentials show (401)."""
        today = dt.datetime.now(self.context.timezone).date()
        self._page(today, today, 1)

    def fetch(self, since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
        """Dossiers updated in ``[since, until)``, oldest first.

        Checkpoint: the end of the last window read without change (local midnight after
        its last day, or ``until`` for the last window); ``None`` before the first.
        """
        tz = self.context.timezone
        until = aware(until, tz)
        start = window_start(since, self.settings, tz)
        if start >= until:
            return
        first_day = start.astimezone(tz).date()
        last_day = (until - dt.timedelta(microseconds=1)).astimezone(tz).date()
        # Past days apart from the last one: a record updated during the read leaves a window
        # of past days (TongSo drops), but would stay inside a window that includes today.
        windows: deque[tuple[dt.date, dt.date]] = deque()
        if first_day < last_day:
            windows.append((first_day, last_day - dt.timedelta(days=1)))
        windows.append((last_day, last_day))
        checkpoint: dt.datetime | None = None
        while windows and not self.stopping:
            d1, d2 = windows.popleft()
            window_end = min(local_midnight(d2 + dt.timedelta(days=1), tz), until)
            previous: _Read | None = None
            for read in range(1, MAX_READS + 1):
                first = self._page(d1, d2, 1)
                if d1 < d2 and (first.pages or 0) > MAX_WINDOW_PAGES:
                    windows.extendleft(reversed(_halves(d1, d2)))
                    break
                one_page = _last_page(first, 1)
                outcome = yield from self._read_window(d1, d2, first, until, checkpoint, window_end,
                                                       settles=one_page)
                if self.stopping:
                    return
                seen = outcome  # as read: the next read's twins are compared with these
                if outcome.moved and previous is not None and previous.moved and outcome.twins() == previous.twins():
                    # The same records twice with the same times in two reads: the source lists
                    # them twice; a record that moved is not seen again at the times it left. On a
                    # day still running, filings meanwhile make no two reads alike, and taking the
                    # twins for moves failed every run of a busy day.
                    log.warning("source_lists_a_record_twice", source=self.name, days=f"{d1}..{d2}",
                                source_ids=sorted(outcome.twins()))
                    outcome = dataclasses.replace(outcome, moved=False)
                # a day still running: no record can have left it (an update keeps it in the day), so
                # a changed TongSo is filings that came meanwhile, which skip nothing (a move does)
                running = _now(tz) < local_midnight(d2 + dt.timedelta(days=1), tz) - DAY_END_MARGIN
                if not outcome.moved and (running or not outcome.total_changed):
                    # one answer, a day no record can have left yet, or two reads alike record by
                    # record (the second one silent)
                    settled = (one_page or running or (previous is not None and outcome.sightings == previous.sightings)
                               or self._sightings(d1, d2) == outcome.sightings)
                    if self.stopping:
                        return
                    if settled:
                        checkpoint = window_end
                        if not one_page:  # its last page did not carry the window's end
                            yield build_page((), until=until, checkpoint=checkpoint)
                        break
                previous = seen
                log.info("source_window_changed", source=self.name, days=f"{d1}..{d2}", read=read)
            else:
                if d1 < d2:
                    windows.extendleft(reversed(_halves(d1, d2)))
                    continue
                raise TransientSourceError(
                    f"the dossiers updated on {d1} kept changing over {MAX_READS} reads; next run tries again"
                )

    def _read_window(
        self,
        d1: dt.date,
        d2: dt.date,
        first: _Answer,
        until: dt.datetime,
        checkpoint: dt.datetime | None,
        window_end: dt.datetime,
        settles: bool,
    ) -> Generator[Page, None, _Read]:
        """Yield the window's pages; say whether its total held and no record moved meanwhile.
        If ``settles``, the last page of a read that held carries the window's end as checkpoint."""
        field_code = self.option("field_code")
        field_name = self.option("field_name")
        answer, trang, moved, total_changed = first, 1, False, False
        read: dict[str, tuple[object, int]] = {}
        sightings: list[tuple[int | None, tuple[tuple[object, object], ...]]] = []
        while True:
            moved = _moved(answer.items, trang, read) or moved
            total_changed = total_changed or answer.total != first.total
            changed = moved or total_changed
            sightings.append((answer.total, tuple(_sighting(item) for item in answer.items)))
            outputs = [
                mapping.normalise_item(item, self.context, source=self.name, field_code=field_code,
                                       field_name=field_name)
                for item in answer.items
            ]
            if _last_page(answer, trang):
                yield build_page(outputs, until=until,
                                 checkpoint=window_end if settles and not changed else checkpoint)
                return _Read(moved=moved, total_changed=total_changed, sightings=tuple(sightings))
            yield build_page(outputs, until=until, checkpoint=checkpoint)
            if self.stopping:
                return _Read(moved=True, total_changed=True, sightings=())
            trang += 1
            answer = self._page(d1, d2, trang)

    def _sightings(self, d1: dt.date, d2: dt.date) -> tuple[tuple[int | None, tuple[tuple[object, object], ...]], ...]:
        """A read of the window that keeps only what ``_Read.sightings`` keeps, to compare."""
        out = []
        trang = 1
        while not self.stopping:
            answer = self._page(d1, d2, trang)
            out.append((answer.total, tuple(_sighting(item) for item in answer.items)))
            if _last_page(answer, trang):
                break
            trang += 1
        return tuple(out)

    def _page(self, d1: dt.date, d2: dt.date, trang: int) -> _Answer:
        params: dict[str, str | int] = {
            "maPhuongXa": self.context.ward_code,
            "tuNgay": mapping.format_day(d1),
            "denNgay": mapping.format_day(d2),
            "trang": trang,
        }
        where = f"GET {DOSSIERS_PATH}"
        body = json_object(
            self.http.get_json(
                DOSSIERS_PATH, params=params, auth=(self.option("username"), self.option("password"))
            ),
            where,
        )
        return _Answer(items=json_list(body, "HoSo", where), total=json_int(body, "TongSo"),
                       pages=json_int(body, "SoTrang"))


def _last_page(answer: _Answer, trang: int) -> bool:
    return len(answer.items) < PAGE_SIZE or (answer.pages is not None and trang >= answer.pages)


def _halves(d1: dt.date, d2: dt.date) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    mid = d1 + (d2 - d1) // 2
    return (d1, mid), (mid + dt.timedelta(days=1), d2)


def _sighting(item: Any) -> tuple[object, object]:
    return (item.get("MaHoSo"), item.get("NgayCapNhat")) if isinstance(item, dict) else (None, repr(item))


def _moved(items: list[Any], trang: int, read: dict[str, tuple[object, int]]) -> bool:
    """Whether one of ``items`` (page ``trang``) was read on an earlier page of this window with
    another update time; remembers where each was first read (ids to ``NgayCapNhat`` and page).
    Twins on one page are not a move (a source listing a record twice): only a later page can
    show a record that moved while we read."""
    moved = False
    for item in items:
        if isinstance(item, dict) and isinstance(key := item.get("MaHoSo"), str):
            at, page = read.setdefault(key, (item.get("NgayCapNhat"), trang))
            moved = moved or (page < trang and at != item.get("NgayCapNhat"))
    return moved
