"""Reading a changing data set page by page without losing records, shared by the connectors.

The sources page by offset over records ordered by update time, and records are updated while
we read: one that moves to the end shifts every later record one place back, and a plain
page-number loop then silently skips one. ``keyset_pages`` restarts each request at the last
update time seen instead, so a shift can only cause re-reads, which the store's idempotent
upsert absorbs. Only under one update time, when more records share it than a page holds, must
it go by page number; it then reads that time's pages again, until two passes agree.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sync_agent.config import ConnectorSettings
from sync_agent.errors import FatalSourceError, TransientSourceError
from sync_agent.model import DossierRecord, Page, QuarantinedRecord
from sync_agent.payload import payload_json
from sync_agent.prefetch import cpu_turn

#: where "the whole history" starts when neither ``since`` nor ``start_date`` says otherwise: early
#: enough for an update time left at the Unix epoch by a source's bug, which would otherwise never
#: be read, not even to be quarantined. Not earlier: before 1906 Vietnam's zone has a local mean
#: time offset in seconds (+07:06:30) that an ISO time on the wire would have to carry.
FAR_PAST = dt.date(1970, 1, 1)

Output = DossierRecord | QuarantinedRecord

#: passes over the pages of one update time before a run gives up on it (see ``keyset_pages``)
MAX_LOOKS = 3


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def window_start(since: dt.datetime | None, settings: ConnectorSettings, tz: ZoneInfo) -> dt.datetime:
    """``since``, else the configured ``start_date``, else the far past (first sync)."""
    if since is not None:
        return aware(since, tz)
    return local_midnight(settings.start_date or FAR_PAST, tz)


def aware(moment: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """A zone-less datetime from a caller is taken in ``tz``: the source's zone, as the connector's
    context gives it (``connectors.NAME.timezone``)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def floor_second(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=0)


def ceil_second(moment: dt.datetime) -> dt.datetime:
    """The wire formats have whole seconds; an exclusive bound rounds up so nothing before
    ``until`` is left out (what lies past it is dropped by ``build_page``)."""
    floor = moment.replace(microsecond=0)
    return floor if floor == moment else floor + dt.timedelta(seconds=1)


def latest(outputs: Iterable[Output]) -> dt.datetime | None:
    """The largest update time among a page's records (quarantined ones included, when known)."""
    times = [o.source_updated_at for o in outputs if o.source_updated_at is not None]
    return max(times) if times else None


#: a record updated this far past a read's end is not left for a later run: its time is wrong
#: (a clock, or a date typed as 2999), no run would ever read it, and it would be dropped unseen
FUTURE_TOLERANCE = dt.timedelta(days=1)


def build_page(outputs: Iterable[Output], *, until: dt.datetime, checkpoint: dt.datetime | None) -> Page:
    """A page of what was read: records updated at or after ``until`` are left for the next
    run (those updated more than ``FUTURE_TOLERANCE`` later are quarantined), and a record met
    twice in one page is kept once, as last seen."""
    records: dict[str, DossierRecord] = {}
    quarantined: list[QuarantinedRecord] = []
    for out in outputs:
        if out.source_updated_at is not None and out.source_updated_at >= until:
            if out.source_updated_at - until < FUTURE_TOLERANCE:
                continue
            out = QuarantinedRecord(
                source=out.source, raw=out.raw, source_id=out.source_id, source_updated_at=out.source_updated_at,
                reason=(out.reason + "; " if isinstance(out, QuarantinedRecord) else "")
                + f"updated at {out.source_updated_at.isoformat()}, more than a day after this read's end: "
                "a time in the future, which no read would ever reach")
        if isinstance(out, QuarantinedRecord):
            quarantined.append(out)
        else:
            records.pop(out.source_id, None)
            records[out.source_id] = out
    return Page(records=tuple(records.values()), quarantined=tuple(quarantined), checkpoint=checkpoint)


@dataclass(frozen=True)
class Batch:
    """One answer of an offset-paged source: its items; whether it says nothing follows
    (``last``) or that more does (``more``); or how many records it counts from the requested
    time on (``total``), which then alone decides the end. Without a total, a short page is the
    end unless ``more`` says otherwise."""

    items: Sequence[Any]
    last: bool = False
    more: bool = False
    total: int | None = None


def keyset_pages(
    fetch: Callable[[dt.datetime, int], Batch],
    normalise: Callable[[Any], Output],
    *,
    start: dt.datetime,
    until: dt.datetime,
    page_size: int,
    first_page: int,
    stopping: Callable[[], bool] = lambda: False,
    updated: Callable[[Any], dt.datetime | None] | None = None,
) -> Iterator[Page]:
    """Keyset pagination emulated over a time-filtered, offset-paged source.

    ``fetch(from_time, page_number)`` asks for records updated in ``[from_time, until)``.
    After each full page the next request starts at that page's last update time, page
    ``first_page``; the page number only advances when a whole page shares one timestamp.
    The pages of such a *crowded* time are read again before the read moves past it, because a
    record updated meanwhile leaves that time and shifts the rest up, so one may cross into a
    page already read. A pass is known to be whole when the next pass meets exactly the records
    of that time it met: a record that left during a pass after being read is missing from the
    next one, and records only ever leave a past time (an update gives a later time). The read
    then goes on from the second after that time, not from the last page's latest time, since
    the pass that ended it need not be whole (``MAX_LOOKS`` more passes at most). Checkpoints:
    the last update time reached (everything before it has been read), and ``until`` once the
    source has nothing more; ``None`` until the read has moved at all.

    With ``updated`` (an item's update time as its normalised record will have it, ``None`` when
    it has none), the next request goes out before this page is normalised, so the source
    prepares it meanwhile: the source's time and ours overlap instead of adding up. The request
    is the one the normalised page calls for; if the page says otherwise after all, its answer is
    dropped and the right one asked for. Requests still go out one at a time. A read that ends
    early (a stop, a source answering every page number alike) waits for the request already
    sent, and drops its answer.
    """
    position = start
    page_no = first_page
    checkpoint: dt.datetime | None = None
    previous_ids: tuple[str, ...] | None = None
    # Well-formed records received from ``position`` on, over its page numbers, by source id:
    # what a source's ``total`` counts. Items it does not count (a broken copy, a record sent
    # twice) must not fill the count, or the read ends before the records they stood in for.
    received: set[str] = set()
    crowded = False  # ``position`` took more than one page number
    met: set[str] = set()  # the records at ``position`` this pass over it met, broken ones too
    looked: set[str] | None = None  # what the previous pass over a crowded ``position`` met
    looks = 0
    ahead = _ReadAhead(fetch) if updated is not None else None
    try:
        while not stopping():
            batch = fetch(position, page_no) if ahead is None else ahead.get(position, page_no)
            got = len(batch.items)
            with cpu_turn():
                # ask ahead only when this page surely is not the last: with a total, even if
                # every item were a new well-formed record, the count would not be reached
                maybe_final = _final(batch, got, page_size, len(received) + got)
                if ahead is not None and updated is not None and not maybe_final and not stopping():
                    times = [t for t in map(updated, batch.items) if t is not None]
                    guess = _next_request(position, page_no, first_page, max(times) if times else None)
                    if crowded and guess[0] != position:
                        # a crowded time is always read twice; after that, most often it is done
                        guess = (position, first_page) if looked is None else (_after(position), first_page)
                    ahead.send(*guess)
                outputs = [normalise(item) for item in batch.items]
            received.update(o.source_id for o in outputs if isinstance(o, DossierRecord))
            ids = tuple(_identity(o) for o in outputs)
            met.update(i for i, o in zip(ids, outputs, strict=True)
                       if o.source_updated_at is None or o.source_updated_at <= position)
            final = _final(batch, got, page_size, len(received))
            reached = latest(outputs)
            next_position, next_page = _next_request(position, page_no, first_page, reached)
            leaving = final or next_position != position
            if leaving and crowded and met != looked:
                # a pass over a crowded time may have skipped one: read its pages again until
                # two passes in a row meet the same records there; the checkpoint waits
                if looks == MAX_LOOKS:
                    raise TransientSourceError(
                        f"the records updated at {position.isoformat()} kept moving over {looks + 1} reads; "
                        "next run tries again")
                looks += 1
                looked, met = met, set()
                received, page_no, final = set(), first_page, False
            elif leaving and crowded:
                # the previous pass was whole: everything of ``position`` is read. What follows
                # it is read from the next second on, whatever this pass's last page said
                final = False
                next_position = min(_after(position), until)
                checkpoint = next_position if checkpoint is None else max(checkpoint, next_position)
                position, page_no, received, met = next_position, first_page, set(), set()
                crowded, looked, looks = False, None, 0
            elif final:
                checkpoint = until
            elif next_position != position:
                moved_to = min(next_position, until)
                checkpoint = moved_to if checkpoint is None else max(checkpoint, moved_to)
                position, page_no, received, met = next_position, first_page, set(), set()
                crowded, looked, looks = False, None, 0
            else:
                if ids == previous_ids and page_no != first_page:
                    raise FatalSourceError("the source answers every page number with the same records")
                page_no, crowded = next_page, True
            previous_ids = ids
            yield build_page(outputs, until=until, checkpoint=checkpoint)
            if final:
                return
    finally:
        if ahead is not None:
            ahead.close()


def _after(position: dt.datetime) -> dt.datetime:
    """The next whole second after ``position``: the wire formats have whole seconds."""
    return floor_second(position) + dt.timedelta(seconds=1)


def _identity(out: Output) -> str:
    """What tells one item of a page from another: its source id, else its whole payload (a
    record too broken to have an id)."""
    return out.source_id if out.source_id is not None else "\x00" + payload_json(out.raw)


def _final(batch: Batch, got: int, page_size: int, received: int) -> bool:
    """Whether this answer ends the read, ``received`` records having come from its position on.

    An empty page always does. With a ``total``, the read ends when it has received that many
    records, whatever the page sizes (a server may cap its pages below what it documents).
    Otherwise a page shorter than asked for ends it, unless the source says ``more`` follows.
    """
    if got == 0:
        return True
    if batch.total is not None:
        return received >= batch.total
    if batch.more and got < page_size:
        return False
    return batch.last or got < page_size


def _next_request(position: dt.datetime, page_no: int, first_page: int,
                  reached: dt.datetime | None) -> tuple[dt.datetime, int]:
    """Where the read goes on after a full page whose latest update time is ``reached``."""
    if reached is not None and reached > position:
        return reached, first_page
    return position, page_no + 1


class _ReadAhead:
    """One request sent ahead on its own thread, with the reader's context variables (its log
    binding, its read-ahead turn): ``send`` it, ``get`` its answer if it was the one wanted.

    The thread is a daemon, like the reader it works for: a process that exits does not wait
    for an answer nobody will read.
    """

    def __init__(self, fetch: Callable[[dt.datetime, int], Batch]) -> None:
        self._fetch = fetch
        self._sent: tuple[tuple[dt.datetime, int], Future[Batch]] | None = None

    def send(self, position: dt.datetime, page_no: int) -> None:
        self._drop()
        answer: Future[Batch] = Future()
        context = contextvars.copy_context()

        def run() -> None:
            try:
                answer.set_result(context.run(self._fetch, position, page_no))
            except BaseException as exc:  # handed to whoever asks for the answer
                answer.set_exception(exc)

        threading.Thread(target=run, name="read-ahead", daemon=True).start()
        self._sent = ((position, page_no), answer)

    def get(self, position: dt.datetime, page_no: int) -> Batch:
        sent, self._sent = self._sent, None
        if sent is not None:
            if sent[0] == (position, page_no):
                return sent[1].result()
            _wait_quietly(sent[1])
        return self._fetch(position, page_no)

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        """Wait for an answer no longer wanted (one request at a time), whatever it was."""
        if self._sent is not None:
            _wait_quietly(self._sent[1])
            self._sent = None


def _wait_quietly(future: Future[Batch]) -> None:
    with contextlib.suppress(Exception):  # an answer not used: its failure does not matter either
        future.result()
