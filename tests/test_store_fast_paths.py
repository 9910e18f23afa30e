"""The dossier upsert skips SQLAlchemy's per-row parameter processing and hashes content in one
go; the values it hands the driver, and the hashes, must be exactly what the plain way gave."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Dialect

from sync_agent.model import Channel, DossierRecord, Status
from sync_agent.store import records
from sync_agent.store.tables import dossiers, metadata

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DIALECTS = pytest.mark.parametrize("dialect", [sqlite.dialect(), psycopg.dialect()], ids=["sqlite", "postgresql"])

BASE = DossierRecord(
    source="one_stop", source_id="H31-1", procedure_code="1.001193", status=Status.RESOLVED,
    source_updated_at=dt.datetime(2026, 2, 1, 9, 0, 1, tzinfo=TZ), reception_code="H31-1",
    procedure_name="Đăng ký khai sinh", applicant_name="Nguyễn Văn An", applicant_key="k" * 32,
    channel=Channel.ONLINE, submitted_at=dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC),
    received_at=dt.datetime(2026, 2, 1, 8, 0, 0, 123456, tzinfo=TZ),
    due_at=dt.datetime(2026, 2, 3, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
    completed_at=dt.datetime(999, 1, 2, 3, 4, 5, tzinfo=dt.UTC), digitised=True, fee_required=True,
    raw={"MaHoSo": "H31-1", "x": [1, {"y": "z"}]},
)
RECORDS = [
    BASE,
    dataclasses.replace(BASE, source_id="H31-2", received_at=None, due_at=None, completed_at=None,
                        submitted_at=None, reception_code="", status=Status.RECEIVED, digitised=False),
    dataclasses.replace(BASE, source_id="H31-3", status=Status.WITHDRAWN, completed_at=None,
                        withdrawn_at=dt.datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))),
]
NOW = dt.datetime(2026, 2, 15, 8, 0, 0, 250000, tzinfo=TZ)


def reference_hash(row: dict[str, Any]) -> str:
    """The content hash as first written: column by column."""
    digest = hashlib.sha256()
    for col in records._CONTENT_COLUMNS:
        value = row[col]
        digest.update(b"\x1f" if value is None else str(
            value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value
        ).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def sqlalchemy_parameters(dialect: Dialect, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What ``Connection.execute`` would hand the driver: every value through its bind processor."""
    upsert = records._Upsert(dialect)
    out = []
    for row in rows:
        values = []
        for name in upsert.names:
            process = dossiers.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            values.append(row[name] if process is None else process(row[name]))
        out.append(tuple(values))
    return out


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.source_id)
def test_the_content_hash_is_the_column_by_column_one(rec: DossierRecord) -> None:
    row = records.record_row(rec, TZ)
    assert row["content_hash"] == reference_hash(row)


@DIALECTS
def test_the_driver_gets_what_sqlalchemy_would_give_it(dialect: Dialect) -> None:
    sighting = {"first_seen_at": NOW, "last_seen_at": NOW, "last_run_id": 7}
    prepared = [records._row_and_texts(rec, TZ) for rec in RECORDS]
    got = records._Upsert(dialect).parameters(prepared, sighting)
    expected = sqlalchemy_parameters(dialect, [{**row, **sighting} for row, _ in prepared])
    if not records._Upsert(dialect).positional:
        names = records._Upsert(dialect).names
        got = [tuple(p[n] for n in names) for p in got]
    assert got == expected
    # the same types too, but for SQLite's booleans: the driver binds True as the integer 1 itself
    bool_as_int = dialect.name == "sqlite"
    assert [[int if bool_as_int and type(v) is bool else type(v) for v in row] for row in got] == \
        [[type(v) for v in row] for row in expected]


def test_sqlite_stores_the_same_cells_either_way() -> None:
    dialect = sqlite.dialect()
    sighting = {"first_seen_at": NOW, "last_seen_at": NOW, "last_run_id": 7}
    prepared = [records._row_and_texts(rec, TZ) for rec in RECORDS]
    upsert = records._Upsert(dialect)
    stored = []
    for params in (upsert.parameters(prepared, sighting),
                   sqlalchemy_parameters(dialect, [{**row, **sighting} for row, _ in prepared])):
        engine = create_engine("sqlite://")
        metadata.create_all(engine, tables=[dossiers])
        with engine.begin() as conn:
            conn.exec_driver_sql(upsert.sql, params)
            columns = ", ".join(f"typeof({c.name}), {c.name}" for c in dossiers.c if c.name != "id")
            stored.append(conn.exec_driver_sql(f"SELECT {columns} FROM dossiers ORDER BY source_id").all())
    assert stored[0] == stored[1]


@DIALECTS
def test_a_naive_time_is_refused_as_before(dialect: Dialect) -> None:
    from sqlalchemy.exc import StatementError

    naive = dataclasses.replace(BASE, received_at=dt.datetime(2026, 2, 1, 8, 0))
    upsert = records._Upsert(dialect)
    with pytest.raises(StatementError, match="naive datetime"):
        upsert.execute(None, [records._row_and_texts(naive, TZ)], {  # type: ignore[arg-type]
            "first_seen_at": NOW, "last_seen_at": NOW, "last_run_id": 7})


def test_sqlite_text_of_an_instant() -> None:
    assert records._sqlite_text("2026-01-20T01:30:00+00:00") == "2026-01-20 01:30:00.000000"
    assert records._sqlite_text("0999-01-20T01:30:00.000001+00:00") == "0999-01-20 01:30:00.000001"
