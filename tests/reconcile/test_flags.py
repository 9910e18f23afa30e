"""Flag lifecycle: raise, clear, re-open, acknowledge, and the flags that time alone raises."""

from __future__ import annotations

from sqlalchemy import Engine

from sync_agent.flags import (
    ISSUE_LABELS,
    acknowledge,
    details_text,
    flags_raised_since,
    list_flags,
    open_flag_counts,
    stored_details_text,
    summary_lines,
)
from sync_agent.model import Status
from sync_agent.reconcile import QUALITY_ISSUES
from sync_agent.store.engine import read_connection
from tests.reconcile.scenario import (
    DAY,
    HOUR,
    NOW,
    SECOND,
    T0,
    events,
    open_flags,
    open_kinds,
    rec,
    run,
    save,
)


def test_bypassed_reception_clears_when_the_reception_record_arrives(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-1", procedure="2.000720", received=T0 + HOUR))
    run(engine)
    [flag] = open_flags(engine)
    assert (flag.kind, flag.dossier_code, flag.sources, flag.subject) == (
        "bypassed_reception", "HKD-1", ("household_business",), "src:household_business:HKD-1")
    save(engine, rec("one_stop", "MC-1", procedure="2.000720"))  # received at the Centre after all
    result = run(engine, NOW + HOUR)
    assert (result.flags_raised, result.flags_cleared) == (0, 1)
    assert open_kinds(engine) == {}
    with read_connection(engine) as conn:
        [cleared] = list_flags(conn, include_closed=True)
    # its case is gone (the record joined MC-1's): the flag still says what it was about
    assert (cleared.state, cleared.dossier_code, cleared.sources, cleared.cleared_at) == (
        "cleared", "HKD-1", ("household_business",), NOW + HOUR)
    assert [e for e, _, _ in events(engine, flag.id)] == ["raised", "cleared"]


def test_an_unknown_code_is_flagged_a_day_after_first_seen_even_if_nothing_changes(engine: Engine) -> None:
    save(engine, rec("civil_status", "HT-1", code="MC-404"), seen=NOW - 20 * HOUR)
    run(engine)
    assert open_kinds(engine) == {"bypassed_reception": 1}
    run(engine, NOW + 3 * HOUR)  # not yet: 23 hours
    assert "unknown_reception_code" not in open_kinds(engine)
    result = run(engine, NOW + 5 * HOUR)  # no record changed; time passed
    assert (result.records_claimed, result.flags_raised) == (1, 1)
    [flag] = open_flags(engine, "unknown_reception_code")
    assert flag.details == {"reception_code": "MC-404"} and flag.raised_at == NOW + 5 * HOUR
    assert run(engine, NOW + 6 * HOUR).records_claimed == 0  # due once, recomputed once


def test_time_based_flags_are_caught_across_a_long_pause(engine: Engine) -> None:
    save(engine, rec("civil_status", "HT-1", code="MC-404"), seen=NOW)
    run(engine)
    run(engine, NOW + 10 * DAY)  # the daemon was down for days
    assert open_kinds(engine) == {"bypassed_reception": 1, "unknown_reception_code": 1}


def test_status_mismatch_counts_a_day_from_when_the_ministry_record_ended(engine: Engine) -> None:
    changed = NOW - 2 * HOUR
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS, updated=T0),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=changed, updated=changed))
    run(engine)
    assert open_kinds(engine) == {}
    run(engine, changed + DAY - HOUR)
    assert open_kinds(engine) == {}
    run(engine, changed + DAY + HOUR)
    [flag] = open_flags(engine)
    assert flag.kind == "status_mismatch"
    assert flag.details == {"one_stop": "in_progress", "civil_status": "resolved"}
    assert flag.sources == ("one_stop", "civil_status")  # the Centre's own register first
    # the Centre's copy catches up: they agree, the flag clears by itself
    save(engine, rec("one_stop", "MC-1", status=Status.DELIVERED, completed_at=changed, updated=changed + DAY))
    result = run(engine, changed + 2 * DAY)
    assert result.flags_cleared == 1 and open_kinds(engine) == {}


def test_status_mismatch_is_raised_after_more_than_a_day_not_at_a_day(engine: Engine) -> None:
    """domain.md: "disagree ... for more than one day"; an unknown code is flagged "one day after"."""
    ended = NOW - HOUR
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS, updated=T0),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=ended, updated=ended),
         rec("residence", "CT-1", code="MC-404"), seen=ended)
    run(engine)
    run(engine, ended + DAY)  # exactly a day: the code is due, the disagreement is not yet
    assert open_kinds(engine) == {"bypassed_reception": 1, "unknown_reception_code": 1}
    run(engine, ended + DAY + SECOND)
    assert open_kinds(engine) == {"bypassed_reception": 1, "unknown_reception_code": 1, "status_mismatch": 1}


def test_status_mismatch_counts_a_day_from_when_the_one_stop_record_ended(engine: Engine) -> None:
    ended = NOW - HOUR
    save(engine, rec("one_stop", "MC-1", status=Status.RESOLVED, completed_at=ended, updated=ended),
         rec("residence", "CT-1", code="MC-1", status=Status.IN_PROGRESS, updated=T0))
    run(engine)
    assert open_kinds(engine) == {}
    run(engine, ended + DAY + HOUR)
    [flag] = open_flags(engine)
    assert flag.details == {"one_stop": "resolved", "residence": "in_progress"}


def test_acknowledging_a_flag_already_cleared_keeps_the_note_and_says_when_it_cleared(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-1", procedure="2.000720", received=T0 + HOUR))
    run(engine)
    [flag] = open_flags(engine)
    assert acknowledge(engine, flag.id, "Đang hỏi bộ phận một cửa", now=NOW + HOUR) is None  # still open
    save(engine, rec("one_stop", "MC-1", procedure="2.000720"))
    run(engine, NOW + 2 * HOUR)  # cleared while the operator was looking into it
    assert acknowledge(engine, flag.id, "Một cửa đã nhập hồ sơ", now=NOW + 3 * HOUR) == NOW + 2 * HOUR
    assert [e for e, _, _ in events(engine, flag.id)] == ["raised", "acknowledged", "cleared", "acknowledged"]


def test_an_update_that_leaves_them_disagreeing_keeps_the_flag_and_its_acknowledgement(engine: Engine) -> None:
    ended = NOW - 3 * DAY
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS, updated=T0),
         rec("civil_status", "HT-1", code="MC-1", status=Status.RESOLVED, completed_at=ended, updated=ended))
    run(engine)
    [flag] = open_flags(engine)
    acknowledge(engine, flag.id, "Đã báo bộ phận một cửa cập nhật", now=NOW + HOUR)
    # the Centre's copy moves (a new due date) but still says open; the ministry's is delivered
    save(engine, rec("one_stop", "MC-1", status=Status.IN_PROGRESS, due=T0 + 9 * DAY, updated=NOW + 2 * HOUR),
         rec("civil_status", "HT-1", code="MC-1", status=Status.DELIVERED, completed_at=ended,
             updated=NOW + 2 * HOUR))
    result = run(engine, NOW + 3 * HOUR)
    assert (result.flags_raised, result.flags_cleared) == (0, 0)
    [kept] = open_flags(engine)
    assert (kept.id, kept.raised_at, kept.ack_note) == (flag.id, NOW, "Đã báo bộ phận một cửa cập nhật")
    assert kept.details == {"one_stop": "in_progress", "civil_status": "delivered"}
    assert [e for e, _, _ in events(engine, flag.id)] == ["raised", "acknowledged"]


def test_data_quality_names_every_problem(engine: Engine) -> None:
    save(engine,
         rec("one_stop", "MC-1", status=Status.RESOLVED, completed_at=T0 - HOUR),
         rec("one_stop", "MC-2", due=None),
         rec("one_stop", "MC-3", received=None, due=None),
         rec("one_stop", "MC-4", status=Status.DELIVERED),  # ended, with no end time
         rec("one_stop", "MC-5", due=T0 - DAY),
         rec("one_stop", "MC-6", status=Status.SUBMITTED, received=None, due=None),  # not counted: fine
         rec("one_stop", "MC-7", status=Status.WITHDRAWN, withdrawn_at=T0 + DAY))  # fine
    run(engine)
    issues = {f.dossier_code: f.details["issue"] for f in open_flags(engine, "data_quality")}
    assert issues == {
        "MC-1": "completion_before_reception",
        "MC-2": "no_due_date",
        "MC-3": "no_due_date, no_reception_time",
        "MC-4": "no_end_time",
        "MC-5": "due_before_reception",
    }
    save(engine, rec("one_stop", "MC-2", due=T0 + DAY, updated=T0 + HOUR))  # the source corrects it
    assert run(engine, NOW + HOUR).flags_cleared == 1


def test_an_acknowledgement_survives_reconciliation_and_resets_when_the_flag_comes_back(engine: Engine) -> None:
    save(engine, rec("household_business", "HKD-1", procedure="2.000720"))
    run(engine)
    [flag] = open_flags(engine)
    acknowledge(engine, flag.id, "Đã gọi điện cho chủ hộ", now=NOW + HOUR)
    save(engine, rec("household_business", "HKD-1", procedure="2.000720", status=Status.RESOLVED,
                     completed_at=T0 + DAY, updated=T0 + DAY))
    run(engine, NOW + 2 * HOUR)
    run(engine, NOW + 2 * HOUR, full=True)
    [kept] = open_flags(engine)
    assert (kept.id, kept.ack_note, kept.acknowledged_at, kept.raised_at) == (
        flag.id, "Đã gọi điện cho chủ hộ", NOW + HOUR, NOW)
    # the reception record arrives (cleared), then the link is released again (raised anew)
    save(engine, rec("one_stop", "MC-1", procedure="2.000720"))
    run(engine, NOW + 3 * HOUR)
    save(engine, rec("household_business", "HKD-9", code="MC-1", procedure="2.000720"))
    run(engine, NOW + 4 * HOUR)
    [again] = open_flags(engine)
    assert (again.id, again.raised_at, again.ack_note, again.acknowledged_at) == (flag.id, NOW + 4 * HOUR, None, None)
    assert events(engine, flag.id) == [("raised", NOW, None), ("acknowledged", NOW + HOUR, "Đã gọi điện cho chủ hộ"),
                                       ("cleared", NOW + 3 * HOUR, None), ("raised", NOW + 4 * HOUR, None)]
    with read_connection(engine) as conn:
        assert [f.id for f in flags_raised_since(conn, NOW + 3 * HOUR)] == [flag.id]
        assert flags_raised_since(conn, NOW + 4 * HOUR) == []


def test_counts_and_summary_for_operators(engine: Engine) -> None:
    save(engine, rec("one_stop", "MC-1"), rec("civil_status", "HT-1", code="MC-1"),
         rec("household_business", "HKD-2", applicant="B", applicant_name="Trần Thị Bích Hạnh"),
         rec("residence", "CT-3", applicant="C", received=T0 + HOUR))
    run(engine)
    with read_connection(engine) as conn:
        counts = open_flag_counts(conn)
        lines = summary_lines(conn)
    assert counts == {"bypassed_reception": 2, "unknown_reception_code": 0, "status_mismatch": 0,
                      "data_quality": 0}
    assert lines[0].startswith("4 records (civil_status 1, household_business 1, one_stop 1, residence 1) -> 3 cases")
    text = "\n".join(lines)
    assert "HKD-2" in text and "T. T. B. Hạnh" in text and "Trần Thị" not in text


def test_every_issue_has_words_for_the_operators() -> None:
    assert set(ISSUE_LABELS) == set(QUALITY_ISSUES)
    assert details_text({"issue": "no_due_date, no_reception_time"}) == (
        "hồ sơ chưa có ngày hẹn trả, hồ sơ chưa có ngày tiếp nhận")
    assert details_text({"one_stop": "in_progress", "civil_status": "resolved"}) == (
        "Một cửa: đang giải quyết; Hộ tịch: đã giải quyết")
    assert details_text({"reception_code": "MC-404"}) == "mã tiếp nhận MC-404"


def test_stored_details_read_as_words_and_older_free_text_as_it_is() -> None:
    """What the monthly report's list of flagged dossiers shows staff for a flag's details."""
    assert stored_details_text('{"issue": "completion_before_reception"}') == "ngày hoàn thành trước ngày tiếp nhận"
    assert stored_details_text('{"reception_code": "MC-404"}') == "mã tiếp nhận MC-404"
    assert stored_details_text("Một cửa: đang giải quyết") == "Một cửa: đang giải quyết"
    assert stored_details_text('["not", "an object"]') == '["not", "an object"]'


def test_a_case_with_two_flags_lists_each_of_its_sources_once(engine: Engine) -> None:
    """Flags are listed by the hundred: a case with two flags must not show its source twice
    (seen in the demo as 'household_business, household_business')."""
    save(engine, *(rec("household_business", f"HKD-{n}", procedure="2.000720", applicant=f"A{n}", due=None)
                   for n in range(600)))  # each bypassed and without a due date: two flags a case
    run(engine)
    with read_connection(engine) as conn:
        views = list_flags(conn)
    assert len(views) == 1200
    assert {v.sources for v in views} == {("household_business",)}
