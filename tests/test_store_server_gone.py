"""The store's PostgreSQL server restarted or gone: a sync fails its own run in one line, a lock
whose session died is let go quietly, and the daemon waits for the server rather than giving up.

The server is the real one; only a session of this test's own is terminated.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from sync_agent.config import parse_settings
from sync_agent.daemon import _may_pass
from sync_agent.errors import machine_failure
from sync_agent.locks import try_lock
from sync_agent.store.engine import create_store_engine
from sync_agent.sync import sync_source


def test_a_lock_whose_session_the_server_ended_is_let_go_without_an_error(pg_url: str) -> None:
    engine = create_store_engine(pg_url)
    lock = try_lock(engine, "sync-one_stop")
    assert lock is not None
    with engine.connect() as conn:  # a server restart, or an operator's pg_terminate_backend
        pid = lock._conn.execute(text("SELECT pg_backend_pid()")).scalar()  # type: ignore[union-attr]
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()
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
