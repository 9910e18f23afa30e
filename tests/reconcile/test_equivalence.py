"""Arrival order, duplicate delivery and incremental runs never change the cases and flags.

Random small wards (two applicants, two procedures, codes that collide, code-less records that
compete for the same reception, records whose later versions change code, applicant or status)
are delivered in random batches and orders, with duplicates, reconciled incrementally after
every batch; the result must equal a full rebuild of the same store (ids included) and a full
rebuild of a fresh store that received only the final versions, in another order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from sync_agent.model import DossierRecord, Status
from tests.reconcile.scenario import HOUR, T0, rec, run, save, snapshot, wipe

MINISTRIES = ("civil_status", "residence", "household_business")
STATUSES = (Status.RECEIVED, Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED, Status.SUBMITTED)


@dataclass(frozen=True)
class Version:
    source: str
    number: int
    code: int | None  # a one_stop record's code is always its own
    applicant: str | None
    procedure: str
    received: int | None  # hours after T0
    status: Status
    updated: int  # hours after T0: a record's versions differ in it

    @property
    def source_id(self) -> str:
        return f"MC-{self.number}" if self.source == "one_stop" else f"{self.source[:2].upper()}-{self.number}"

    def record(self) -> DossierRecord:
        ended = self.status in (Status.RESOLVED, Status.REJECTED)
        at = T0 + dt.timedelta(hours=(self.received or 0) + 30)
        return rec(self.source, self.source_id,
                   code=None if self.source == "one_stop" or self.code is None else f"MC-{self.code}",
                   applicant=self.applicant, procedure=self.procedure,
                   received=None if self.received is None else T0 + dt.timedelta(hours=self.received),
                   status=self.status, updated=T0 + dt.timedelta(hours=self.updated),
                   completed_at=at if self.status is Status.RESOLVED and ended else None,
                   rejected_at=at if self.status is Status.REJECTED else None,
                   due=None if self.number == 3 else T0 + dt.timedelta(days=5))


versions = st.builds(
    Version,
    source=st.sampled_from(("one_stop", "one_stop", *MINISTRIES)),
    number=st.integers(1, 4),
    code=st.one_of(st.none(), st.integers(1, 5)),
    applicant=st.sampled_from(("A", "A", "B", None)),
    procedure=st.sampled_from(("1.001193", "1.001193", "1.004194")),
    received=st.one_of(st.none(), st.integers(0, 80)),
    status=st.sampled_from(STATUSES),
    updated=st.integers(0, 60),
)


def _distinct(items: list[Version]) -> list[Version]:
    """One version per (record, update time): equal update times with different content would let
    the delivery order pick the winner, which no source does."""
    seen: dict[tuple[str, int, int], Version] = {}
    for v in items:
        seen.setdefault((v.source, v.number, v.updated), v)
    return list(seen.values())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), items=st.lists(versions, min_size=1, max_size=14).map(_distinct))
def test_incremental_runs_in_any_order_equal_one_full_rebuild(engine: Engine, data: st.DataObject,
                                                              items: list[Version]) -> None:
    wipe(engine)
    deliveries = data.draw(st.permutations(items), label="order")
    deliveries += data.draw(st.lists(st.sampled_from(items), max_size=4), label="duplicates")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(deliveries) - 1)), max_size=4), label="cuts"))
    first_seen: dict[tuple[str, str], dt.datetime] = {}
    start, now = 0, T0
    for k, cut in enumerate([*cuts, len(deliveries)]):
        batch = deliveries[start:cut]
        start = max(start, cut)
        if not batch:
            continue
        seen = T0 + dt.timedelta(hours=12 * k)
        for v in batch:
            first_seen.setdefault((v.source, v.source_id), seen)
        # a source pages by update time; across batches versions arrive in any order, duplicated
        save(engine, *(v.record() for v in sorted(batch, key=lambda v: v.updated)), seen=seen)
        now = seen + HOUR
        run(engine, now)
    final = now + 20 * HOUR  # some time-based flags have come due, some not yet
    run(engine, final)
    incremental = snapshot(engine, with_ids=True)
    run(engine, final, full=True)
    assert snapshot(engine, with_ids=True) == incremental
    without_ids = snapshot(engine)

    # a fresh store that received only the final versions, newest records first
    latest: dict[tuple[str, str], Version] = {}
    for v in sorted(items, key=lambda v: v.updated):
        latest[(v.source, v.source_id)] = v
    wipe(engine)
    for key in sorted(latest, reverse=True):
        save(engine, latest[key].record(), seen=first_seen[key])
    run(engine, final, full=True)
    assert snapshot(engine) == without_ids
