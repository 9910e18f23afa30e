"""Benchmark: one period's report on a store of 1,000,000 records, against a plain GROUP BY.

The store is filled directly (no sync, no reconciliation): N dossier records forming about
0.77 N cases over seven years of a busy ward (30 % of the Centre's dossiers are also held by a
ministry, 3 % bypass the Centre), plus a few thousand open flags and some sync runs. Then, in
the same process and on the same data:

- baseline: ``SELECT reception_source, field_code, COUNT(*) FROM cases GROUP BY 1, 2``, one pass
  over the same cases, the least any per-source, per-field count can cost;
- report: ``build_report`` for 2026-02: the counting statement, records per source, open flags,
  the bypassed and flagged lists, sync health, everything the email shows;
- counting: the counting statement alone;
- with the dossier list: ``build_report(..., with_dossiers=True)`` and the list written as .xlsx
  and .csv, what ``report --out`` adds.

Each is timed ``--repeat`` times after a warm-up; the table shows the medians.

    .venv/bin/python bench/report.py                       # SQLite, 1,000,000 records
    .venv/bin/python bench/report.py --records 100000
    .venv/bin/python bench/report.py --db-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sync_agent.config import AgentSettings, ConnectorSettings, ReportSettings, Settings  # noqa: E402
from sync_agent.report import Period, build_report  # noqa: E402
from sync_agent.report.counting import count_cells  # noqa: E402
from sync_agent.report.dossier_list import build_dossier_csv, build_dossier_xlsx  # noqa: E402
from sync_agent.store.engine import create_store_engine, migrate, read_connection  # noqa: E402
from sync_agent.store.tables import cases, dossiers, flags, sync_runs  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SOURCES = ("one_stop", "civil_status", "residence", "household_business")
FIELDS = [
    ("HOTICH", "Hộ tịch", "civil_status"),
    ("CUTRU", "Cư trú", "residence"),
    ("DKKD", "Đăng ký kinh doanh", "household_business"),
    ("CHUNGTHUC", "Chứng thực", None),
    ("DATDAI", "Đất đai", None),
    ("BTXH", "Bảo trợ xã hội", None),
    ("LDTBXH", "Lao động", None),
]
FIRST_DAY = dt.date(2019, 3, 1)
LAST_DAY = dt.date(2026, 2, 20)  # a few days into the next period, as on the 20th
PERIOD = Period.parse("2026-02")
BATCH = 20_000


def settings() -> Settings:
    return Settings(
        agent=AgentSettings(
            ward_code="11311",
            ward_name="Phường Thạch Khôi",
            timezone=TZ,
            database_url="",
            id_hash_key="bench",
        ),
        connectors=tuple(ConnectorSettings(name=s, type=s, base_url="http://127.0.0.1:1") for s in SOURCES),
        report=ReportSettings(recipients=("a@example.gov.vn",)),
    )


def _utc(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), TZ).astimezone(dt.UTC)


def generate(records: int, seed: int = 7) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(case row, its record rows) until ``records`` records are made."""
    rng = random.Random(seed)
    span = (LAST_DAY - FIRST_DAY).days
    now = _utc(LAST_DAY, 7)
    made = n = 0
    while made < records:
        n += 1
        code, fname, ministry = FIELDS[rng.randrange(len(FIELDS))]
        received = FIRST_DAY + dt.timedelta(days=int(span * (rng.random() ** 0.8)))
        bypass = ministry is not None and rng.random() < (0.6 if code == "DKKD" else 0.01)
        shared = ministry is not None and not bypass and rng.random() < 0.5
        source = ministry if bypass else "one_stop"
        assert source is not None
        due = received + dt.timedelta(days=rng.choice((1, 2, 3, 5, 7, 15)))
        age = (LAST_DAY - received).days
        r = rng.random()
        if age > 40 or r < 0.9:
            status = rng.choices(("delivered", "resolved", "rejected", "withdrawn"), (80, 19, 0.5, 0.5))[0]
            ended: dt.date | None = received + dt.timedelta(days=rng.randint(0, 6))
            if ended and ended > LAST_DAY:
                ended, status = None, "in_progress"
        else:
            status, ended = rng.choice(("received", "in_progress", "awaiting_supplement")), None
        channel = "online" if rng.random() < 0.97 else rng.choice(("direct", "postal"))
        key = f"rc:H01-{n:08d}" if source == "one_stop" else f"src:{source}:{n:08d}"
        case = dict(
            case_key=key,
            reception_code=key[3:] if source == "one_stop" else None,
            has_one_stop=source == "one_stop",
            reception_source=source,
            state_source=ministry if shared else source,
            procedure_code=f"1.{n % 900:06d}",
            procedure_name="Thủ tục",
            field_code=code,
            field_name=fname,
            applicant_name="Nguyễn Văn An",
            applicant_key=f"{n:032x}",
            channel=channel,
            status=status,
            submitted_at=_utc(received, 8),
            received_at=_utc(received, 9),
            due_at=_utc(due, 17),
            ended_at=_utc(ended, 10) if ended else None,
            received_on=received,
            due_on=due,
            ended_on=ended,
            digitised=rng.random() < 0.995,
            data_reused=rng.random() < 0.996,
            fee_required=rng.random() < 0.3,
            paid_online=rng.random() < 0.99,
            record_count=2 if shared else 1,
            inferred=False,
            first_seen_at=now,
            updated_at=now,
        )
        recs = []
        holders = [source, ministry] if shared and ministry else [source]
        for rec_source in holders:
            recs.append(
                dict(
                    source=rec_source,
                    source_id=f"{rec_source[:3]}-{n:08d}",
                    reception_code=case["reception_code"],
                    procedure_code=case["procedure_code"],
                    channel=channel,
                    status=status,
                    received_at=case["received_at"],
                    due_at=case["due_at"],
                    received_on=received,
                    due_on=due,
                    ended_on=ended,
                    source_updated_at=now,
                    raw_payload="{}",
                    content_hash="0" * 64,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        made += len(recs)
        yield case, recs


def fill(engine: Engine, records: int) -> tuple[int, int]:
    """Bulk-insert the store; returns (records, cases)."""
    n_cases = n_records = 0
    case_buf: list[dict[str, Any]] = []
    rec_buf: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(cases), case_buf)
            conn.execute(insert(dossiers), rec_buf)
        case_buf.clear()
        rec_buf.clear()

    for case, recs in generate(records):
        case_buf.append(case)
        rec_buf.extend(recs)
        n_cases += 1
        n_records += len(recs)
        if len(case_buf) >= BATCH:
            flush()
    if case_buf:
        flush()
    now = _utc(LAST_DAY, 7)
    with engine.begin() as conn:
        ids = [i for (i,) in conn.execute(select(cases.c.id).where(cases.c.id % 250 == 0))]
        conn.execute(
            insert(flags),
            [
                dict(
                    kind=("status_mismatch", "data_quality", "unknown_reception_code")[i % 3],
                    subject_key=f"bench:{i}",
                    case_id=i,
                    state="open",
                    details="bench",
                    raised_at=now,
                )
                for i in ids
            ],
        )
        conn.execute(
            insert(sync_runs),
            [
                dict(
                    source=s,
                    started_at=now - dt.timedelta(minutes=m + 1),
                    finished_at=now - dt.timedelta(minutes=m),
                    status="success",
                )
                for s in SOURCES
                for m in range(0, 2000, 15)
            ],
        )
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    return n_records, n_cases


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: page cache, plan cache
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--db-url", help="PostgreSQL URL (a scratch schema is created and dropped); default SQLite"
    )
    args = ap.parse_args()

    schema = None
    tmp = tempfile.TemporaryDirectory()
    if args.db_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.db_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.db_url else "?"
        url = f"{args.db_url}{sep}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = create_store_engine(url)
    try:
        migrate(engine)
        t0 = time.perf_counter()
        n_records, n_cases = fill(engine, args.records)
        fill_s = time.perf_counter() - t0
        s = settings()

        def baseline() -> object:
            with read_connection(engine) as conn:
                return conn.execute(
                    select(cases.c.reception_source, cases.c.field_code, func.count()).group_by(
                        cases.c.reception_source, cases.c.field_code
                    )
                ).all()

        def counting() -> object:
            with read_connection(engine) as conn:
                return count_cells(conn, PERIOD)

        def report() -> object:
            return build_report(engine, s, PERIOD, now=_utc(LAST_DAY, 7))

        def report_out() -> object:
            listed = build_report(engine, s, PERIOD, now=_utc(LAST_DAY, 7), with_dossiers=True).dossiers or ()
            return build_dossier_xlsx(listed, PERIOD), build_dossier_csv(listed)

        t_base = timed(baseline, args.repeat)
        t_count = timed(counting, args.repeat)
        t_report = timed(report, args.repeat)
        t_out = timed(report_out, args.repeat)
        r = build_report(engine, s, PERIOD, now=_utc(LAST_DAY, 7))
        db = engine.dialect.name
        print(f"store: {n_records:,} records, {n_cases:,} cases ({db}); filled in {fill_s:.1f} s")
        print(
            f"period {PERIOD.label}: received {r.total.received_total:,}, "
            f"resolved {r.total.resolved_total:,}, in progress {r.total.in_progress_total:,}, "
            f"bypassed {len(r.bypassed):,}, "
            f"identity {'holds' if r.identity_holds else 'FAILS'}"
        )
        print()
        print(f"| {db} | records | cases | median s | x baseline |")
        print("|---|---:|---:|---:|---:|")
        for name, t in (
            ("baseline: one GROUP BY over cases", t_base),
            ("counting statement", t_count),
            ("build_report (everything the email shows)", t_report),
            (f"build_report with the dossier list, and its .xlsx and .csv ({r.total.received_total:,} rows)",
             t_out),
        ):
            print(f"| {name} | {n_records:,} | {n_cases:,} | {t:.3f} | {t / t_base:.2f} |")
    finally:
        engine.dispose()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
