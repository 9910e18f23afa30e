"""Benchmark: reconciliation of a million records on SQLite, against a baseline in the same run.

The store is generated directly (bulk inserts into ``dossiers``, on the schema the migrations
create), with a realistic mix: about 37 % ``one_stop`` records; most ministry records cite a
one-stop code, a few percent are code-less but belong to a one-stop record (inferred), about one
case in seven is a household-business dossier that bypassed reception, and one in two hundred
cites a code no one-stop record has.

Measured, in one process, on one SQLite file, with the agent's own engine settings (WAL,
``synchronous=FULL``):

- **baseline**: one SQL anti-join of ministry records to one-stop codes over the same tables
  (the query someone would write to find unknown codes), every row fetched; median of 3;
- **full (first)**: ``reconcile(full=True)`` on the freshly loaded store: every record gets its
  case, every case and flag is written;
- **full (again)**: ``reconcile(full=True)`` once more: everything recomputed, nothing differs;
- **incremental**: 1,000 records change at their sources (status, end time, update time, as a
  sync writes them, queued in ``reconcile_queue``), then ``reconcile()``;
- two **floors**, what any full run on this schema has to do at the least, measured last so they
  disturb nothing: *read*, one pass grouping every record by its case key (the linking rules by
  code, nothing else); *write*, the finished ``case_links`` and ``cases`` rows copied into the
  emptied tables, their indexes built afterwards, and committed (what a first run writes, with
  nothing to compute).

    .venv/bin/python bench/reconcile.py                  # 1,000,000 records
    .venv/bin/python bench/reconcile.py --records 100000 --changed 1000

Prints a markdown table; the goal is full within 5x the baseline and incremental under 2 % of
the full run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
from sqlalchemy import text  # noqa: E402

from sync_agent.reconcile import ReconcileResult, reconcile  # noqa: E402
from sync_agent.store.engine import create_store_engine, migrate, read_connection  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 2, 15, 8, 0, tzinfo=TZ)
START = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)

COLUMNS = ("source", "source_id", "reception_code", "procedure_code", "procedure_name", "field_code",
           "field_name", "applicant_name", "applicant_key", "channel", "status", "submitted_at",
           "received_at", "due_at", "completed_at", "received_on", "due_on", "ended_on", "digitised",
           "data_reused", "fee_required", "paid_online", "source_updated_at", "raw_payload", "content_hash",
           "first_seen_at", "last_seen_at")
MINISTRIES = ("civil_status", "residence", "household_business")
PROCEDURES = {"civil_status": ("1.001193", "1.000894", "2.000635"), "residence": ("1.004194", "1.004222"),
              "household_business": ("2.000720", "2.001624")}
NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Văn Em")

BASELINE = """
    SELECT m.id, m.source, m.source_id, m.reception_code FROM dossiers m
    WHERE m.source <> 'one_stop' AND m.reception_code IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM dossiers o WHERE o.reception_code = m.reception_code
                                                 AND o.source || '' = 'one_stop')
"""
# ``|| ''``: without statistics SQLite would look the one-stop side up through the (source, ...)
# index, which is quadratic; the baseline gets the plan a careful person would force.


class Clock:
    """Seconds since START, rendered as SQLAlchemy stores instants (UTC) and local dates on SQLite."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def _day(self, n: int) -> str:
        got = self._days.get(n)
        if got is None:
            got = self._days[n] = (START + dt.timedelta(days=n)).strftime("%Y-%m-%d")
        return got

    def at(self, sec: int) -> str:
        day, rest = divmod(sec, 86400)
        h, rest = divmod(rest, 3600)
        m, s = divmod(rest, 60)
        return f"{self._day(day)} {h:02d}:{m:02d}:{s:02d}.000000"

    def local_day(self, sec: int) -> str:
        return self._day((sec + 7 * 3600) // 86400)  # Asia/Ho_Chi_Minh is UTC+7 all year


def _row(rng: random.Random, clock: Clock, source: str, sid: str, code: str | None, proc: str, akey: str,
         received: int, status: str, updated: int, seen: int) -> tuple[object, ...]:
    due = received + 5 * 86400
    ended = received + rng.randrange(3600, 4 * 86400) if status in ("resolved", "delivered") else None
    raw = (f'{{"MaHoSo":"{sid}","TenThuTuc":"Thủ tục {proc}","ChuHoSo":"{NAMES[received % 5]}","DiaChi":"Số '
           f'{received % 997} đường Lê Lợi, phường Thạch Khôi","TrangThai":"{status}","ThanhPhanHoSo":[{{"Ten":'
           f'"Tờ khai","SoHoa":true}},{{"Ten":"Giấy tờ tùy thân","SoHoa":true}}],"GhiChu":"{"x" * 150}"}}')
    return (source, sid, code, proc, f"Thủ tục {proc}", f"F{proc[0]}", "Lĩnh vực", NAMES[received % 5], akey,
            "online", status, clock.at(received - 600), clock.at(received), clock.at(due),
            clock.at(ended) if ended else None, clock.local_day(received), clock.local_day(due),
            clock.local_day(ended) if ended else None, 1, 1, received % 3 == 0, received % 3 == 0,
            clock.at(updated), raw, f"{rng.getrandbits(128):032x}", clock.at(seen), clock.at(seen))


def generate(path: Path, records: int, seed: int = 7) -> dict[str, int]:
    """A migrated store at ``path`` holding about ``records`` dossier records; counts per source."""
    engine = create_store_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    rng = random.Random(seed)
    clock = Clock()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dossiers' "
                          "AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:  # load first, index after: minutes become seconds
        con.execute(f"DROP INDEX {name}")
    # A first sync stores one source after the other: the rows go in source by source, so the
    # records of one case lie far apart in the table, as they do in a real store.
    con.execute(f"CREATE TEMP TABLE stage ({', '.join(COLUMNS)})")
    insert = f"INSERT INTO stage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    span = 365 * 86400
    counts: dict[str, int] = {}
    batch: list[tuple[object, ...]] = []
    total = i = 0
    while total < records:
        i += 1
        received = rng.randrange(span)
        updated = received + rng.randrange(6 * 86400)
        seen = updated + rng.randrange(3600)
        akey = f"{rng.getrandbits(64):016x}"
        src = MINISTRIES[rng.randrange(3)]
        proc = PROCEDURES[src][rng.randrange(len(PROCEDURES[src]))]
        status = ("in_progress", "resolved", "delivered", "resolved")[rng.randrange(4)]
        code = f"000.00.11.H01-{i:09d}"
        r = rng.random()
        rows = []
        if r < 0.75:  # received at the Centre; the ministry records cite its code
            rows.append(_row(rng, clock, "one_stop", code, code, proc, akey, received, status, updated, seen))
            rows.append(_row(rng, clock, src, f"{src[:2]}{i}", code, proc, akey, received + 60, status,
                             updated + 5, seen + 5))
            others = [s for s in MINISTRIES if s != src]
            for other, p in zip(others, (0.6, 0.1), strict=True):  # inter-agency procedures (liên thông)
                if rng.random() < p:
                    rows.append(_row(rng, clock, other, f"{other[:2]}{i}", code, proc, akey, received + 90,
                                     status, updated, seen + 9))
        elif r < 0.80:  # only in one_stop
            rows.append(_row(rng, clock, "one_stop", code, code, proc, akey, received, status, updated, seen))
        elif r < 0.85:  # the ministry record cites no code but belongs to the one_stop record
            rows.append(_row(rng, clock, "one_stop", code, code, proc, akey, received, status, updated, seen))
            rows.append(_row(rng, clock, src, f"{src[:2]}{i}", None, proc, akey,
                             received + rng.randrange(86400), status, updated + 7, seen + 7))
        elif r < 0.995:  # household business filed online: bypassed reception
            rows.append(_row(rng, clock, "household_business", f"hb{i}", None, "2.000720", akey, received, status,
                             updated, seen))
        else:  # cites a code no one_stop record has
            rows.append(_row(rng, clock, src, f"{src[:2]}{i}", f"000.00.11.H99-{i:09d}", proc, akey, received,
                             status, updated, seen))
        for row in rows:
            counts[str(row[0])] = counts.get(str(row[0]), 0) + 1
        batch.extend(rows)
        total += len(rows)
        if len(batch) >= 50_000:
            con.executemany(insert, batch)
            batch.clear()
    if batch:
        con.executemany(insert, batch)
    con.execute(f"INSERT INTO dossiers ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM stage "
                "ORDER BY source <> 'one_stop', source, rowid")
    con.execute("DROP TABLE stage")
    con.execute("INSERT INTO reconcile_queue (dossier_id) SELECT id FROM dossiers")  # as a sync queues them
    for _, sql in indexes:
        con.execute(sql)
    con.execute("COMMIT")
    con.close()
    return counts


def change(path: Path, n: int, seed: int = 11) -> None:
    """``n`` records change at their sources, as a sync writes them (status, end, update time, mark)."""
    rng = random.Random(seed)
    con = sqlite3.connect(path, isolation_level=None)
    top = con.execute("SELECT MAX(id) FROM dossiers").fetchone()[0]
    ids = rng.sample(range(1, top + 1), n)
    con.execute("BEGIN")
    con.executemany("""
        UPDATE dossiers SET status = CASE WHEN status = 'in_progress' THEN 'resolved' ELSE 'in_progress' END,
               completed_at = CASE WHEN status = 'in_progress' THEN received_at END,
               ended_on = CASE WHEN status = 'in_progress' THEN received_on END,
               source_updated_at = ?, last_seen_at = ?
        WHERE id = ?""", [("2026-02-15 00:30:00.000000", "2026-02-15 00:30:00.000000", i) for i in ids])
    con.executemany("INSERT INTO reconcile_queue (dossier_id) VALUES (?) ON CONFLICT DO NOTHING", [(i,) for i in ids])
    con.execute("COMMIT")
    con.close()


def timed_reconcile(path: Path, full: bool, now: dt.datetime) -> tuple[float, ReconcileResult]:
    engine = create_store_engine(f"sqlite:///{path}")
    try:
        started = time.perf_counter()
        result = reconcile(engine, TZ, full=full, now=now)
        return time.perf_counter() - started, result
    finally:
        engine.dispose()


def baseline(path: Path) -> tuple[float, int]:
    engine = create_store_engine(f"sqlite:///{path}")
    times = []
    try:
        for _ in range(3):
            with read_connection(engine) as conn:
                started = time.perf_counter()
                rows = conn.execute(text(BASELINE)).all()
                times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return statistics.median(times), len(rows)


READ_FLOOR = """
    SELECT COUNT(*) FROM (
        SELECT CASE WHEN source = 'one_stop' THEN 'rc:' || COALESCE(reception_code, source_id)
                    WHEN reception_code IS NOT NULL THEN 'rc:' || reception_code
                    ELSE 'src:' || source || ':' || source_id END AS case_key, COUNT(*)
        FROM dossiers GROUP BY 1)
"""


def floors(path: Path) -> tuple[float, float]:
    """Seconds of the read floor and the write floor (see the module docstring), on the store as
    the runs left it; the tables' rows and indexes are as before afterwards."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        started = time.perf_counter()
        con.execute(READ_FLOOR).fetchall()
        read = time.perf_counter() - started
        tables = ("case_links", "cases")
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN {tables}").fetchall()
        con.execute("BEGIN IMMEDIATE")
        for table in tables:
            con.execute(f"CREATE TABLE bench_{table} AS SELECT * FROM {table}")
            con.execute(f"DELETE FROM {table}")
        for name, _ in indexes:
            con.execute(f"DROP INDEX {name}")
        con.execute("COMMIT")
        started = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO case_links SELECT * FROM bench_case_links ORDER BY dossier_id")
        con.execute("INSERT INTO cases SELECT * FROM bench_cases ORDER BY id")
        for _, sql in indexes:
            con.execute(sql)
        con.execute("COMMIT")
        write = time.perf_counter() - started
        for table in tables:
            con.execute(f"DROP TABLE bench_{table}")
        return read, write
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the SQLite file (default: a temp dir)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings only

    work = Path(tempfile.mkdtemp(prefix="bench-reconcile-", dir=args.dir))
    path = work / "store.db"
    try:
        started = time.perf_counter()
        counts = generate(path, args.records)
        print(f"generated {sum(counts.values()):,} records in {time.perf_counter() - started:.1f}s: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())), flush=True)
        base, unknown = baseline(path)
        print(f"baseline anti-join: {base:.2f}s ({unknown:,} ministry records cite an unknown code)", flush=True)
        first, r1 = timed_reconcile(path, True, NOW)
        print(f"full (first): {first:.2f}s  {r1}", flush=True)
        again, r2 = timed_reconcile(path, True, NOW)
        print(f"full (again): {again:.2f}s  {r2}", flush=True)
        change(path, args.changed)
        incr, r3 = timed_reconcile(path, False, NOW + dt.timedelta(minutes=15))
        print(f"incremental: {incr:.3f}s  {r3}", flush=True)
        read_floor, write_floor = floors(path)
        print(f"floors: read {read_floor:.2f}s, write {write_floor:.2f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def yes(met: bool) -> str:
        return "yes" if met else "**no**"

    def row(name: str, secs: float, vs: str, goal: str, met: str = "") -> str:
        return f"| {name} | {secs:.3f} | {vs} | {goal} | {met} |"

    print()
    print(f"{sum(counts.values()):,} records, {r1.cases_total:,} cases, SQLite, {args.changed:,} changed records")
    print()
    print("| run | seconds | compared | goal | met |")
    print("|---|---:|---|---|---|")
    print(row("baseline: anti-join ministry → one-stop codes", base, "1x", "-"))
    print(row(f"full, first ({r1.cases_total:,} cases, {r1.flags_raised:,} flags raised)", first,
              f"{first / base:.1f}x baseline", "≤ 5x baseline", yes(first <= 5 * base)))
    print(row("full, again (nothing differs)", again, f"{again / base:.1f}x baseline", "≤ 5x baseline",
              yes(again <= 5 * base)))
    print(row(f"incremental ({args.changed:,} changed, {r3.cases_touched:,} cases)", incr,
              f"{100 * incr / first:.2f} % of full (first), {100 * incr / again:.2f} % of full (again)",
              "< 2 % of full", f"first: {yes(incr < 0.02 * first)}, again: {yes(incr < 0.02 * again)}"))
    print(row("floor, read: every record's case key, grouped", read_floor, f"{read_floor / base:.1f}x baseline", "-"))
    print(row(f"floor, write: the first run's {r1.records_claimed:,} links and {r1.cases_total:,} cases, "
              "indexed, committed", write_floor, f"{write_floor / base:.1f}x baseline", "-"))


if __name__ == "__main__":
    main()
