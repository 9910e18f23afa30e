"""A sync that commits while reconciliation runs loses nothing: its records stay marked for the next run."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from sync_agent import reconcile as reconcile_module
from sync_agent.model import Status
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.tables import dossiers, reconcile_queue
from tests.reconcile.scenario import HOUR, NOW, T0, TZ, case, open_flags, open_kinds, rec, run, save


def test_records_written_during_a_run_stay_marked_for_the_next(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"))
    run(engine)
    save(engine, rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=T0 + HOUR,
                     updated=T0 + HOUR))
    writer: list[threading.Thread] = []
    original = reconcile_module._Run.compute_cases

    def compute_cases_while_a_sync_writes(self: Any, records: int) -> None:
        # one sync adds a record (on PostgreSQL it commits while this run goes on), another changes
        # the record this run has just claimed (it waits for this run's row lock)
        def sync() -> None:
            save(engine, rec("household_business", "HKD-1", procedure="2.000720"))
            save(engine, rec("civil_status", "HT-1", code="MC-1", status=Status.DELIVERED, completed_at=T0 + HOUR,
                             updated=T0 + 2 * HOUR))

        thread = threading.Thread(target=sync)
        thread.start()
        writer.append(thread)
        time.sleep(0.3)  # the sync is now waiting for this run's locks (or has committed)
        original(self, records)

    monkeypatch.setattr(reconcile_module._Run, "compute_cases", compute_cases_while_a_sync_writes)
    run(engine, NOW)
    monkeypatch.undo()
    writer[0].join(timeout=60)
    assert not writer[0].is_alive()
    with read_connection(engine) as conn:
        marked = conn.execute(select(dossiers.c.source_id)
                              .join_from(reconcile_queue, dossiers, dossiers.c.id == reconcile_queue.c.dossier_id)
                              .order_by(dossiers.c.source_id)).scalars().all()
    assert marked == ["HKD-1", "HT-1"]
    run(engine, NOW + HOUR)
    assert case(engine, "rc:MC-1").status == "delivered"
    assert open_kinds(engine) == {"bypassed_reception": 1, "status_mismatch": 1}


def test_a_run_dates_its_flags_once_it_holds_the_store(engine: Engine) -> None:
    """A run that waited for another writer must not date its flags before its wait: a digest
    that read the store meanwhile ends there, and the next one starts there (alerts)."""
    save(engine, rec("household_business", "HKD-1", procedure="2.000720"))
    done: list[Any] = []
    with write_transaction(engine) as conn:  # another writer holds the store
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": reconcile_module._LOCK_KEY})
        thread = threading.Thread(target=lambda: done.append(reconcile_module.reconcile(engine, TZ)))
        thread.start()
        time.sleep(0.5)  # the run has started and waits for the store
        released = dt.datetime.now(dt.UTC)
    thread.join(timeout=60)
    assert done and done[0].flags_raised == 1
    [flag] = open_flags(engine, "bypassed_reception")
    assert flag.raised_at >= released
