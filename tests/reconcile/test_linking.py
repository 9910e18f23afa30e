"""Case linking and precedence, one rule per scenario (domain.md "Cases"), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select

from sync_agent.model import Channel, Status
from sync_agent.store.engine import read_connection
from sync_agent.store.tables import case_links, dossiers, metadata, reconcile_queue
from tests.reconcile.scenario import (
    DAY,
    HOUR,
    NOW,
    T0,
    case,
    case_keys,
    key_of,
    open_kinds,
    rec,
    run,
    save,
    snapshot,
    wipe,
)

# --- linking by reception code ----------------------------------------------------------------


def test_records_citing_the_code_join_the_one_stop_case_whose_id_is_its_smallest_record_id(engine: Engine) -> None:
    save(engine, rec("civil_status", "HT-1", code="MC-1"))  # the ministry's copy arrives first
    save(engine, rec("one_stop", "MC-1"), rec("residence", "CT-1", code="MC-1"))
    run(engine)
    assert case_keys(engine) == ["rc:MC-1"]
    assert [key_of(engine, s, i) for s, i in (("one_stop", "MC-1"), ("civil_status", "HT-1"), ("residence", "CT-1"))] \
        == [("rc:MC-1", "own"), ("rc:MC-1", "code"), ("rc:MC-1", "code")]
    with read_connection(engine) as conn:
        first = conn.execute(select(dossiers.c.id).where(dossiers.c.source_id == "HT-1")).scalar_one()
    c = case(engine, "rc:MC-1")
    assert (c.id, c.record_count, c.has_one_stop, c.reception_code, c.inferred) == (first, 3, True, "MC-1", False)


def test_a_dossier_in_all_four_systems_is_one_case_with_the_latest_status(engine: Engine) -> None:
    save(engine,
         rec("one_stop", "MC-1", updated=T0),
         rec("civil_status", "HT-1", code="MC-1", updated=T0 + HOUR),
         rec("residence", "CT-1", code="MC-1", updated=T0 + 2 * HOUR),
         rec("household_business", "HKD-1", code="MC-1", status=Status.DELIVERED, completed_at=T0 + DAY,
             updated=T0 + 3 * HOUR))
    run(engine)
    [key] = case_keys(engine)
    c = case(engine, key)
    assert (c.record_count, c.status, c.state_source, c.reception_source) == (4, "delivered", "household_business",
                                                                               "one_stop")
    # the Centre's copy still says in progress: that is for the operators to see
    assert open_kinds(engine) == {"status_mismatch": 1}


def test_a_code_no_one_stop_record_has_is_one_case_without_one_stop(engine: Engine) -> None:
    save(engine, rec("residence", "CT-1", code="MC-404", received=T0 + 2 * HOUR, channel=Channel.DIRECT),
         rec("civil_status", "HT-1", code="MC-404", received=T0 + HOUR, channel=Channel.POSTAL))
    run(engine)
    c = case(engine, "rc:MC-404")
    # reception facts from the earliest received record
    assert (c.has_one_stop, c.record_count, c.reception_source, c.channel) == (False, 2, "civil_status", "postal")
    assert c.received_at == T0 + HOUR


def test_a_record_without_code_and_without_partner_is_its_own_case(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-7", procedure="2.000720"))
    run(engine)
    assert key_of(engine, "household_business", "HKD-7") == ("src:household_business:HKD-7", "own")
    assert case(engine, "src:household_business:HKD-7").reception_code is None


# --- inferred links ---------------------------------------------------------------------------


def test_inferred_within_two_days_same_applicant_and_procedure(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"),
         rec("civil_status", "HT-1", received=T0 + 2 * DAY),  # exactly two days: still linked
         rec("residence", "CT-1", received=T0 + 2 * DAY + HOUR),  # beyond
         rec("civil_status", "HT-2", procedure="1.000656"),  # another procedure
         rec("household_business", "HKD-1", applicant="B"),  # another applicant
         rec("civil_status", "HT-3", applicant=None),  # no applicant key
         rec("residence", "CT-3", received=None))  # no reception time
    run(engine)
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-1", "inferred")
    for source, sid in (("residence", "CT-1"), ("civil_status", "HT-2"), ("household_business", "HKD-1"),
                        ("civil_status", "HT-3"), ("residence", "CT-3")):
        assert key_of(engine, source, sid) == (f"src:{source}:{sid}", "own")
    assert case(engine, "rc:MC-1").inferred


def test_two_days_and_a_fraction_of_a_second_is_beyond_two_days(engine: Engine) -> None:
    half = dt.timedelta(milliseconds=500)
    save(engine, rec("one_stop", "MC-1"), rec("residence", "CT-1", received=T0 + 2 * DAY + half),
         rec("one_stop", "MC-2", applicant="B", received=T0 + half),
         rec("residence", "CT-2", applicant="B", received=T0 + 2 * DAY + half))  # exactly two days
    run(engine)
    assert key_of(engine, "residence", "CT-1") == ("src:residence:CT-1", "own")
    assert key_of(engine, "residence", "CT-2") == ("rc:MC-2", "inferred")


def test_the_closest_reception_is_told_to_the_microsecond(engine: Engine) -> None:
    micro = dt.timedelta(microseconds=1)
    save(engine, rec("one_stop", "MC-1", received=T0), rec("one_stop", "MC-2", received=T0 + 2 * HOUR - micro),
         rec("residence", "CT-1", received=T0 + HOUR))  # MC-2 is closer by a microsecond
    run(engine)
    assert key_of(engine, "residence", "CT-1") == ("rc:MC-2", "inferred")


def test_the_closest_reception_wins_and_on_equal_distance_the_smallest_code(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-2", received=T0), rec("one_stop", "MC-1", received=T0 + 2 * HOUR),
         rec("one_stop", "MC-3", received=T0 + 20 * HOUR),
         rec("civil_status", "HT-1", received=T0 + HOUR))  # one hour from MC-1 and from MC-2
    run(engine)
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-1", "inferred")


def test_a_one_stop_record_whose_code_a_source_cites_takes_no_inferred_record_of_that_source(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"),
         rec("civil_status", "HT-2", received=T0 + HOUR),  # civil_status's copy of MC-1 is known: not this
         rec("residence", "CT-2", received=T0 + HOUR))  # residence has none: this one may link
    run(engine)
    assert key_of(engine, "civil_status", "HT-2") == ("src:civil_status:HT-2", "own")
    assert key_of(engine, "residence", "CT-2") == ("rc:MC-1", "inferred")


def test_one_reception_takes_one_record_per_source_the_closest(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"),
         rec("civil_status", "HT-1", received=T0 + 3 * HOUR), rec("civil_status", "HT-2", received=T0 + HOUR),
         rec("residence", "CT-1", received=T0 + 5 * HOUR))
    run(engine)
    assert key_of(engine, "civil_status", "HT-2") == ("rc:MC-1", "inferred")
    assert key_of(engine, "residence", "CT-1") == ("rc:MC-1", "inferred")
    # the other civil-status record is not guessed into the case: it stays on its own, flagged
    assert key_of(engine, "civil_status", "HT-1") == ("src:civil_status:HT-1", "own")
    assert case(engine, "rc:MC-1").record_count == 3
    assert open_kinds(engine) == {"bypassed_reception": 1}


def test_twins_registered_together_pair_up_one_to_one(engine: Engine) -> None:
    # two birth registrations by one parent: two receptions, two code-less civil-status records
    save(engine, rec("one_stop", "MC-1", received=T0), rec("one_stop", "MC-2", received=T0 + 10 * HOUR),
         rec("civil_status", "HT-1", received=T0 + HOUR), rec("civil_status", "HT-2", received=T0 + 2 * HOUR))
    run(engine)
    # both are closest to MC-1; HT-1 wins it, HT-2 takes what is left in the next round
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-1", "inferred")
    assert key_of(engine, "civil_status", "HT-2") == ("rc:MC-2", "inferred")
    assert open_kinds(engine) == {}


def test_a_closer_reception_arriving_later_takes_the_inferred_record_over(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", received=T0), rec("civil_status", "HT-1", received=T0 + DAY))
    run(engine)
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-1", "inferred")
    save(engine, rec("one_stop", "MC-2", received=T0 + DAY + HOUR))
    run(engine)
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-2", "inferred")
    assert (case(engine, "rc:MC-1").record_count, case(engine, "rc:MC-1").inferred) == (1, False)


def test_a_later_citing_record_releases_the_inferred_one(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", received=T0 + HOUR))
    run(engine)
    assert key_of(engine, "civil_status", "HT-1") == ("rc:MC-1", "inferred")
    save(engine, rec("civil_status", "HT-9", code="MC-1"))
    run(engine)
    assert key_of(engine, "civil_status", "HT-9") == ("rc:MC-1", "code")
    assert key_of(engine, "civil_status", "HT-1") == ("src:civil_status:HT-1", "own")


def test_a_record_whose_applicant_changes_leaves_the_inferred_case(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("residence", "CT-1", received=T0 + HOUR))
    run(engine)
    save(engine, rec("residence", "CT-1", received=T0 + HOUR, applicant="B", updated=T0 + DAY))
    run(engine)
    assert case_keys(engine) == ["rc:MC-1", "src:residence:CT-1"]
    assert not case(engine, "rc:MC-1").inferred


def test_a_record_that_changes_its_code_moves_and_its_old_case_disappears(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-X"))
    run(engine)
    assert case_keys(engine) == ["rc:MC-1", "rc:MC-X"]
    save(engine, rec("civil_status", "HT-1", code="MC-1", updated=T0 + HOUR))
    run(engine)
    assert case_keys(engine) == ["rc:MC-1"]
    assert case(engine, "rc:MC-1").record_count == 2


# --- what the case says -----------------------------------------------------------------------


def test_reception_facts_and_the_dossier_come_from_one_stop(engine: Engine) -> None:
    save(engine,
         rec("civil_status", "HT-1", code="MC-1", channel=Channel.ONLINE, received=T0 - HOUR,
             submitted_at=T0 - 2 * HOUR, procedure_name="(ministry name)", field_code="HT", applicant_name="X Y"),
         rec("one_stop", "MC-1", channel=Channel.DIRECT, received=T0, submitted_at=T0 - DAY,
             procedure_name="Đăng ký khai sinh", field_code="HOTICH", field_name="Hộ tịch"))
    run(engine)
    c = case(engine, "rc:MC-1")
    assert (c.reception_source, c.channel, c.received_at, c.submitted_at) == ("one_stop", "direct", T0, T0 - DAY)
    assert (c.procedure_name, c.field_code, c.field_name, c.applicant_name) == (
        "Đăng ký khai sinh", "HOTICH", "Hộ tịch", "Nguyễn Văn An")
    assert c.received_on.isoformat() == "2026-02-02"


def test_status_due_date_and_end_come_from_the_latest_update(engine: Engine) -> None:
    save(engine,
         rec("one_stop", "MC-1", status=Status.IN_PROGRESS, due=T0 + 5 * DAY, updated=T0 + HOUR),
         rec("civil_status", "HT-1", code="MC-1", status=Status.REJECTED, rejected_at=T0 + DAY,
             due=T0 + 7 * DAY, updated=T0 + 2 * HOUR))
    run(engine)
    c = case(engine, "rc:MC-1")
    assert (c.status, c.state_source, c.due_at, c.ended_at) == ("rejected", "civil_status", T0 + 7 * DAY, T0 + DAY)
    assert (c.due_on.isoformat(), c.ended_on.isoformat()) == ("2026-02-09", "2026-02-03")


def test_the_latest_update_wins_by_a_microsecond(engine: Engine) -> None:
    """A source with fractional seconds (residence) updated 0.4 ms after one_stop is the later
    one: SQLite's julianday() keeps whole milliseconds and took the two for a tie."""
    micro = dt.timedelta(microseconds=1)
    for n, later in enumerate((micro, 400 * micro, 999 * micro, 1001 * micro)):
        save(engine, rec("one_stop", f"MC-{n}", status=Status.IN_PROGRESS, updated=T0 + HOUR),
             rec("residence", f"CT-{n}", code=f"MC-{n}", status=Status.RESOLVED, completed_at=T0 + HOUR,
                 updated=T0 + HOUR + later))
    save(engine, rec("one_stop", "MC-9", status=Status.IN_PROGRESS, updated=T0 + HOUR + 400 * micro),
         rec("residence", "CT-9", code="MC-9", status=Status.RESOLVED, completed_at=T0 + HOUR, updated=T0 + HOUR))
    run(engine)
    assert [case(engine, f"rc:MC-{n}").state_source for n in range(4)] == ["residence"] * 4
    assert case(engine, "rc:MC-9").state_source == "one_stop"


def test_an_update_time_before_1970_is_the_oldest_on_both_databases(engine: Engine) -> None:
    """A source's epoch-zero default, in local time, lies before 1970-01-01 UTC (the first sync
    reads from local midnight of that day): it must sort as old, not as the newest."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) - HOUR
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS, updated=epoch),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=T0 + HOUR, updated=T0 + HOUR))
    run(engine)
    assert case(engine, "rc:MC-1").state_source == "civil_status"


def test_on_equal_update_times_one_stop_then_the_source_name_decides(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS),
         rec("civil_status", "HT-1", code="MC-1", status=Status.AWAITING_SUPPLEMENT))
    save(engine, rec("residence", "CT-2", code="MC-2", status=Status.SUSPENDED),
         rec("civil_status", "HT-2", code="MC-2", status=Status.AWAITING_PAYMENT))
    run(engine)
    assert case(engine, "rc:MC-1").status == "in_progress"
    assert (case(engine, "rc:MC-2").status, case(engine, "rc:MC-2").state_source) == ("awaiting_payment",
                                                                                        "civil_status")


def test_the_four_attributes_are_true_when_any_record_says_so(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", digitised=True), rec("civil_status", "HT-1", code="MC-1", paid_online=True),
         rec("residence", "CT-1", code="MC-1", data_reused=True, fee_required=True),
         rec("one_stop", "MC-2"))
    run(engine)
    c = case(engine, "rc:MC-1")
    assert (c.digitised, c.data_reused, c.fee_required, c.paid_online) == (True, True, True, True)
    c2 = case(engine, "rc:MC-2")
    assert (c2.digitised, c2.data_reused, c2.fee_required, c2.paid_online) == (False, False, False, False)


def test_an_end_before_reception_counts_as_the_reception(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1", received=T0),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=T0 - 2 * DAY,
             updated=T0 + HOUR))
    run(engine)
    c = case(engine, "rc:MC-1")
    assert (c.ended_at, c.ended_on, c.received_on) == (T0, c.received_on, c.received_on)
    assert c.quality_issue == "completion_before_reception"


#: every record's case id and link kind, in record order
LINKS = (select(dossiers.c.source_id, case_links.c.case_id, case_links.c.link_kind)
         .join_from(dossiers, case_links, case_links.c.dossier_id == dossiers.c.id).order_by(dossiers.c.id))


def test_a_full_rebuild_keeps_every_key_and_id(engine: Engine) -> None:
    save(engine, rec("civil_status", "HT-1", code="MC-1"), rec("household_business", "HKD-1", applicant="B"))
    run(engine)
    save(engine, rec("one_stop", "MC-1"), rec("one_stop", "MC-2", applicant="B"))
    run(engine)
    with read_connection(engine) as conn:
        before = conn.execute(LINKS).all()
    keys = case_keys(engine)
    result = run(engine, full=True)
    assert (result.flags_raised, result.flags_cleared) == (0, 0)
    assert case_keys(engine) == keys == ["rc:MC-1", "rc:MC-2"]
    with read_connection(engine) as conn:
        after = conn.execute(LINKS).all()
    assert after == before


def test_the_first_full_build_leaves_the_schema_as_the_migrations_made_it(engine: Engine) -> None:
    # on SQLite the first build fills ``cases`` unindexed, then indexes it
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"))
    run(engine, full=True)
    assert case_keys(engine) == ["rc:MC-1"]
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []



def test_a_backlog_of_half_the_store_is_rebuilt_in_full_with_the_same_cases(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"),
         rec("household_business", "HKD-1", applicant="B"))
    assert not run(engine).full  # 3 queued: under WIDEN_MIN_RECORDS, incremental as asked
    monkeypatch.setattr("sync_agent.reconcile.WIDEN_MIN_RECORDS", 2)
    save(engine, rec("one_stop", "MC-2"), rec("civil_status", "HT-2", code="MC-2"))
    assert not run(engine).full  # 2 of 5 queued: under half the store, still incremental
    save(engine, rec("one_stop", "MC-3"), rec("civil_status", "HT-3", code="MC-3"),
         *(rec("residence", f"CT-{i}", applicant=None) for i in (3, 4, 5)))
    widened = run(engine)  # 5 of 10 queued: rebuilt in full
    assert widened.full and widened.cases_total == 7
    with read_connection(engine) as conn:
        assert conn.execute(select(func.count()).select_from(reconcile_queue)).scalar() == 0
    after = snapshot(engine, with_ids=True)
    wipe(engine, ("flag_events", "flags", "cases", "case_links", "agent_state"))
    run(engine, full=True)
    assert snapshot(engine, with_ids=True) == after


def test_a_case_is_rewritten_only_when_one_of_its_values_changes(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("one_stop", "MC-2", applicant="B"))
    run(engine)
    save(engine, rec("one_stop", "MC-1", status=Status.RESOLVED, completed_at=T0 + DAY, updated=T0 + DAY))
    run(engine, NOW + HOUR)  # a state change: status and end
    moved, still = case(engine, "rc:MC-1"), case(engine, "rc:MC-2")
    assert (moved.status, moved.ended_at, moved.updated_at) == ("resolved", T0 + DAY, NOW + HOUR)
    assert still.updated_at == NOW
    save(engine, rec("one_stop", "MC-2", applicant="B", status=Status.RESOLVED, completed_at=T0 + DAY,
                     applicant_name="Trần Thị Bình", updated=T0 + DAY))
    run(engine, NOW + 2 * HOUR)  # state and reception facts at once
    both = case(engine, "rc:MC-2")
    assert (both.status, both.applicant_name, both.updated_at) == ("resolved", "Trần Thị Bình", NOW + 2 * HOUR)
    assert case(engine, "rc:MC-1").updated_at == NOW + HOUR
