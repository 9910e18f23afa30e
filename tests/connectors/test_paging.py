"""``keyset_pages`` reading ahead: the same pages and requests as without, whatever the guess."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.paging import Batch, build_page, keyset_pages
from sync_agent.errors import FatalSourceError, TransientSourceError
from sync_agent.model import DossierRecord, Page, QuarantinedRecord, Status

T0 = dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)
UNTIL = T0 + dt.timedelta(days=1)
# 7 records, two of them sharing an update time across a page boundary
TIMES = [T0 + dt.timedelta(minutes=m) for m in (1, 2, 3, 3, 4, 5, 6)]


class Source:
    """Records ordered by update time, filtered from a time, paged by number (pages of 2)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dt.datetime, int]] = []

    def fetch(self, since: dt.datetime, page_no: int) -> Batch:
        self.requests.append((since, page_no))
        rows = [{"id": f"r{i}", "at": t} for i, t in enumerate(TIMES) if t >= since]
        return Batch(rows[page_no * 2:(page_no + 1) * 2])


def normalise(item: Any) -> DossierRecord:
    return DossierRecord(source="s", source_id=item["id"], procedure_code="p", status=Status.RECEIVED,
                         source_updated_at=item["at"])


def read(source: Source, updated: Any) -> list[Page]:
    return list(keyset_pages(source.fetch, normalise, start=T0, until=UNTIL, page_size=2, first_page=0,
                             updated=updated))


@pytest.mark.parametrize("guess", [
    lambda item: item["at"],  # right: each request goes out ahead
    lambda item: T0,  # wrong: every request sent ahead is dropped and asked again
    lambda item: None,  # no time known: the guess is the next page number
])
def test_reading_ahead_gives_the_pages_and_requests_of_a_plain_read(guess: Any) -> None:
    plain, ahead = Source(), Source()
    expected = read(plain, None)
    assert read(ahead, guess) == expected
    used = [r for r in ahead.requests if r in plain.requests]
    assert used == plain.requests  # in the same order; the rest were sent ahead and dropped
    assert {r.source_id for p in expected for r in p.records} == {f"r{i}" for i in range(7)}


def test_a_failed_request_sent_ahead_and_not_needed_is_forgotten() -> None:
    source = Source()

    def fetch(since: dt.datetime, page_no: int) -> Batch:
        if since == T0 + dt.timedelta(hours=1):
            source.requests.append((since, page_no))
            raise RuntimeError("a request sent ahead on a wrong guess")
        return source.fetch(since, page_no)

    pages = list(keyset_pages(fetch, normalise, start=T0, until=UNTIL, page_size=2, first_page=0,
                              updated=lambda item: T0 + dt.timedelta(hours=1)))
    assert pages == read(Source(), None)


# --- whatever moves while it reads, nothing is skipped ----------------------------------------

class ChangingSource:
    """Records ordered by (update time, id), filtered from a time, paged by number from 1 with a
    total that counts the badly formed too, pages capped below the size asked for, and records
    updated between two requests: they move to after ``until``, and the rest shift."""

    def __init__(self, records: list[tuple[str, int, bool]], cap: int | None,
                 moves: dict[int, list[int]]) -> None:
        self.rows = [{"id": i, "at": T0 + dt.timedelta(minutes=m), "bad": bad} for i, m, bad in records]
        self.cap, self.moves, self.calls, self.moved = cap, moves, 0, set[str]()

    def fetch(self, since: dt.datetime, page_no: int, size: int) -> Batch:
        self.calls += 1
        for k in self.moves.get(self.calls, []):
            self.rows[k % len(self.rows)]["at"] = UNTIL + dt.timedelta(minutes=5)
            self.moved.add(self.rows[k % len(self.rows)]["id"])
        rows = sorted((r for r in self.rows if since <= r["at"] < UNTIL), key=lambda r: (r["at"], r["id"]))
        size = min(size, self.cap or size)
        return Batch([dict(r) for r in rows[(page_no - 1) * size:page_no * size]], total=len(rows))


def normalise_or_quarantine(item: Any) -> DossierRecord | QuarantinedRecord:
    if item["bad"]:
        return QuarantinedRecord(source="s", reason="bad", raw={}, source_id=item["id"],
                                 source_updated_at=item["at"])
    return normalise(item)


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(0, 4), min_size=1, max_size=25),
    bad_every=st.integers(0, 8),
    cap=st.sampled_from([None, 2, 3, 4]),
    size=st.sampled_from([2, 3, 4, 5, 10]),
    moves=st.dictionaries(st.integers(2, 8), st.lists(st.integers(0, 24), max_size=2), max_size=3),
    ahead=st.booleans(),
)
# found by a review (20,000 examples, and a fuzzer): passes that each found nothing new, while the
# records after the crowded time, or one at it, had shifted into pages already read every time
@example(times=[0, 0, 0, 1, 1], bad_every=0, cap=None, size=2, moves={3: [0, 3], 4: [1]}, ahead=False)
@example(times=[0] * 6 + [2], bad_every=0, cap=None, size=2, moves={4: [3], 6: [1], 7: [5]}, ahead=False)
@example(times=[0, 0, 0, 0, 0, 1, 1, 2], bad_every=3, cap=2, size=4,
         moves={3: [9], 4: [22, 8], 5: [19], 6: [19, 10], 8: [17]}, ahead=False)
def test_a_record_that_did_not_move_and_lies_before_the_checkpoint_was_read(
    times: list[int], bad_every: int, cap: int | None, size: int,
    moves: dict[int, list[int]], ahead: bool,
) -> None:
    records = [(f"r{n:02d}", m, bad_every > 0 and n % bad_every == 0) for n, m in enumerate(times)]
    source = ChangingSource(records, cap, moves)
    pages: list[Page] = []
    try:
        for page in keyset_pages(lambda since, page_no: source.fetch(since, page_no, size), normalise_or_quarantine,
                                 start=T0, until=UNTIL, page_size=size, first_page=1,
                                 updated=(lambda item: item["at"]) if ahead else None):
            pages.append(page)
            assert len(pages) < 500, "the read does not end"
    except TransientSourceError:
        pass  # records that keep moving: the run fails and its checkpoint says how far it got
    marks = [p.checkpoint for p in pages if p.checkpoint is not None]
    assert marks == sorted(marks)
    if not marks:
        return
    read = {r.source_id for p in pages for r in p.records} | {q.source_id for p in pages for q in p.quarantined}
    claimed = {r["id"] for r in source.rows if r["id"] not in source.moved and r["at"] < marks[-1]}
    assert claimed <= read, f"skipped: {sorted(claimed - read)}"


def test_records_updated_after_a_crowded_time_do_not_make_it_be_read_again() -> None:
    """Five records of 08:00 that never change, pages of 4; one 08:01 record on the last page read at
    that time is updated during each pass. 08:00 is whole after two passes: the run goes on (it
    failed, blaming 08:00, when any new record on those pages counted)."""
    records = [(f"r{n:02d}", m, False) for n, m in enumerate([0] * 5 + [1] * 7)]
    source = ChangingSource(records, None, {3: [5], 5: [6], 7: [7]})
    pages = list(keyset_pages(lambda since, page_no: source.fetch(since, page_no, 4), normalise_or_quarantine,
                              start=T0, until=UNTIL, page_size=4, first_page=1))
    read = {r.source_id for p in pages for r in p.records}
    assert read >= {f"r{n:02d}" for n in range(12)} - source.moved
    assert pages[-1].checkpoint == UNTIL


def test_pages_of_records_without_an_id_are_quarantined_not_taken_for_a_looping_source() -> None:
    """Records too broken to have an id, two pages of them at one time: different records, kept."""
    broken = [{"at": T0, "n": n} for n in range(4)] + [{"id": "ok", "at": T0 + dt.timedelta(minutes=1), "n": 9}]

    def fetch(since: dt.datetime, page_no: int) -> Batch:
        rows = [r for r in broken if r["at"] >= since]
        return Batch(rows[(page_no - 1) * 2:page_no * 2], total=len(rows))

    def quarantine_idless(item: Any) -> DossierRecord | QuarantinedRecord:
        if "id" not in item:
            return QuarantinedRecord(source="s", reason="no MaHoSo", raw=dict(item, at=item["at"].isoformat()),
                                     source_updated_at=item["at"])
        return normalise(item)

    try:
        pages = list(keyset_pages(fetch, quarantine_idless, start=T0, until=UNTIL, page_size=2, first_page=1))
    except FatalSourceError as e:
        pytest.fail(f"the read failed: {e}")
    assert {q.raw["n"] for p in pages for q in p.quarantined} == {0, 1, 2, 3}
    assert {r.source_id for p in pages for r in p.records} == {"ok"}


def test_a_broken_record_without_an_id_that_is_updated_counts_as_one_that_left() -> None:
    """Five records of 08:00, two of them too broken to have an id, four of 08:01, pages of 2.
    Updates between the passes' requests make both passes skip r04 (08:01, never changed);
    the broken records that left are what tells the two passes apart (found by a review)."""
    records = [(f"r{n:02d}", m, False) for n, m in enumerate([0] * 5 + [1] * 4)]
    # before request 3, r02 is updated; before 4, r00; before 5, r03
    source = ChangingSource(records, None, {3: [2], 4: [0], 5: [3]})

    def without_ids(item: Any) -> DossierRecord | QuarantinedRecord:
        if item["id"] in ("r00", "r02"):
            return QuarantinedRecord(source="s", reason="no MaHoSo", raw={"n": item["id"]},
                                     source_updated_at=item["at"])
        return normalise(item)

    pages = list(keyset_pages(lambda since, page_no: source.fetch(since, page_no, 2), without_ids,
                              start=T0, until=UNTIL, page_size=2, first_page=1))
    assert pages[-1].checkpoint == UNTIL
    assert {r.source_id for p in pages for r in p.records} >= {"r01", "r04", "r05", "r06", "r07", "r08"}


def test_a_record_updated_past_the_reads_end_is_left_for_the_next_run() -> None:
    soon = normalise({"id": "soon", "at": UNTIL + dt.timedelta(hours=2)})  # a source's clock a little ahead
    page = build_page([soon], until=UNTIL, checkpoint=UNTIL)
    assert page.records == () and page.quarantined == ()


def test_a_record_updated_more_than_a_day_in_the_future_is_quarantined_not_dropped_unseen() -> None:
    # a source that sends what no time filter of its own kept out (residence pages by a cursor)
    typo = normalise({"id": "typo", "at": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)})
    page = build_page([typo], until=UNTIL, checkpoint=UNTIL)
    assert page.records == ()
    [held] = page.quarantined
    assert (held.source_id, held.source_updated_at) == ("typo", typo.source_updated_at)
    assert held.reason == ("updated at 2999-01-01T00:00:00+00:00, more than a day after this read's end: "
                           "a time in the future, which no read would ever reach")
