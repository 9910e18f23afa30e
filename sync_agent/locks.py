"""Named locks on the store that die with their process.

Two agents scheduling the same store would sync, reconcile and email twice. A lock that
outlives a killed process would need a human to clear it, so only OS-level file locks (SQLite)
and session-level advisory locks (PostgreSQL) are used: both vanish with the process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

from sqlalchemy import Connection, Engine, text

from sync_agent.errors import AlreadyRunning

_process_locks: dict[str, threading.Lock] = {}
_process_guard = threading.Lock()


class StoreLock:
    """A held lock; ``release()`` (or leaving the ``with`` block) frees it."""

    def __init__(self, name: str, file: IO[str] | None = None, conn: Connection | None = None,
                 key: int | None = None, local: threading.Lock | None = None) -> None:
        self.name = name
        self._file = file
        self._conn = conn
        self._key = key
        self._local = local

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            finally:
                self._conn.close()
                self._conn = None
        if self._local is not None:
            self._local.release()
            self._local = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"sync-agent:{name}".encode()).digest()[:8], "big", signed=True)


def lock_path(engine: Engine, name: str) -> Path | None:
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:":
        return None
    return Path(f"{db}.{name}.lock")


def try_lock(engine: Engine, name: str) -> StoreLock | None:
    """Take the lock ``name`` on this store now, or return ``None`` if someone holds it."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        key = _advisory_key(name)
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            conn.close()
            return None
        return StoreLock(name, conn=conn, key=key)
    path = lock_path(engine, name)
    if path is None:  # in-memory database: only this process can see it
        with _process_guard:
            local = _process_locks.setdefault(name, threading.Lock())
        return StoreLock(name, local=local) if local.acquire(blocking=False) else None
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open while locked
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return StoreLock(name, file=f)


def acquire_or_fail(engine: Engine, name: str, what: str) -> StoreLock:
    lock = try_lock(engine, name)
    if lock is None:
        raise AlreadyRunning(f"{what} is already running on this store (lock {name!r} is held)")
    return lock
