"""``keyset_pages`` reading ahead: the same pages and requests as without, whatever the guess."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.paging import Batch, keyset_pages
from sync_agent.model import DossierRecord, Page, Status

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
