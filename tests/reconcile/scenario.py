"""Small scenarios for the reconciliation tests: records, saving them as a sync would, reading back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from sync_agent.flags import FlagView, list_flags, open_flag_counts
from sync_agent.model import Channel, DossierRecord, Status
from sync_agent.reconcile import CASE_COLUMNS, ReconcileResult, reconcile
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.records import save_records
from sync_agent.store.tables import case_links, cases, dossiers, flag_events, flags

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = dt.datetime(2026, 2, 2, 8, 0, tzinfo=TZ)
NOW = dt.datetime(2026, 2, 20, 9, 0, tzinfo=TZ)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)


def rec(source: str, source_id: str, *, code: str | None = None, applicant: str | None = "A1",
        procedure: str = "1.001193", status: Status = Status.IN_PROGRESS, received: dt.datetime | None = T0,
        updated: dt.datetime = T0, due: dt.datetime | None = T0 + 5 * DAY, **kw: Any) -> DossierRecord:
    """A record; a ``one_stop`` record's code is its own id unless given."""
    if source == "one_stop" and code is None:
        code = source_id
    kw.setdefault("channel", Channel.ONLINE)
    kw.setdefault("applicant_name", "Nguyễn Văn An")
    return DossierRecord(source=source, source_id=source_id, reception_code=code, procedure_code=procedure,
                         status=status, source_updated_at=updated, applicant_key=applicant,
                         received_at=received, due_at=due, **kw)


def save(engine: Engine, *records: DossierRecord, seen: dt.datetime = T0) -> None:
    """Store records as one sync transaction per source would (marking them for reconciliation)."""
    by_source: dict[str, list[DossierRecord]] = {}
    for r in records:
        by_source.setdefault(r.source, []).append(r)
    with write_transaction(engine) as conn:
        for source, recs in by_source.items():
            save_records(conn, source, recs, TZ, None, seen)


def run(engine: Engine, now: dt.datetime = NOW, *, full: bool = False) -> ReconcileResult:
    return reconcile(engine, TZ, full=full, now=now)


def case_keys(engine: Engine) -> list[str]:
    with read_connection(engine) as conn:
        return list(conn.execute(select(cases.c.case_key).order_by(cases.c.case_key)).scalars())


def case(engine: Engine, key: str) -> Any:
    with read_connection(engine) as conn:
        return conn.execute(select(cases).where(cases.c.case_key == key)).one()


def key_of(engine: Engine, source: str, source_id: str) -> tuple[str, str]:
    """(case key, link kind) of one record."""
    with read_connection(engine) as conn:
        row = conn.execute(select(cases.c.case_key, case_links.c.link_kind)
                           .join_from(dossiers, case_links, case_links.c.dossier_id == dossiers.c.id)
                           .join(cases, cases.c.id == case_links.c.case_id)
                           .where(dossiers.c.source == source, dossiers.c.source_id == source_id)).one()
    return row.case_key, row.link_kind


def open_kinds(engine: Engine) -> dict[str, int]:
    with read_connection(engine) as conn:
        return {k: n for k, n in open_flag_counts(conn).items() if n}


def open_flags(engine: Engine, kind: str | None = None) -> list[FlagView]:
    with read_connection(engine) as conn:
        return list_flags(conn, kind=kind)


def events(engine: Engine, flag_id: int) -> list[tuple[str, dt.datetime, str | None]]:
    with read_connection(engine) as conn:
        rows = conn.execute(select(flag_events.c.event, flag_events.c.at, flag_events.c.note)
                            .where(flag_events.c.flag_id == flag_id).order_by(flag_events.c.id))
        return [(r.event, r.at, r.note) for r in rows]


def snapshot(engine: Engine, *, with_ids: bool = False) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Cases (every computed column but, unless asked, the id) and open flags, comparable across stores."""
    columns = [c for c in CASE_COLUMNS if with_ids or c != "id"]
    with read_connection(engine) as conn:
        case_rows = conn.execute(select(*(cases.c[c] for c in columns)).order_by(cases.c.case_key)).all()
        flag_rows = conn.execute(select(flags.c.kind, flags.c.subject_key, flags.c.details)
                                 .where(flags.c.state == "open").order_by(flags.c.kind, flags.c.subject_key)).all()
        if with_ids:
            links = conn.execute(select(dossiers.c.source, dossiers.c.source_id, case_links.c.case_id,
                                        case_links.c.link_kind)
                                 .join_from(dossiers, case_links, case_links.c.dossier_id == dossiers.c.id)
                                 .order_by(dossiers.c.id)).all()
            case_rows = [*case_rows, *links]
    return [tuple(r) for r in case_rows], [tuple(r) for r in flag_rows]


def wipe(engine: Engine, tables: Iterable[str] = ("flag_events", "flags", "cases", "case_links", "reconcile_queue",
                                                  "dossiers", "agent_state")) -> None:
    with write_transaction(engine) as conn:
        for table in tables:
            conn.exec_driver_sql(f"DELETE FROM {table}")
