"""A disk that refuses to grow: every command says so in one line, and leaves nothing half-made.

The limit is real: the command runs in a process whose files may not grow past a size
(``RLIMIT_FSIZE``), so every write past it fails as on a full disk (SQLite: "disk I/O error",
a file: "File too large").
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sync_agent.store.engine import open_engine, write_transaction
from sync_agent.store.records import save_records
from tests.daemon.conftest import config_text
from tests.test_store import NOW, TZ, rec


def files_limited_to(size: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def agent(config: Path, *args: str, limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sync_agent", "--config", str(config), *args], text=True,
                          capture_output=True, timeout=120, preexec_fn=files_limited_to(limit))


def store_with_records(tmp_path: Path, n: int) -> Path:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_engine(url)
    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec(f"H31.11311-260201-{i:04d}", updated_hour=8) for i in range(n)],
                     TZ, None, NOW)
    engine.dispose()
    config = tmp_path / "sync-agent.toml"
    config.write_text(config_text(url, {"one_stop": "http://127.0.0.1:9"}, log_file=""), encoding="utf-8")
    return config


def test_a_store_that_cannot_grow_fails_a_command_in_one_line(tmp_path: Path) -> None:
    config = store_with_records(tmp_path, 3000)
    done = agent(config, "reconcile", "--full", limit=256 * 1024)  # the rebuild writes more than that
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "failed: OperationalError: disk I/O error"
    assert "Traceback" not in done.stderr


def test_a_report_that_cannot_be_written_whole_leaves_no_file(tmp_path: Path) -> None:
    config = store_with_records(tmp_path, 10)
    out = tmp_path / "reports"
    done = agent(config, "report", "--period", "2026-02", "--out", str(out), limit=40_000)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "failed: OSError: [Errno 27] File too large"
    assert "Traceback" not in done.stderr
    # nothing that looks like a finished report without its email or dossier list, no .tmp file
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_store_whose_disk_is_full_at_start_is_said_so_not_called_a_configuration_error(tmp_path: Path) -> None:
    config = store_with_records(tmp_path, 10)
    done = agent(config, "status", limit=4096)  # SQLite cannot even make its 32 KB shared-memory file
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("failed: cannot open the store sqlite:///") and "(is its disk full or failing?)" in line


def test_only_the_drivers_first_line_tells_the_machines_failure() -> None:
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError

    from sync_agent.errors import disk_full, machine_failure

    row = IntegrityError("INSERT ...", {}, sqlite3.IntegrityError(
        'null value in column "status"\n'
        'DETAIL:  Failing row contains (H31, "connection refused", no space left on device)'))
    assert not machine_failure(row) and not disk_full(row)  # a source's words in the row, an agent's fault
    full = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
    assert machine_failure(full) and disk_full(full)
