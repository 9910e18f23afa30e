"""Named locks on the store that die with their process.

Two agents scheduling the same store would sync, reconcile and email twice. A lock that
outlives a killed process would need a human to clear it, so only OS-level file locks (SQLite)
and session-level advisory locks (PostgreSQL) are used: both vanish with the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from sync_agent.errors import AlreadyRunning, one_line

log = structlog.get_logger("sync_agent.locks")

_process_locks: dict[str, threading.Lock] = {}
_process_guard = threading.Lock()
#: the locks this process holds, by store and name (``holds``)
_held_here: set[tuple[str, str]] = set()
#: how a PostgreSQL session holding a lock names its process (``application_name``, 63 bytes at most)
_PG_HOLDER = re.compile(r"^sync-agent pid (\d+) on (.+)$")


@dataclass(frozen=True)
class LockHolder:
    """The process holding a lock, so that a refusal can say which one to stop. On PostgreSQL it
    may run on another machine than the one asking, hence the host."""

    pid: int
    host: str | None = None

    def __str__(self) -> str:
        return f"pid {self.pid}" + (f" on {self.host}" if self.host else "")


def _this_process() -> LockHolder:
    return LockHolder(os.getpid(), socket.gethostname())


def _session_name() -> str:
    """How a PostgreSQL session holding a lock names this process (``application_name``, 63 bytes)."""
    return f"sync-agent {_this_process()}".encode()[:63].decode("utf-8", "ignore")


class StoreLock:
    """A held lock; ``release()`` (or leaving the ``with`` block) frees it."""

    def __init__(self, name: str, file: IO[str] | None = None, conn: Connection | None = None,
                 key: int | None = None, local: threading.Lock | None = None, store: str = "",
                 engine: Engine | None = None) -> None:
        self.name = name
        self._file = file
        self._conn = conn
        self._key = key
        self._local = local
        self._store = store
        self._engine = engine  # PostgreSQL: to take the lock again on a new session (``still_held``)
        with _process_guard:
            _held_here.add((store, name))

    def still_held(self) -> bool:
        """Whether this process still holds the lock.

        A PostgreSQL advisory lock lives as long as its session, and a server restart or a
        terminated backend ends the session without a word: another daemon could then start on
        the store. When the session is gone the lock is taken again on a new one, unless another
        process took it meanwhile (``False``). A session only cut off from us (a network blip)
        may live on at the server, holding the lock in our name: it is ended, and the lock
        taken anew. While the server cannot be reached, no other process can take the lock
        either: still held. File and in-process locks last as long as the process."""
        if self._engine is None:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except DBAPIError as exc:
                if not exc.connection_invalidated:  # a statement's failure (a timeout): the session lives
                    with contextlib.suppress(DBAPIError):
                        self._conn.rollback()
                    return True
                log.warning("lock_session_lost", lock=self.name, error=one_line(exc))
                _drop(self._conn)
                self._conn = None
        try:
            fresh = try_lock(self._engine, self.name)
            if fresh is None:
                if not _holder_is_this_process(self._engine, self.name):
                    with _process_guard:
                        _held_here.discard((self._store, self.name))
                    return False
                _end_own_stale_session(self._engine, self.name)
                fresh = try_lock(self._engine, self.name)
        except DBAPIError:
            return True
        if fresh is None:  # our own old session, still ending: the next check takes the lock
            return True
        self._conn, fresh._conn = fresh._conn, None  # adopted: ``fresh`` is dropped unreleased
        log.warning("lock_taken_again", lock=self.name)
        return True

    def release(self) -> None:
        with _process_guard:
            _held_here.discard((self._store, self.name))
        if self._file is not None:
            # the file names its holder only while held (``is_held`` reads it)
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), 0)
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.execute(text("RESET application_name"))  # back to the pool unnamed
                self._conn.commit()
            except DBAPIError as exc:
                # the session is gone (a server restart, a terminated backend), and its lock with
                # it: nothing is left to release, and the work the lock guarded is not failed for it.
                # Whatever failed, the session is ended rather than pooled with a lock it may hold.
                log.warning("lock_session_lost", lock=self.name, error=one_line(exc))
                _drop(self._conn)
            else:
                with contextlib.suppress(DBAPIError):
                    self._conn.close()
            finally:
                self._conn = None
        if self._local is not None:
            self._local.release()
            self._local = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _drop(conn: Connection) -> None:
    """End ``conn``'s session for good: back in the pool it would keep a session lock."""
    with contextlib.suppress(DBAPIError):
        conn.invalidate()
    with contextlib.suppress(DBAPIError):
        conn.close()


def _holder_is_this_process(engine: Engine, name: str) -> bool:
    found = holder(engine, name)
    me = _this_process()
    return found is not None and found.pid == me.pid and found.host == me.host


def _end_own_stale_session(engine: Engine, name: str) -> None:
    """End the sessions that hold lock ``name`` in this process's name (see ``still_held``)."""
    key = advisory_key(name) & 0xFFFFFFFFFFFFFFFF
    with engine.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) AND a.application_name = :me "
            "AND a.pid <> pg_backend_pid()"), {"hi": key >> 32, "lo": key & 0xFFFFFFFF, "me": _session_name()})
        conn.commit()
    log.warning("lock_stale_session_ended", lock=name)


def advisory_key(name: str) -> int:
    """The PostgreSQL advisory-lock key (a signed 64-bit integer) of the lock called ``name``."""
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
        key = advisory_key(name)
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            conn.close()
            return None
        # the session names its process, for ``holder`` (pg_locks knows only the server's pid)
        conn.execute(text("SELECT set_config('application_name', :v, false)"), {"v": _session_name()})
        conn.commit()
        return StoreLock(name, conn=conn, key=key, store=_store_id(engine), engine=engine)
    path = lock_path(engine, name)
    if path is None:  # in-memory database: only this process can see it
        with _process_guard:
            local = _process_locks.setdefault(name, threading.Lock())
        return StoreLock(name, local=local, store=_store_id(engine)) if local.acquire(blocking=False) else None
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open while locked
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    me = _this_process()
    try:
        # unbuffered: what a full disk refuses is not kept to be written again at close
        os.ftruncate(f.fileno(), 0)
        line = f"{me.pid} {me.host} {process_identity(me.pid) or '-'}\n".encode()
        if os.write(f.fileno(), line) != len(line):  # a pid cut short would name another process
            os.ftruncate(f.fileno(), 0)
            raise OSError(errno.ENOSPC, "the holder's name was cut short")
    except OSError as exc:
        # held all the same (the flock is what excludes others); only ``is_held`` and ``holder``
        # cannot name this process. A full disk must fail the work with its own error, not here.
        log.warning("lock_holder_not_written", lock=name, error=f"{type(exc).__name__}: {exc}")
    return StoreLock(name, file=f, store=_store_id(engine))


def _store_id(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def holds(engine: Engine, name: str) -> bool:
    """Whether this process holds the lock ``name`` on this store (through any engine)."""
    with _process_guard:
        return (_store_id(engine), name) in _held_here


def process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later one given the same number: this boot's id and the
    process's start time (Linux ``/proc``); ``None`` where it cannot be read."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses; the start time is field 22
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def _pg_holder_name(engine: Engine, name: str) -> str | None:
    """The ``application_name`` of the session holding the advisory lock ``name`` ("" when it
    has none), or ``None`` when no session holds it."""
    key = advisory_key(name) & 0xFFFFFFFFFFFFFFFF
    with engine.connect() as conn:
        # a bigint advisory key shows in pg_locks as its high and low 32 bits, objsubid 1
        row = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).first()
    return None if row is None else (row[0] or "")


def holder(engine: Engine, name: str) -> LockHolder | None:
    """Who holds the lock ``name`` on this store, when it can be told (else ``None``)."""
    if engine.dialect.name == "postgresql":
        m = _PG_HOLDER.match(_pg_holder_name(engine, name) or "")
        return LockHolder(int(m.group(1)), m.group(2)) if m else None
    path = lock_path(engine, name)
    if path is None:
        return None
    return _named_holder(_lock_file_words(path))


def _named_holder(words: list[str]) -> LockHolder | None:
    """The process a lock file's words name, if they name one."""
    if not words or not words[0].isdigit():
        return None
    return LockHolder(int(words[0]), words[1] if len(words) > 1 else None)


def _lock_file_words(path: Path) -> list[str]:
    """pid, host and process identity, as the holder wrote them (empty once released)."""
    try:
        return path.read_text(encoding="utf-8").split()
    except OSError:
        return []


def is_held(engine: Engine, name: str) -> bool:
    """Whether a live process holds the lock ``name`` now, told without trying to take it.

    Taking a lock to test it could make its owner's next try fail (a sync would be skipped), so
    on SQLite this reads the process the lock file names (its holder, until it releases it or
    dies): held when that process is alive on this machine and is the one that wrote it (same
    boot, same start time: after a kill its number may be another process's). A store's SQLite
    file is only ever used from one machine. PostgreSQL's ``pg_locks`` says it exactly.
    """
    if engine.dialect.name == "postgresql":
        return _pg_holder_name(engine, name) is not None
    path = lock_path(engine, name)
    if path is None:
        local = _process_locks.get(name)
        return local is not None and local.locked()
    # one read: the holder may let go (and another take it) between two
    words = _lock_file_words(path)
    last = _named_holder(words)
    if last is None or (last.host is not None and last.host != socket.gethostname()):
        return False
    try:
        os.kill(last.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user
        pass
    # after a kill or a power cut the number may now belong to another process; a file written
    # before the identity was (two words) is taken at its word
    written = words[2] if len(words) > 2 else "-"
    return written == "-" or written == process_identity(last.pid)


def sync_lock_name(source: str) -> str:
    """The lock a sync of ``source`` holds while it runs."""
    return f"sync-{source}"


def acquire_or_fail(engine: Engine, name: str, what: str) -> StoreLock:
    lock = try_lock(engine, name)
    if lock is None:
        raise AlreadyRunning(f"{what} is already running on this store (lock {name!r} is held)")
    return lock
