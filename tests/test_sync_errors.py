"""How a sync fails: with one error line an operator can read, holding no record's data, and
never by raising, even when the store itself refuses to record the run (a full disk).

A run's error is shown by ``runs`` and ``status`` and goes into the report's email; the log
keeps the traceback. SQLAlchemy's message of a database error carries the statement and every
parameter of the page (applicants' names, payloads) on further lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, event, func, select

from connectors.base import Connector, ConnectorContext, build_connector
from connectors.wardsim import SimClock, SimServer, generate
from sync_agent.config import ConnectorSettings, Settings, parse_settings
from sync_agent.model import Page
from sync_agent.store import runs as run_store
from sync_agent.store.engine import read_connection
from sync_agent.store.tables import dossiers, sync_runs
from sync_agent.sync import sync_source
from tests.conformance.suite import NOW, SPECS, TZ_NAME


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer("one_stop", clock=SimClock(NOW), seed=3)
    server.load_dataset(generate(17, 30, NOW, only="one_stop"))
    with server:
        yield server


@pytest.fixture
def settings(sim: SimServer, tmp_path: Path) -> Settings:
    return parse_settings(
        {"agent": {"ward_code": "11311", "ward_name": "Phường Thạch Khôi", "timezone": TZ_NAME,
                   "id_hash_key": "test-key", "database_url": "sqlite:///unused.db"},
         "connectors": {"one_stop": {"type": "one_stop", "base_url": sim.url, **SPECS["one_stop"].options}}},
        base_dir=tmp_path,
    )


def pages_changed_by(change: Callable[[Page], Page]) -> Callable[[ConnectorSettings, ConnectorContext], Connector]:
    """The real connector, each page it reads passed through ``change`` (a connector's bug)."""
    def make(cs: ConnectorSettings, ctx: ConnectorContext) -> Connector:
        connector = build_connector(cs, ctx)
        original = connector.fetch

        def fetch(since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
            return (change(page) for page in original(since, until))
        connector.fetch = fetch  # type: ignore[method-assign]
        return connector
    return make


def stored_error(engine: Engine) -> str:
    with read_connection(engine) as conn:
        return str(conn.execute(select(sync_runs.c.error)).scalar_one())


def test_a_database_error_is_kept_as_the_drivers_one_line_without_the_pages_values(
        engine: Engine, settings: Settings) -> None:
    def no_procedure_code(page: Page) -> Page:  # the store refuses the page: NOT NULL
        bad: Any = None
        return dataclasses.replace(page, records=tuple(dataclasses.replace(r, procedure_code=bad)
                                                       for r in page.records))
    result = sync_source(engine, settings, "one_stop", connector_factory=pages_changed_by(no_procedure_code))
    assert result.failed
    error = stored_error(engine)
    assert error == result.error
    assert error.startswith("IntegrityError: ") and "procedure_code" in error
    assert "\n" not in error and "[SQL" not in error and "parameters" not in error


def test_an_error_holding_a_nul_is_kept_with_the_nul_as_its_escape(engine: Engine, settings: Settings) -> None:
    def crash(page: Page) -> Page:
        raise RuntimeError("source answered 'H31\x00'")
    result = sync_source(engine, settings, "one_stop", connector_factory=pages_changed_by(crash))
    assert result.failed
    assert stored_error(engine) == "RuntimeError: source answered 'H31\\x00'"


def refusing_writes(engine: Engine) -> threading.Event:
    """Set, the store refuses every write from the next transaction on, as a full disk or a
    database made read-only does (SQLite: ``query_only``; PostgreSQL: read-only transactions)."""
    refuse = threading.Event()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        on = refuse.is_set()
        if engine.dialect.name == "sqlite":
            cur.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")
        else:
            cur.execute(f"SET default_transaction_read_only = {'on' if on else 'off'}")
            dbapi_conn.commit()
        cur.close()
    return refuse


def test_a_store_that_refuses_the_runs_start_fails_the_sync_without_raising(
        engine: Engine, settings: Settings) -> None:
    refuse = refusing_writes(engine)
    refuse.set()
    with structlog.testing.capture_logs() as logs:
        result = sync_source(engine, settings, "one_stop")
    assert result.failed and result.run_id is None
    [said] = [e for e in logs if e["event"] == "sync_not_started"]
    assert "exc_info" not in said  # the machine's failure: one line
    assert result.error is not None and "\n" not in result.error and "readonly" in result.error.replace("-", "")
    refuse.clear()
    assert sync_source(engine, settings, "one_stop").ok


def test_a_store_that_refuses_the_runs_end_fails_the_sync_without_raising_and_the_next_run_goes_on(
        engine: Engine, settings: Settings) -> None:
    refuse = refusing_writes(engine)

    def refuse_once_read(page: Page) -> Page:
        refuse.set()  # from the first page's commit on, nothing is written: the run's end neither
        return page
    with structlog.testing.capture_logs() as logs:
        result = sync_source(engine, settings, "one_stop", connector_factory=pages_changed_by(refuse_once_read))
    assert result.failed
    assert result.error is not None and "its end could not be recorded: " in result.error
    # the machine's failure is said by the run's error line, not by a traceback per source
    assert [e["event"] for e in logs if e.get("exc_info")] == []
    refuse.clear()
    again = sync_source(engine, settings, "one_stop")
    assert again.ok, again.error
    with read_connection(engine) as conn:
        assert conn.execute(select(func.count()).select_from(dossiers)).scalar_one() == 30
        assert conn.execute(select(sync_runs.c.status).order_by(sync_runs.c.id)).scalars().all() == [
            "interrupted", "success"]


def test_an_agent_bug_at_the_runs_start_fails_the_sync_and_keeps_its_traceback(
        engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_args: Any) -> int:
        raise TypeError("an agent bug")
    monkeypatch.setattr(run_store, "interrupt_stale_runs", bug)
    with structlog.testing.capture_logs() as logs:
        result = sync_source(engine, settings, "one_stop")
    assert result.failed and result.error == "TypeError: an agent bug"
    [said] = [e for e in logs if e["event"] == "sync_not_started"]
    assert said["exc_info"] is True  # the log's traceback is what mends it
