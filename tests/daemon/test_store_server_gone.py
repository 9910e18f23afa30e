"""The store's PostgreSQL server restarted or gone: a sync fails its own run in one line, a lock
whose session died is let go quietly, and the daemon waits for the server rather than giving up.

The server is the real one; only a session of this test's own is terminated.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from sync_agent.config import load_settings, parse_settings
from sync_agent.daemon import DAEMON_LOCK, Daemon, _may_pass
from sync_agent.errors import machine_failure
from sync_agent.locks import StoreLock, try_lock
from sync_agent.store.engine import create_store_engine, migrate
from sync_agent.sync import sync_source


def test_a_lock_whose_session_the_server_ended_is_let_go_without_an_error(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    lock = try_lock(engine, "sync-one_stop")
    assert lock is not None
    end_the_session_of(lock, engine)  # a server restart, or an operator's pg_terminate_backend
    lock.release()  # the sync it guarded succeeded: its end must not fail for the lost session
    again = try_lock(engine, "sync-one_stop")
    assert again is not None
    again.release()
    engine.dispose()


def test_a_store_whose_server_is_down_fails_the_sync_in_one_line_and_raises_nothing(tmp_path: Path) -> None:
    down = "postgresql+psycopg://postgres@127.0.0.1:9/test"  # nothing listens on port 9
    settings = parse_settings(
        {"agent": {"ward_code": "11311", "ward_name": "Phường Thạch Khôi", "id_hash_key": "k",
                   "database_url": down},
         "connectors": {"one_stop": {"type": "one_stop", "base_url": "http://127.0.0.1:9",
                                     "username": "u", "password": "p"}}},
        base_dir=tmp_path)
    engine = create_store_engine(down)
    result = sync_source(engine, settings, "one_stop")
    engine.dispose()
    assert result.failed and result.error is not None
    assert result.error.startswith("OperationalError: ") and "\n" not in result.error


@pytest.mark.parametrize("error", [psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
                                   psycopg.errors.CannotConnectNow("the database system is starting up")],
                         ids=["restart", "starting-up"])
def test_a_server_restarting_is_the_machines_failure_and_worth_a_retry(error: Exception) -> None:
    exc = OperationalError("SELECT 1", {}, error)
    assert machine_failure(exc) and _may_pass(exc)


def test_an_agent_error_is_neither() -> None:
    exc = OperationalError("SELECT 1", {}, sqlite3.OperationalError('near "SELEC": syntax error'))
    assert not machine_failure(exc) and not _may_pass(exc)


def end_the_session_of(lock: StoreLock, engine: Engine) -> None:
    """What a server restart does to a lock: its session ends, and the lock with it. The backend
    ends a moment after it is told to: wait for it, or the lock may still be held."""
    import time

    pid = lock._conn.execute(text("SELECT pg_backend_pid()")).scalar()  # type: ignore[union-attr]
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()
        deadline = time.monotonic() + 30
        while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar():
            assert time.monotonic() < deadline, f"backend {pid} did not end"
            conn.commit()  # a new snapshot of pg_stat_activity
            time.sleep(0.01)


def taken_by_another_process(engine: Engine, name: str) -> StoreLock:
    """``name`` taken on ``engine``, its session naming another process (as another daemon's would)."""
    lock = try_lock(engine, name)
    assert lock is not None and lock._conn is not None
    lock._conn.execute(text("SELECT set_config('application_name', 'sync-agent pid 1 on another-host', false)"))
    lock._conn.commit()
    return lock


def test_a_lock_lost_with_its_session_is_taken_again_when_free(pg_url: str) -> None:
    engine, other = create_store_engine(pg_url), create_store_engine(pg_url)
    lock = try_lock(engine, "daemon")
    assert lock is not None
    end_the_session_of(lock, other)
    assert lock.still_held()  # taken again on a new session
    assert try_lock(other, "daemon") is None  # and so refused to another process
    lock.release()
    engine.dispose()
    other.dispose()


def test_a_lock_lost_with_its_session_and_taken_by_another_is_no_longer_held(pg_url: str) -> None:
    engine, other = create_store_engine(pg_url), create_store_engine(pg_url)
    lock = try_lock(engine, "daemon")
    assert lock is not None
    end_the_session_of(lock, other)
    taker = taken_by_another_process(other, "daemon")  # a second daemon started meanwhile
    assert not lock.still_held()
    lock.release()
    taker.release()
    engine.dispose()
    other.dispose()


def daemon_holding_its_store(pg_url: str, write_config: Callable[..., Path]) -> tuple[Daemon, Engine, Engine]:
    """A daemon on PostgreSQL holding the store's lock, its engine, and another process's."""
    settings = load_settings(write_config(db_url=pg_url))
    engine, other = create_store_engine(pg_url), create_store_engine(pg_url)
    migrate(engine)
    first = Daemon(settings, engine)
    first.acquire_lock()
    return first, engine, other


def test_a_daemon_whose_store_another_daemon_took_stops_with_status_1(
        pg_url: str, write_config: Callable[..., Path]) -> None:
    first, engine, other = daemon_holding_its_store(pg_url, write_config)
    assert first._lock is not None
    end_the_session_of(first._lock, other)
    second = taken_by_another_process(other, DAEMON_LOCK)  # the second daemon's start
    with structlog.testing.capture_logs() as logs:
        first.check_lock()
    assert first.stop.is_set() and [e["event"] for e in logs if e["log_level"] == "error"] == ["daemon_lock_lost"]
    assert first.shutdown() == 1
    second.release()
    engine.dispose()
    other.dispose()


def test_a_sync_whose_lock_another_sync_took_after_a_restart_stops_at_the_next_page(
        pg_url: str, tmp_path: Path) -> None:
    import datetime as dt
    import os
    from collections.abc import Iterator

    from connectors.base import Connector, ConnectorContext, build_connector
    from connectors.wardsim import SimClock, SimServer, generate
    from sync_agent.config import ConnectorSettings
    from sync_agent.model import Page
    from sync_agent.store.engine import read_connection
    from sync_agent.sync import LOCK_LOST
    from tests.conformance.suite import NOW, SPECS, TZ_NAME

    engine, other = create_store_engine(pg_url), create_store_engine(pg_url)
    migrate(engine)
    taken: list[StoreLock] = []

    def restart_after_the_first_page(cs: ConnectorSettings, ctx: ConnectorContext) -> Connector:
        connector = build_connector(cs, ctx)
        original = connector.fetch

        def fetch(since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
            for n, page in enumerate(original(since, until)):
                if n == 1:  # the server restarts; a sync by hand takes the source meanwhile
                    with other.connect() as conn:
                        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE application_name LIKE :me"), {"me": f"sync-agent pid {os.getpid()} %"})
                        conn.commit()
                    taken.append(taken_by_another_process(other, "sync-one_stop"))
                yield page
        connector.fetch = fetch  # type: ignore[method-assign]
        return connector

    with SimServer("one_stop", clock=SimClock(NOW), seed=3) as sim:
        sim.load_dataset(generate(17, 30, NOW, only="one_stop"))
        settings = parse_settings(
            {"agent": {"ward_code": "11311", "ward_name": "Phường Thạch Khôi", "timezone": TZ_NAME,
                       "id_hash_key": "k", "database_url": pg_url},
             "connectors": {"one_stop": {"type": "one_stop", "base_url": sim.url, "page_size": 10,
                                         **SPECS["one_stop"].options}}},
            base_dir=tmp_path)
        result = sync_source(engine, settings, "one_stop", connector_factory=restart_after_the_first_page)
    assert result.failed and result.error == LOCK_LOST
    with read_connection(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM dossiers")).scalar() == 10  # the first page, committed
        assert conn.execute(text("SELECT status FROM sync_runs")).scalar() == "failed"
    for lock in taken:
        lock.release()
    engine.dispose()
    other.dispose()


class CutOff:
    """A lock's connection as a network blip leaves it: dead to us, alive at the server, where
    its session still holds the lock (a half-open link cannot be made here without a proxy)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def execute(self, *_args: Any) -> Any:
        raise OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly"),
                               connection_invalidated=True)

    def invalidate(self) -> None:
        pass  # the client's end only: the server's session lives on

    def close(self) -> None:
        pass


def test_a_lone_daemon_cut_off_from_its_session_by_a_blip_ends_that_session_and_keeps_the_store(
        pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    lock = try_lock(engine, DAEMON_LOCK)
    assert lock is not None
    stale = lock._conn
    lock._conn = CutOff(stale)  # type: ignore[assignment]
    assert lock.still_held()  # not "another daemon took it": the holder named this process
    other = create_store_engine(pg_url)
    assert try_lock(other, DAEMON_LOCK) is None
    lock.release()
    again = try_lock(other, DAEMON_LOCK)
    assert again is not None
    again.release()
    with contextlib.suppress(Exception):
        stale.close()  # type: ignore[union-attr]
    engine.dispose()
    other.dispose()


def test_a_statement_failing_on_the_locks_live_session_does_not_let_the_lock_go(pg_url: str) -> None:
    engine, other = create_store_engine(pg_url), create_store_engine(pg_url)
    lock = try_lock(engine, DAEMON_LOCK)
    assert lock is not None and lock._conn is not None
    lock._conn.execute(text("SET statement_timeout = 1"))
    lock._conn.commit()
    real_execute = lock._conn.execute
    lock._conn.execute = lambda *_a: real_execute(text("SELECT pg_sleep(1)"))  # type: ignore[method-assign]
    assert lock.still_held()  # a timeout (57014) is the statement's, not the session's end
    lock._conn.execute = real_execute  # type: ignore[method-assign]
    assert try_lock(other, DAEMON_LOCK) is None
    lock.release()
    assert try_lock(other, DAEMON_LOCK) is not None  # released for good, not stacked in the pool
    engine.dispose()
    other.dispose()


@pytest.mark.parametrize("message", ['connection failed: FATAL:  too many connections for role "ward"',
                                     "connection failed: FATAL:  sorry, too many clients already"])
def test_a_server_refusing_more_connections_is_the_machines_failure_and_worth_a_retry(message: str) -> None:
    exc = OperationalError("SELECT 1", {}, psycopg.OperationalError(message))  # at login: no SQLSTATE
    assert machine_failure(exc) and _may_pass(exc)


def test_a_protocol_violation_is_the_agents_fault() -> None:
    exc = OperationalError("SELECT 1", {}, psycopg.errors.ProtocolViolation("invalid message format"))
    assert not machine_failure(exc)


def test_every_postgresql_session_notices_a_dead_link_in_seconds(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    with engine.connect() as conn:
        given = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    engine.dispose()
    assert (given["connect_timeout"], given["keepalives_idle"], given["tcp_user_timeout"]) == ("10", "30", "20000")


def test_a_login_refused_while_the_server_starts_up_is_worth_a_retry() -> None:
    # as psycopg raises it at login: no SQLSTATE, not an invalidated connection
    exc = OperationalError("SELECT 1", {}, psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system '
        "is starting up"))
    assert machine_failure(exc) and _may_pass(exc)


def test_a_waiting_daemon_takes_its_lock_again_soon_after_the_server_ended_its_session(
        pg_url: str, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from sync_agent import daemon as daemon_module

    monkeypatch.setattr(daemon_module, "LOCK_CHECK_EVERY", 0.2)
    first, engine, other = daemon_holding_its_store(pg_url, write_config)
    assert first._lock is not None
    with structlog.testing.capture_logs() as logs:
        waiting = threading.Thread(target=first.wait)
        waiting.start()
        end_the_session_of(first._lock, other)  # the server restarted while the daemon waited
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e["event"] == "lock_taken_again" for e in logs):
            time.sleep(0.1)
        first.stop.set()
        waiting.join()
    assert any(e["event"] == "lock_taken_again" for e in logs)
    assert try_lock(other, DAEMON_LOCK) is None  # held by the daemon again: a second one cannot start
    assert first.shutdown() == 0
    engine.dispose()
    other.dispose()


def test_a_lock_check_waiting_for_an_unreachable_server_does_not_hold_up_a_stop(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The check blocks up to its connect and TCP timeouts (~30 s) while the server cannot be
    reached: the main thread must still stop on a signal at once."""
    import threading

    from sync_agent import daemon as daemon_module

    monkeypatch.setattr(daemon_module, "LOCK_CHECK_EVERY", 0.1)
    settings = load_settings(write_config())
    engine = create_store_engine(settings.agent.database_url)
    migrate(engine)
    d = Daemon(settings, engine)
    checking, server_back = threading.Event(), threading.Event()

    def blocked_check() -> None:
        checking.set()
        server_back.wait(30)
    monkeypatch.setattr(d, "check_lock", blocked_check)
    waiting = threading.Thread(target=d.wait)
    waiting.start()
    assert checking.wait(10)
    d.request_stop()  # SIGTERM's handler
    waiting.join(5)
    stopped_waiting = not waiting.is_alive()
    server_back.set()
    assert stopped_waiting
    assert d.shutdown() == 0
    engine.dispose()


def test_a_lock_check_counts_as_running_before_its_thread_starts(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A shutdown in between would find nothing running and release the lock under the check."""
    import threading

    from sync_agent import daemon as daemon_module

    started: list[threading.Thread] = []

    class NotYet(threading.Thread):
        def start(self) -> None:  # the thread is slow to be scheduled
            started.append(self)

    monkeypatch.setattr(daemon_module.threading, "Thread", NotYet)
    settings = load_settings(write_config())
    engine = create_store_engine(settings.agent.database_url)
    d = Daemon(settings, engine)
    d._check_lock_aside()
    assert daemon_module.LOCK_CHECK_JOB in d._running and len(started) == 1
    started[0].run()  # it runs at last, and is done
    assert daemon_module.LOCK_CHECK_JOB not in d._running
    engine.dispose()
