"""Every status code of every source maps as ``sources.md`` says, end times included.

The expected tables are written out here from the spec, not imported from the mappings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext
from sync_agent.model import DossierRecord, QuarantinedRecord, Status
from sync_agent.privacy import IdHasher

from .conftest import TZ
from .sources import SOURCES, Source, put

FINISHED = dt.datetime(2026, 1, 21, 10, 0, tzinfo=TZ)
UPDATED = dt.datetime(2026, 1, 21, 11, 30, tzinfo=TZ)
REFUSED = dt.datetime(2026, 1, 21, 9, 15, tzinfo=TZ)

# code → (status, where it ended): None = open / not counted; "finished" = at the finish
# field only; "finished|updated" = at the finish field, else the update time
EXPECTED: dict[str, dict[Any, tuple[Status, str | None]]] = {
    "one_stop": {
        "1": (Status.SUBMITTED, None),
        "2": (Status.RECEIVED, None),
        "3": (Status.NOT_ACCEPTED, None),
        "4": (Status.IN_PROGRESS, None),
        "5": (Status.AWAITING_SUPPLEMENT, None),
        "6": (Status.AWAITING_PAYMENT, None),
        "7": (Status.WITHDRAWN, "finished|updated"),
        "8": (Status.SUSPENDED, None),
        "9": (Status.RESOLVED, "finished"),
        "10": (Status.DELIVERED, "finished"),
    },
    "civil_status": {
        1: (Status.RECEIVED, None),
        2: (Status.AWAITING_SUPPLEMENT, None),
        3: (Status.IN_PROGRESS, None),
        4: (Status.RESOLVED, "finished"),
        5: (Status.DELIVERED, "finished"),
        6: (Status.REJECTED, "finished|updated"),
        7: (Status.WITHDRAWN, "finished|updated"),
    },
    "residence": {
        "received": (Status.RECEIVED, None),
        "processing": (Status.IN_PROGRESS, None),
        "supplement_requested": (Status.AWAITING_SUPPLEMENT, None),
        "completed": (Status.RESOLVED, "finished"),
        "returned": (Status.DELIVERED, "finished"),
        "rejected": (Status.REJECTED, "finished"),
        "withdrawn": (Status.WITHDRAWN, "finished|updated"),
    },
    "household_business": {
        "CHO_TIEP_NHAN": (Status.SUBMITTED, None),
        "DA_TIEP_NHAN": (Status.RECEIVED, None),
        "DANG_XU_LY": (Status.IN_PROGRESS, None),
        "YEU_CAU_BO_SUNG": (Status.AWAITING_SUPPLEMENT, None),
        "DA_CAP_GCN": (Status.RESOLVED, "finished"),
        "DA_TRA_KET_QUA": (Status.DELIVERED, "finished"),
        "TU_CHOI": (Status.REJECTED, "finished|updated"),
        "DA_RUT": (Status.WITHDRAWN, "finished|updated"),
    },
}
CASES = [(s, c) for s in SOURCES for c in EXPECTED[s.name]]
END_ATTRS = ("completed_at", "rejected_at", "withdrawn_at")


def _item(source: Source, code: Any, finished: dt.datetime | None) -> dict[str, Any]:
    item = put(source.sample(), source.status_field, code)
    put(item, source.updated_field, source.render(UPDATED))
    put(item, source.finished_field, source.render(finished) if finished else "")
    return item


def _record(source: Source, item: dict[str, Any], context: ConnectorContext) -> DossierRecord:
    out = source.mapping.normalise_item(item, context)
    assert isinstance(out, DossierRecord), getattr(out, "reason", out)
    return out


def _ends(record: DossierRecord) -> dict[str, dt.datetime | None]:
    return {a: getattr(record, a) for a in END_ATTRS}


def test_the_tables_have_exactly_the_specified_codes() -> None:
    for source in SOURCES:
        assert set(source.mapping.STATUSES) == {str(c) for c in EXPECTED[source.name]}, source.name


@pytest.mark.parametrize(("source", "code"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
def test_every_code_maps_with_its_end_time(source: Source, code: Any, context: ConnectorContext) -> None:
    status, rule = EXPECTED[source.name][code]
    with_finish = _record(source, _item(source, code, FINISHED), context)
    without_finish = _record(source, _item(source, code, None), context)
    assert with_finish.status is status and without_finish.status is status
    if rule is None:
        assert with_finish.ended_at is None and without_finish.ended_at is None
        assert set(_ends(with_finish).values()) == {None}
        return
    assert with_finish.ended_at == FINISHED
    assert without_finish.ended_at == (UPDATED if rule == "finished|updated" else None)
    # only the end time that belongs to the status is set
    assert [a for a, v in _ends(with_finish).items() if v is not None] == [
        {
            Status.RESOLVED: "completed_at",
            Status.DELIVERED: "completed_at",
            Status.REJECTED: "rejected_at",
            Status.WITHDRAWN: "withdrawn_at",
        }[status]
    ]


def test_civil_status_accepts_the_integer_as_text_too(context: ConnectorContext) -> None:
    source = next(s for s in SOURCES if s.name == "civil_status")
    assert _record(source, _item(source, "6", None), context).status is Status.REJECTED


ONE_STOP = next(s for s in SOURCES if s.name == "one_stop")


@pytest.mark.parametrize("code", [c for c in EXPECTED["one_stop"] if c not in ("1", "3")])
def test_one_stop_a_refusal_date_means_rejected_at_it(code: str, context: ConnectorContext) -> None:
    item = _item(ONE_STOP, code, FINISHED)
    item["NgayTuChoi"] = ONE_STOP.render(REFUSED)
    record = _record(ONE_STOP, item, context)
    assert record.status is Status.REJECTED
    assert record.rejected_at == REFUSED and record.ended_at == REFUSED
    assert record.completed_at is None and record.withdrawn_at is None


@pytest.mark.parametrize(("code", "status"), [("1", Status.SUBMITTED), ("3", Status.NOT_ACCEPTED)])
def test_one_stop_codes_1_and_3_ignore_a_refusal_date(
    code: str, status: Status, context: ConnectorContext
) -> None:
    item = _item(ONE_STOP, code, None)
    item["NgayTuChoi"] = ONE_STOP.render(REFUSED)
    record = _record(ONE_STOP, item, context)
    assert record.status is status and record.rejected_at is None


@pytest.mark.parametrize("source", SOURCES, ids=str)
@settings(max_examples=60, deadline=None)
@given(code=st.one_of(st.text(min_size=1, max_size=20), st.integers()))
def test_unknown_codes_are_quarantined(source: Source, code: Any) -> None:
    assume(str(code).strip() and str(code).strip() not in source.mapping.STATUSES)
    context = ConnectorContext(ward_code="11311", timezone=TZ, hasher=IdHasher("k"))
    out = source.mapping.normalise_item(put(source.sample(), source.status_field, code), context)
    assert isinstance(out, QuarantinedRecord)
    assert source.status_field in out.reason and "unknown code" in out.reason
    assert out.source_id == str(source.sample()[source.id_field])


@pytest.mark.parametrize("source", SOURCES, ids=str)
@pytest.mark.parametrize("missing", ["", None, ...], ids=["empty", "null", "absent"])
def test_a_missing_status_is_quarantined(source: Source, missing: Any, context: ConnectorContext) -> None:
    out = source.mapping.normalise_item(put(source.sample(), source.status_field, missing), context)
    assert isinstance(out, QuarantinedRecord) and source.status_field in out.reason
