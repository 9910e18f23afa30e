"""A small crafted store for the digest tests: cases and flags written directly."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from sync_agent.store.engine import write_transaction
from sync_agent.store.tables import agent_state, case_links, cases, dossiers, flags, reconcile_queue

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = dt.date(2026, 2, 12)  # Thursday before Tết: Mon 16 - Fri 20 February are off
NOW = dt.datetime(2026, 2, 12, 7, 30, tzinfo=ICT)
LAST_DIGEST = dt.datetime(2026, 2, 11, 7, 30, tzinfo=ICT)
OLD = dt.datetime(2026, 1, 20, 9, 0, tzinfo=ICT)


def at(day: int, hour: int, month: int = 2) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=ICT)


def _case(key: str, *, status: str, due: dt.date | None, first_seen: dt.datetime, source: str = "one_stop",
          code: str | None = None, name: str = "Nguyễn Văn An", proc: str = "1.001193",
          ended_on: dt.date | None = None, submitted: dt.datetime | None = None) -> dict[str, Any]:
    return dict(
        case_key=key, reception_code=code, has_one_stop=source == "one_stop", reception_source=source,
        state_source=source, procedure_code=proc, procedure_name="Đăng ký khai sinh", field_code="HOTICH",
        field_name="Hộ tịch", applicant_name=name, applicant_key="k" * 32, channel="online", status=status,
        received_at=first_seen, submitted_at=submitted or first_seen,
        due_at=None if due is None else dt.datetime.combine(due, dt.time(17), ICT),
        received_on=first_seen.date(), due_on=due, ended_on=ended_on, digitised=True, data_reused=False,
        fee_required=False, paid_online=False, record_count=1, first_seen_at=first_seen, updated_at=first_seen,
    )


def _dossier(source: str, source_id: str, *, code: str | None = None,
             status: str = "in_progress", due: dt.date | None = None) -> dict[str, Any]:
    return dict(
        source=source, source_id=source_id, reception_code=code, procedure_code="1.001193",
        procedure_name="Đăng ký khai sinh", field_name="Hộ tịch", applicant_name="Trần Thị Bình",
        applicant_key="k" * 32, channel="online", status=status, received_on=OLD.date(), due_on=due,
        source_updated_at=OLD, raw_payload="{}", content_hash="h" * 64, first_seen_at=OLD, last_seen_at=OLD,
    )


def load(engine: Engine, *, last_digest: dt.datetime | None = LAST_DIGEST) -> dict[str, int]:
    """Write the crafted store; returns the case ids by letter."""
    specs = {
        # new (first seen after the last digest) and due on Mon 23 Feb: 2 working days away (Tết)
        "A": _case("rc:H01-0001", code="H01-0001", status="received", due=dt.date(2026, 2, 23),
                   first_seen=at(12, 6)),
        # new, bypassed the reception desk, due Tue 24 Feb: 3 working days away, not due soon
        "B": _case("src:civil_status:HT-77", source="civil_status", status="in_progress",
                   due=dt.date(2026, 2, 24), first_seen=at(11, 9), name="Lê Văn Cường"),
        # overdue by two days, still in progress
        "C": _case("rc:H01-0003", code="H01-0003", status="in_progress", due=dt.date(2026, 2, 10),
                   first_seen=OLD),
        # overdue date, but waiting for the citizen's supplement: not overdue
        "D": _case("rc:H01-0004", code="H01-0004", status="awaiting_supplement", due=dt.date(2026, 2, 9),
                   first_seen=OLD),
        # ended: neither overdue nor due soon
        "E": _case("rc:H01-0005", code="H01-0005", status="resolved", due=dt.date(2026, 2, 5),
                   first_seen=OLD),
        # seen before the last digest: not new; due today
        "G": _case("rc:H01-0007", code="H01-0007", status="in_progress", due=TODAY, first_seen=at(11, 7)),
        # new, filed but not received yet, no due date
        "H": _case("src:residence:CT-9", source="residence", status="submitted", due=None,
                   first_seen=at(12, 7)),
        # first seen in the window but ended long before it: history loaded by a first sync
        "J": _case("rc:H01-0010", code="H01-0010", status="resolved", due=dt.date(2026, 1, 5),
                   first_seen=at(12, 5), ended_on=dt.date(2026, 1, 4)),
        # first seen in the window and ended in it: news
        "K": _case("src:household_business:HKD-5", source="household_business", status="resolved",
                   due=dt.date(2026, 2, 13), first_seen=at(12, 6), ended_on=dt.date(2026, 2, 11)),
        # refused at reception last month, loaded now: history too
        "L": _case("rc:H01-0011", code="H01-0011", status="not_accepted", due=None, first_seen=at(12, 5),
                   submitted=at(20, 9, month=1)),
        # first seen after "now": belongs to the next digest
        "I": _case("rc:H01-0009", code="H01-0009", status="received", due=dt.date(2026, 3, 2),
                   first_seen=at(12, 9)),
    }
    ids: dict[str, int] = {}
    with write_transaction(engine) as conn:
        for letter, row in specs.items():
            ids[letter] = int(conn.execute(cases.insert().values(**row)).inserted_primary_key[0])  # type: ignore[index]
        for case_id, record in ((ids["A"], _dossier("one_stop", "OS-1", code="H01-0001")),
                                (ids["B"], _dossier("civil_status", "HT-77")),
                                (ids["H"], _dossier("residence", "CT-9", status="submitted"))):
            dossier_id = conn.execute(dossiers.insert().values(**record)).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(case_links.insert().values(dossier_id=dossier_id, case_id=case_id, link_kind="own"))
        lone = _dossier("civil_status", "HT-88", code="H01-9999", due=dt.date(2026, 2, 25))
        orphan = int(conn.execute(dossiers.insert().values(**lone)).inserted_primary_key[0])  # type: ignore[index]
        flag_rows = [
            dict(kind="bypassed_reception", subject_key="src:civil_status:HT-77", case_id=ids["B"],
                 state="open", raised_at=at(11, 10)),
            dict(kind="data_quality", subject_key="rc:H01-0003", case_id=ids["C"], state="open",
                 raised_at=at(10, 10), details='{"issue": "completion_before_reception"}'),
            dict(kind="data_quality", subject_key="rc:H01-0001", case_id=ids["A"], state="open",
                 raised_at=at(12, 6), details='{"issue": "no_due_date"}'),
            dict(kind="unknown_reception_code", subject_key="civil_status:HT-88", dossier_id=orphan,
                 state="open", raised_at=at(12, 5), details="cites H01-9999, CCCD 012345678901"),
            dict(kind="status_mismatch", subject_key="rc:H01-0005", case_id=ids["E"], state="cleared",
                 raised_at=at(11, 12), cleared_at=at(12, 1)),
        ]
        for f in flag_rows:
            conn.execute(flags.insert().values(**f))
        if last_digest is not None:
            conn.execute(agent_state.insert().values(name="alerts.last_digest_at",
                                                     value=last_digest.astimezone(dt.UTC).isoformat(),
                                                     updated_at=last_digest))
    return ids


def store_unreconciled(engine: Engine, code: str, synced: dt.datetime) -> None:
    """A one_stop dossier as a sync leaves it at ``synced``: stored and queued, not reconciled yet."""
    row = _dossier("one_stop", f"LATE-{code}", code=code, due=synced.date() + dt.timedelta(days=30))
    row.update(first_seen_at=synced, last_seen_at=synced, received_on=synced.date(), source_updated_at=synced)
    with write_transaction(engine) as conn:
        dossier_id = conn.execute(dossiers.insert().values(**row)).inserted_primary_key[0]
        conn.execute(reconcile_queue.insert().values(dossier_id=dossier_id))
