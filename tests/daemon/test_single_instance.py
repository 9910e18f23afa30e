"""One daemon per store, on SQLite (file lock) and PostgreSQL (advisory lock)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from sync_agent.config import load_settings
from sync_agent.daemon import Daemon
from sync_agent.errors import AlreadyRunning
from sync_agent.locks import LockHolder, is_held, lock_path, process_identity, try_lock
from sync_agent.status import daemon_state
from sync_agent.store.engine import create_store_engine, migrate


def test_a_second_daemon_on_the_same_store_is_refused(db_url: str, write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(db_url=db_url))
    first_engine, second_engine = create_store_engine(db_url), create_store_engine(db_url)
    migrate(first_engine)
    first, second = Daemon(settings, first_engine), Daemon(settings, second_engine)
    first.acquire_lock()
    try:
        with pytest.raises(AlreadyRunning, match=r"another sync-agent daemon .*is already running on this"):
            second.acquire_lock()
    finally:
        first.release_lock()
    second.acquire_lock()  # released: the next one may start
    second.release_lock()
    first_engine.dispose()
    second_engine.dispose()


def test_the_refusal_and_status_name_the_running_daemon_s_pid_and_host(
        db_url: str, write_config: Callable[..., Path]) -> None:
    """On PostgreSQL the daemon may run on another machine than the one asking."""
    settings = load_settings(write_config(db_url=db_url))
    first_engine, second_engine = create_store_engine(db_url), create_store_engine(db_url)
    migrate(first_engine)
    first, second = Daemon(settings, first_engine), Daemon(settings, second_engine)
    assert daemon_state(second_engine) == (False, None)
    first.acquire_lock()
    try:
        here = f"pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(AlreadyRunning, match=re.escape(f"another sync-agent daemon ({here}) is already")):
            second.acquire_lock()
        running, holder = daemon_state(second_engine)
        assert running and holder == LockHolder(pid=os.getpid(), host=socket.gethostname())
    finally:
        first.release_lock()
    assert daemon_state(second_engine) == (False, None)
    first_engine.dispose()
    second_engine.dispose()


def test_is_held_tells_a_held_lock_without_taking_it(db_url: str) -> None:
    engine = create_store_engine(db_url)
    lock = try_lock(engine, "sync-one_stop")
    assert lock is not None
    try:
        assert is_held(engine, "sync-one_stop") and not is_held(engine, "sync-civil_status")
        assert try_lock(engine, "sync-one_stop") is None  # asking took nothing from the holder
    finally:
        lock.release()
    assert not is_held(engine, "sync-one_stop")
    engine.dispose()


def test_a_lock_file_naming_a_dead_process_is_not_held(tmp_path: Path) -> None:
    """A process killed while holding a SQLite lock leaves its pid in the file."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    path = lock_path(engine, "sync-one_stop")
    assert path is not None
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that was alive and is gone
    path.write_text(f"{child.pid} {socket.gethostname()}\n", encoding="utf-8")
    assert not is_held(engine, "sync-one_stop")
    path.write_text(f"{os.getpid()} {socket.gethostname()}\n", encoding="utf-8")
    assert is_held(engine, "sync-one_stop")  # as the file says; a live holder keeps it so
    engine.dispose()


def test_a_lock_whose_file_cannot_be_written_is_still_taken_and_released(tmp_path: Path) -> None:
    """A full disk refuses the holder's name; the lock (an flock) holds all the same, and the
    work it guards fails with the disk's own error instead. The process here may not grow a
    file at all (``RLIMIT_FSIZE``), as on a full disk."""
    script = textwrap.dedent(f'''
        import resource, signal
        from sync_agent.locks import try_lock
        from sync_agent.store.engine import create_store_engine
        engine = create_store_engine("sqlite:///{tmp_path / 'store.db'}")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        lock = try_lock(engine, "sync-one_stop")
        assert lock is not None
        assert try_lock(engine, "sync-one_stop") is None  # held
        lock.release()
        again = try_lock(engine, "sync-one_stop")
        assert again is not None
        again.release()
        print("released")
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "released"


def test_a_lock_file_naming_a_number_now_used_by_another_process_is_not_held(tmp_path: Path) -> None:
    """After a kill or a power cut, the dead holder's number may be given to another process."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    path = lock_path(engine, "sync-one_stop")
    assert path is not None
    me = process_identity(os.getpid())
    assert me is not None  # Linux
    boot, started = me.split(":")
    path.write_text(f"{os.getpid()} {socket.gethostname()} {boot}:{int(started) - 1}\n", encoding="utf-8")
    assert not is_held(engine, "sync-one_stop")
    path.write_text(f"{os.getpid()} {socket.gethostname()} {me}\n", encoding="utf-8")
    assert is_held(engine, "sync-one_stop")
    lock = try_lock(engine, "sync-two")  # what a holder writes names it exactly
    assert lock is not None
    with lock:
        assert is_held(engine, "sync-two")
    engine.dispose()


def test_is_held_decides_from_one_read_of_the_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file may change between two reads (released, taken by another): what it said at one
    instant is the answer. Here it names a reused number, then is emptied by a release."""
    import sync_agent.locks as locks_module

    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    path = lock_path(engine, "sync-one_stop")
    assert path is not None
    path.write_text("", encoding="utf-8")
    contents = iter([[str(os.getpid()), socket.gethostname(), "another-boot:1"], []])
    monkeypatch.setattr(locks_module, "_lock_file_words", lambda _path: next(contents, []))
    assert not is_held(engine, "sync-one_stop")
    engine.dispose()


def test_status_tells_a_daemon_runs_without_taking_its_lock(
        db_url: str, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon starting at the instant status held the lock would refuse, as if another ran."""
    import sync_agent.locks as locks_module
    import sync_agent.status as status_module

    engine = create_store_engine(db_url)
    migrate(engine)

    def taken(*_args: object) -> None:
        raise AssertionError("status took a lock to look at it")

    monkeypatch.setattr(locks_module, "try_lock", taken)
    monkeypatch.setattr(status_module, "try_lock", taken, raising=False)
    assert daemon_state(engine) == (False, None)
    engine.dispose()
