"""A sync killed with SIGKILL at random instants, then re-run, ends with exactly a clean run's rows."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from connectors.wardsim import DEFAULT_CREDENTIALS, SimClock, SimServer, generate
from tests.conformance.suite import NOW

RECORDS = 2_000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer("one_stop", clock=SimClock(NOW), seed=5)
    server.load_dataset(generate(23, RECORDS, NOW, only="one_stop"))
    server.faults.set_latency(0.02, "data")  # ~2 s per run: room to kill it mid-page
    with server:
        yield server


def config(tmp: Path, name: str, url: str) -> Path:
    creds = DEFAULT_CREDENTIALS["one_stop"]
    path = tmp / f"{name}.toml"
    path.write_text(textwrap.dedent(f'''
        [agent]
        ward_code = "11311"
        ward_name = "Phường Thạch Khôi"
        database_url = "sqlite:///{name}.db"
        id_hash_key = "kill-test-key"
        log_file = "{name}.jsonl"

        [connectors.one_stop]
        type = "one_stop"
        base_url = "{url}"
        username = "{creds.username}"
        password = "{creds.password}"
        page_size = 25
    '''), encoding="utf-8")
    return path


def sync_cmd(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "sync_agent", "--config", str(cfg), "sync", "one_stop"]


def rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT source_id, content_hash FROM dossiers").fetchall())


def last_run_id(db: Path) -> int:
    """Read only: creating the file first would give the store another mode than the agent's."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM sync_runs").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created or migrated yet


def started_run(db: Path, proc: subprocess.Popen[bytes], after: int, within: float = 30.0) -> None:
    """Wait until ``proc`` has recorded its run (a run id past ``after``), or has ended."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None and last_run_id(db) <= after:
        time.sleep(0.02)


def test_sigkill_at_random_instants_then_rerun_gives_the_clean_rows(sim: SimServer, tmp_path: Path) -> None:
    env = {**os.environ}
    clean_cfg = config(tmp_path, "clean", sim.url)
    subprocess.run(sync_cmd(clean_cfg), check=True, env=env, capture_output=True, timeout=120)
    clean = rows(tmp_path / "clean.db")
    assert len(clean) == RECORDS

    cfg = config(tmp_path, "killed", sim.url)
    rng = random.Random(20260215)
    kills = 0
    for i in range(6):
        before = last_run_id(tmp_path / "killed.db")
        proc = subprocess.Popen(sync_cmd(cfg), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 2:
            time.sleep(rng.uniform(0.3, 1.5))  # any instant, start-up included
        else:
            # an instant of the run itself: start-up takes seconds on a loaded machine
            started_run(tmp_path / "killed.db", proc, before)
            time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 3, "the runs finished before they could be killed; slow the simulator down"
    final = subprocess.run(sync_cmd(cfg), env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert rows(tmp_path / "killed.db") == clean
    with sqlite3.connect(tmp_path / "killed.db") as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM sync_runs ORDER BY id")]
    assert statuses[-1] == "success"
    # a process killed before it recorded its run leaves none; every other one is marked interrupted
    assert statuses[:-1] and set(statuses[:-1]) == {"interrupted"}
