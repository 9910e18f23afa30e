"""Benchmark: sync of N one_stop dossiers from the simulator into SQLite, against a baseline.

The agent runs as a whole process (`sync-agent sync one_stop` on a fresh SQLite file); the
baseline is a hand-written standard-library loop doing the same work: log in, page through the
same window with the same page size, parse JSON and upsert every page into sqlite3 with
``INSERT ... ON CONFLICT DO UPDATE`` in one transaction per page (WAL, ``synchronous=FULL``).
Both read from one simulator process started once per size, one after the other, so they share
the machine fairly; with ``--repeat`` they alternate and the medians are reported.

    .venv/bin/python bench/sync.py                     # 10k, 100k, 1M
    .venv/bin/python bench/sync.py --sizes 10000 100000 --repeat 3

Reports throughput (records/s), the ratio agent/baseline, each process's CPU time (user + system)
and peak RSS, and the simulator's CPU time while it served each side (the two cores are shared by
the simulator and the side being measured: the baseline waits for each page, so its time is about
its CPU plus the simulator's, while the agent reads ahead, so its time is about its own CPU as
long as that is the larger). The `sync` command also reconciles the store once the sources are synced; its own
line says how long that took, and the table shows it apart (``reconcile s``) together with the
ratio of the process without it (``sync only``), and the agent's peak RSS both when the sync
ended (read from /proc as the source's line is printed) and for the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PAGE_SIZE = 1000
USER, PASSWORD = "tiepnhan", "matkhau-tiepnhan"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(records: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "connectors.wardsim", "serve", "--sources", "one_stop", "--only", "one_stop",
         "--records", str(records), "--seed", "7", "--port-base", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "simulator died") from None
            time.sleep(0.5)
    raise RuntimeError("simulator did not start")


def run_measured(cmd: list[str], env: dict[str, str] | None = None,
                 mark: str | None = None) -> tuple[float, float, int, str, int]:
    """Wall seconds, CPU seconds (user + system), peak RSS in MB (of the child alone, from wait4),
    its output, and its peak RSS in MB when it printed a line starting with ``mark`` (else 0)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    lines, rss_at_mark = [], 0
    for raw in proc.stdout:
        line = raw.decode()
        lines.append(line)
        if mark and not rss_at_mark and line.startswith(mark):
            rss_at_mark = peak_rss_mb(proc.pid)
    out = "".join(lines)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{out}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out, rss_at_mark


def cpu_seconds(pid: int) -> float:
    """A running process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> int:
    """A running process's peak RSS so far (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) // 1024 if m else 0


BASELINE = textwrap.dedent('''
    import json, sqlite3, sys, urllib.request
    url, db_path, page_size, user, password = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    def post(path, body):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    session = post("/dangnhap", {"username": user, "password": password})["session"]
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE d (ma TEXT PRIMARY KEY, tthc TEXT, trang_thai TEXT, cap_nhat TEXT, raw TEXT)")
    page, n = 1, 0
    while True:
        body = post("/dichvu", {"session": session, "madonvi": "11311", "service": "LayDanhSachHoSo",
                                "TuNgay": "19700101000000", "DenNgay": "20991231000000",
                                "TrangSo": page, "SoBanGhi": page_size})
        data = body["data"]
        if not data:
            break
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO d VALUES (?,?,?,?,?) ON CONFLICT(ma) DO UPDATE SET tthc=excluded.tthc, "
            "trang_thai=excluded.trang_thai, cap_nhat=excluded.cap_nhat, raw=excluded.raw",
            [(h["MaHoSo"], h["MaTTHC"], h["TrangThaiHoSo"], h["NgayCapNhat"], json.dumps(h)) for h in data])
        db.execute("COMMIT")
        n += len(data)
        page += 1
    print(n)
''')


def agent_config(tmp: Path, url: str) -> Path:
    cfg = tmp / "bench.toml"
    cfg.write_text(textwrap.dedent(f'''
        [agent]
        ward_code = "11311"
        ward_name = "Phường Thạch Khôi"
        database_url = "sqlite:///{tmp}/agent.db"
        id_hash_key = "bench-key"
        log_file = "{tmp}/agent.jsonl"

        [connectors.one_stop]
        type = "one_stop"
        base_url = "{url}"
        username = "{USER}"
        password = "{PASSWORD}"
        page_size = {PAGE_SIZE}
    '''), encoding="utf-8")
    return cfg


def stored(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def reconcile_seconds(out: str) -> float:
    """The reconciliation's own time, from the line ``sync`` prints for it (0 if none)."""
    m = re.search(r"^reconcile\b.*\((\d+(?:\.\d+)?)s\)\s*$", out, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def bench_size(records: int, repeat: int) -> dict[str, float]:
    sim, url = start_simulator(records)
    runs: dict[str, list[float]] = {k: [] for k in (
        "baseline_s", "baseline_cpu", "baseline_rss", "agent_s", "agent_cpu", "agent_rss", "agent_sync_rss",
        "reconcile_s", "sim_cpu_baseline", "sim_cpu_agent")}
    try:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                sim_0 = cpu_seconds(sim.pid)
                base_s, base_cpu, base_rss, _, _ = run_measured(
                    [PY, "-c", BASELINE, url, str(tmp / "baseline.db"), str(PAGE_SIZE), USER, PASSWORD])
                sim_1 = cpu_seconds(sim.pid)
                base_n = stored(tmp / "baseline.db", "d")
                cfg = agent_config(tmp, url)
                # unbuffered, so the source's line arrives when the sync ends, before reconciliation
                env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1"}
                agent_s, agent_cpu, agent_rss, out, sync_rss = run_measured(
                    [str(Path(PY).with_name("sync-agent")), "--config", str(cfg), "sync", "one_stop"], env,
                    mark="one_stop ")
                sim_2 = cpu_seconds(sim.pid)
                agent_n = stored(tmp / "agent.db", "dossiers")
                if agent_n != base_n or base_n != records:
                    raise RuntimeError(f"agent stored {agent_n} records, baseline {base_n}:\n{out}")
            for key, value in (("baseline_s", base_s), ("baseline_cpu", base_cpu), ("baseline_rss", base_rss),
                               ("agent_s", agent_s), ("agent_cpu", agent_cpu), ("agent_rss", agent_rss),
                               ("agent_sync_rss", sync_rss),
                               ("reconcile_s", reconcile_seconds(out)),
                               ("sim_cpu_baseline", sim_1 - sim_0), ("sim_cpu_agent", sim_2 - sim_1)):
                runs[key].append(value)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=60)
    row: dict[str, float] = {"records": records, "repeat": repeat}
    for key, values in runs.items():
        row[key] = max(values) if key.endswith("_rss") else statistics.median(values)
    row["baseline_rps"] = records / row["baseline_s"]
    row["agent_rps"] = records / row["agent_s"]
    row["sync_only_s"] = statistics.median(a - r for a, r in zip(runs["agent_s"], runs["reconcile_s"], strict=True))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side per size (medians reported)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    rows = [bench_size(n, args.repeat) for n in args.sizes]
    print("| records | baseline s | agent s | agent/baseline | of which reconcile s "
          "| sync only: agent/baseline | baseline rec/s | agent rec/s | baseline CPU s | agent CPU s "
          "| simulator CPU s: serving baseline / agent "
          "| baseline peak RSS MB | agent peak RSS MB: end of sync / whole run |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['records']:,} | {r['baseline_s']:.1f} | {r['agent_s']:.1f} "
              f"| {r['agent_rps'] / r['baseline_rps']:.2f} | {r['reconcile_s']:.1f} "
              f"| {r['baseline_s'] / r['sync_only_s']:.2f} | {r['baseline_rps']:,.0f} | {r['agent_rps']:,.0f} "
              f"| {r['baseline_cpu']:.1f} | {r['agent_cpu']:.1f} "
              f"| {r['sim_cpu_baseline']:.1f} / {r['sim_cpu_agent']:.1f} "
              f"| {r['baseline_rss']:.0f} | {r['agent_sync_rss']:.0f} / {r['agent_rss']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
