"""Cases and flags, rule by rule (domain.md "Cases" and "Flags"), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from sync_agent.flags import acknowledge, list_flags
from sync_agent.model import Channel, DossierRecord, Status
from sync_agent.reconcile import CASE_COLUMNS, reconcile
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.tables import case_links, cases, dossiers, flag_events, flags
from tests.reconcile.scenario import NOW, T0, TZ, open_kinds, run, save


def rec(source: str, source_id: str, *, code: str | None = None, applicant: str | None = "A1",
        procedure: str = "1.001193", status: Status = Status.IN_PROGRESS, received: dt.datetime | None = T0,
        updated: dt.datetime = T0, due: dt.datetime | None = T0 + dt.timedelta(days=5), **kw: Any) -> DossierRecord:
    return DossierRecord(source=source, source_id=source_id, reception_code=code, procedure_code=procedure,
                         status=status, source_updated_at=updated, applicant_key=applicant,
                         received_at=received, due_at=due, channel=kw.pop("channel", Channel.ONLINE), **kw)


def case_rows(engine: Engine) -> list[Any]:
    with read_connection(engine) as conn:
        return conn.execute(select(cases).order_by(cases.c.case_key)).all()


def case_of(engine: Engine, source: str, source_id: str) -> Any:
    with read_connection(engine) as conn:
        return conn.execute(select(cases).join(case_links, case_links.c.case_id == cases.c.id)
                            .join(dossiers, dossiers.c.id == case_links.c.dossier_id)
                            .where(dossiers.c.source == source, dossiers.c.source_id == source_id)).one()


def test_a_ministry_record_citing_the_reception_code_joins_the_one_stop_case(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert case.case_key == "rc:MC-1" and case.record_count == 2 and case.has_one_stop


def test_a_dossier_in_all_four_systems_is_one_case(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"),
         rec("residence", "CT-1", code="MC-1"), rec("household_business", "HKD-1", code="MC-1"))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert case.record_count == 4
    assert open_kinds(engine) == {}


def test_a_record_without_a_code_is_linked_by_applicant_and_procedure_within_two_days(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", received=T0 + dt.timedelta(days=1)))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert case.inferred and case.record_count == 2


def test_no_inferred_link_beyond_two_days_or_for_another_procedure(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"),
         rec("civil_status", "HT-1", received=T0 + dt.timedelta(days=3)),
         rec("civil_status", "HT-2", procedure="1.000656"))
    reconcile(engine, TZ, now=NOW)
    assert len(case_rows(engine)) == 3


def test_the_closest_one_stop_record_wins_an_inferred_link(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", received=T0), rec("one_stop", "MC-2", received=T0 + dt.timedelta(days=2)),
         rec("civil_status", "HT-1", received=T0 + dt.timedelta(days=1, hours=12)))
    reconcile(engine, TZ, now=NOW)
    assert case_of(engine, "civil_status", "HT-1").case_key == "rc:MC-2"


def test_reception_facts_come_from_one_stop_and_status_from_the_latest_update(engine: Engine) -> None:
    save(engine,
         rec("one_stop", "MC-1", channel=Channel.DIRECT, status=Status.IN_PROGRESS, updated=T0),
         rec("civil_status", "HT-1", code="MC-1", channel=Channel.ONLINE, status=Status.RESOLVED,
             completed_at=T0 + dt.timedelta(days=1), updated=T0 + dt.timedelta(days=1),
             received=T0 + dt.timedelta(hours=3)))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert (case.channel, case.reception_source) == ("direct", "one_stop")
    assert case.received_at == T0
    assert (case.status, case.state_source) == ("resolved", "civil_status")
    assert case.ended_on == dt.date(2026, 2, 3)


def test_on_equal_update_times_one_stop_gives_the_status(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS),
         rec("civil_status", "HT-1", code="MC-1", status=Status.AWAITING_SUPPLEMENT))
    reconcile(engine, TZ, now=NOW)
    assert case_rows(engine)[0].status == "in_progress"


def test_the_four_attributes_are_true_when_any_record_says_so(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", digitised=True, fee_required=True),
         rec("civil_status", "HT-1", code="MC-1", data_reused=True, paid_online=True))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert case.digitised and case.data_reused and case.fee_required and case.paid_online


def test_a_case_without_one_stop_is_flagged_bypassed_and_clears_when_reception_arrives(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-1", code="MC-9", procedure="2.000720"))
    reconcile(engine, TZ, now=NOW)
    assert open_kinds(engine) == {"bypassed_reception": 1, "unknown_reception_code": 1}
    save(engine, rec("one_stop", "MC-9", procedure="2.000720"))
    result = reconcile(engine, TZ, now=NOW)
    assert open_kinds(engine) == {}
    assert result.flags_cleared == 2
    with read_connection(engine) as conn:
        events = conn.execute(select(flag_events.c.event).order_by(flag_events.c.id)).scalars().all()
    assert events.count("raised") == 2 and events.count("cleared") == 2


def test_an_unknown_reception_code_is_flagged_only_a_day_after_it_was_first_seen(engine: Engine) -> None:
    save(engine, rec("civil_status", "HT-1", code="MC-404"), seen=NOW - dt.timedelta(hours=20))
    reconcile(engine, TZ, now=NOW)
    assert "unknown_reception_code" not in open_kinds(engine)
    reconcile(engine, TZ, now=NOW + dt.timedelta(hours=5))  # nothing changed but time
    assert open_kinds(engine)["unknown_reception_code"] == 1


def test_status_mismatch_after_more_than_a_day(engine: Engine) -> None:
    ended = NOW - dt.timedelta(hours=2)
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=ended, updated=ended))
    reconcile(engine, TZ, now=NOW)
    assert "status_mismatch" not in open_kinds(engine)
    reconcile(engine, TZ, now=NOW + dt.timedelta(days=1))
    assert open_kinds(engine) == {"status_mismatch": 1}


def test_completion_before_reception_is_data_quality_and_counts_as_reception(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", status=Status.RESOLVED, completed_at=T0 - dt.timedelta(days=2)))
    reconcile(engine, TZ, now=NOW)
    [case] = case_rows(engine)
    assert case.ended_on == case.received_on == dt.date(2026, 2, 2)
    assert open_kinds(engine) == {"data_quality": 1}


def test_a_counted_dossier_without_due_date_is_data_quality(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", due=None), rec("one_stop", "MC-2", due=None, status=Status.SUBMITTED))
    reconcile(engine, TZ, now=NOW)
    assert open_kinds(engine) == {"data_quality": 1}


def test_acknowledgement_survives_re_reconciliation(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-1", procedure="2.000720"))
    reconcile(engine, TZ, now=NOW)
    with read_connection(engine) as conn:
        [flag] = list_flags(conn)
    acknowledge(engine, flag.id, "Đã gọi điện cho chủ hộ", now=NOW)
    save(engine, rec("household_business", "HKD-1", procedure="2.000720", status=Status.RESOLVED,
                     completed_at=T0 + dt.timedelta(days=1), updated=T0 + dt.timedelta(days=1)))
    reconcile(engine, TZ, now=NOW)
    reconcile(engine, TZ, full=True, now=NOW)
    with read_connection(engine) as conn:
        [after] = list_flags(conn)
    assert after.id == flag.id and after.ack_note == "Đã gọi điện cho chủ hộ"


def test_a_record_that_changes_its_code_moves_case_and_the_old_case_disappears(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-X"))
    reconcile(engine, TZ, now=NOW)
    save(engine, rec("civil_status", "HT-1", code="MC-1", updated=T0 + dt.timedelta(hours=1)))
    reconcile(engine, TZ, now=NOW)
    assert [c.case_key for c in case_rows(engine)] == ["rc:MC-1"]
    assert open_kinds(engine) == {}


RECORDS = [
    rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"),
    rec("one_stop", "MC-2", applicant="B", received=T0 + dt.timedelta(days=1)),
    rec("residence", "CT-2", applicant="B", received=T0 + dt.timedelta(days=2)),
    rec("household_business", "HKD-3", procedure="2.000720"),
    rec("civil_status", "HT-4", code="MC-404"),
    rec("one_stop", "MC-5", status=Status.RESOLVED, completed_at=T0 - dt.timedelta(days=1)),
    rec("residence", "CT-5", code="MC-5", status=Status.RESOLVED, completed_at=T0 - dt.timedelta(days=1),
        updated=T0 + dt.timedelta(days=1)),
    rec("one_stop", "MC-6", status=Status.IN_PROGRESS),
    rec("civil_status", "HT-6", code="MC-6", status=Status.REJECTED, rejected_at=T0, updated=T0 + dt.timedelta(days=2)),
]


def snapshot(engine: Engine) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    with read_connection(engine) as conn:
        rows = conn.execute(select(cases.c.case_key, cases.c.status, cases.c.record_count, cases.c.inferred,
                                   cases.c.received_on, cases.c.ended_on, cases.c.channel)
                            .order_by(cases.c.case_key)).all()
    return [tuple(r) for r in rows], open_kinds(engine)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(RECORDS))), dup=st.lists(st.integers(0, len(RECORDS) - 1), max_size=5),
       cuts=st.sets(st.integers(1, len(RECORDS) - 1), max_size=4))
def test_order_of_arrival_duplicates_and_re_sync_never_change_cases_and_flags(
    engine: Engine, order: list[int], dup: list[int], cuts: set[int]
) -> None:
    with write_transaction(engine) as conn:
        for table in ("flag_events", "flags", "cases", "case_links", "reconcile_queue", "dossiers", "agent_state"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    sequence = [RECORDS[i] for i in order] + [RECORDS[i] for i in dup]
    start = 0
    for cut in [*sorted(cuts), len(sequence)]:
        if cut > start:
            save(engine, *sequence[start:cut])
            reconcile(engine, TZ, now=NOW + dt.timedelta(days=2))
        start = cut
    incremental = snapshot(engine)
    reconcile(engine, TZ, full=True, now=NOW + dt.timedelta(days=2))
    assert snapshot(engine) == incremental
    keys = [k for k, *_ in incremental[0]]
    assert keys == ["rc:MC-1", "rc:MC-2", "rc:MC-404", "rc:MC-5", "rc:MC-6", "src:household_business:HKD-3"]
    assert incremental[1] == {"bypassed_reception": 2, "unknown_reception_code": 1, "status_mismatch": 1,
                              "data_quality": 1}


@pytest.mark.parametrize("full", [False, True])
def test_reconcile_twice_changes_nothing(engine: Engine, full: bool) -> None:
    save(engine, *RECORDS)
    reconcile(engine, TZ, now=NOW)
    first = snapshot(engine)
    result = reconcile(engine, TZ, full=full, now=NOW)
    assert snapshot(engine) == first
    assert (result.flags_raised, result.flags_cleared) == (0, 0)


def _everything(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every computed column of every case, and every flag with whom it points at."""
    with read_connection(engine) as conn:
        rows = conn.execute(select(*(cases.c[c] for c in CASE_COLUMNS)).order_by(cases.c.id)).all()
        flag_rows = conn.execute(select(flags.c.kind, flags.c.subject_key, flags.c.case_id, flags.c.dossier_id,
                                        flags.c.state, flags.c.details)
                                 .order_by(flags.c.kind, flags.c.subject_key)).all()
    return [tuple(r) for r in rows], [tuple(r) for r in flag_rows]


def test_the_first_build_of_a_store_equals_incremental_runs(engine: Engine) -> None:
    """A first full build writes its cases of one record straight into ``cases``: the same rows and
    flags (dossier ids included) as the ordinary path."""
    save(engine, *RECORDS)
    reconcile(engine, TZ, now=NOW + dt.timedelta(days=2))
    incremental = _everything(engine)
    with write_transaction(engine) as conn:
        for table in ("flag_events", "flags", "cases", "case_links", "agent_state"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    result = reconcile(engine, TZ, full=True, now=NOW + dt.timedelta(days=2))
    assert _everything(engine) == incremental
    assert result.cases_touched == result.cases_total == 6
    unknown = [f for f in incremental[1] if f[0] == "unknown_reception_code"]
    assert len(unknown) == 1 and unknown[0][3] is not None  # the record citing the code


@pytest.mark.postgres
def test_a_full_run_on_postgresql_leaves_the_store_analysed(pg_url: str) -> None:
    """Right after a first sync's history is reconciled the daemon may build the morning digest:
    without statistics PostgreSQL planned its reads blind (100 s instead of 0.1 s in a trial)."""
    from sync_agent.store.engine import create_store_engine, migrate

    engine = create_store_engine(pg_url)
    migrate(engine)
    save(engine, *(rec("one_stop", f"MC-{i}", applicant=f"A{i}") for i in range(300)))
    run(engine, full=True)
    with read_connection(engine) as conn:
        estimated = dict(conn.execute(text(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('cases', 'case_links') "
            "AND relnamespace = CAST(current_schema() AS regnamespace)")).all())
    engine.dispose()
    assert estimated == {"cases": 300, "case_links": 300}
