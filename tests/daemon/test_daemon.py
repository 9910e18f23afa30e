"""``sync-agent run`` in a subprocess against the simulators (host clock in UTC).

Syncs happen on schedule; SIGTERM during a sync exits 0 within 10 s with every page whole;
SIGTERM while a retry sleeps on ``Retry-After`` still exits 0 within 10 s; a second daemon on
the same store is refused; a daemon killed with SIGKILL restarts without help.
"""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from connectors.wardsim import SimServer, generate, start_simulators, stop_simulators
from sync_agent.config import load_settings
from sync_agent.store.engine import open_engine, read_connection
from sync_agent.store.tables import cases, dossiers, sync_runs
from sync_agent.sync import sync_source
from tests.daemon.proc import DaemonProc, start_daemon, write_sim_config

pytestmark = pytest.mark.slow
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
SOURCES = ("one_stop", "civil_status", "residence", "household_business")
SHUTDOWN_LIMIT = 10.0


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    dataset = generate(5, 1500, dt.datetime.now(ICT).replace(microsecond=0))
    servers = start_simulators(dataset)
    try:
        yield servers
    finally:
        stop_simulators(servers)


@pytest.fixture
def servers(sims: dict[str, SimServer]) -> Iterator[dict[str, SimServer]]:
    for s in sims.values():
        s.faults.reset()
        s.clear_requests()
    yield sims
    for s in sims.values():
        s.faults.reset()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProc]]:
    started: list[DaemonProc] = []
    yield started
    for d in started:
        d.kill()


def runs(engine: Engine, source: str | None = None) -> list[Any]:
    q = select(sync_runs).order_by(sync_runs.c.id)
    if source:
        q = q.where(sync_runs.c.source == source)
    with read_connection(engine) as conn:
        return list(conn.execute(q).all())


def stored(engine: Engine, source: str) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(dossiers)
                                .where(dossiers.c.source == source)).scalar_one())


def assert_runs_match_rows(engine: Engine, source: str) -> None:
    """Every committed page is whole: the run counters add up to the stored rows."""
    rs = runs(engine, source)
    assert stored(engine, source) == sum(r.inserted for r in rs)
    for r in rs:
        assert r.fetched == r.inserted + r.updated + r.unchanged + r.quarantined


def test_syncs_run_on_schedule_and_sigterm_stops_cleanly(tmp_path: Path, servers: dict[str, SimServer],
                                                         daemons: list[DaemonProc]) -> None:
    config = write_sim_config(tmp_path, servers)
    d = start_daemon(config, every_seconds=2)
    daemons.append(d)
    started = d.event("daemon_started")
    assert started["timezone"] == "Asia/Ho_Chi_Minh"
    jobs = {j["id"]: j for j in started["jobs"]}
    assert set(jobs) == {*(f"sync:{s}" for s in SOURCES), "reconcile"}
    assert all(j["next_run"].endswith("+07:00") for j in jobs.values())

    def three_each(evs: list[dict[str, Any]]) -> bool:
        done = [e["source"] for e in evs
                if e.get("event") == "sync_finished" and e.get("status") == "success"]
        return all(done.count(s) >= 3 for s in SOURCES)

    d.wait_for(three_each, 40, "three scheduled syncs of every source")
    # reconciliation follows the syncs that brought records
    engine = open_engine(load_settings(config).agent.database_url)

    def reconciled(evs: list[dict[str, Any]]) -> bool:
        if not any(e.get("event") == "reconcile_finished" for e in evs):
            return False
        with read_connection(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(cases)).scalar_one()) > 0

    d.wait_for(reconciled, 20, "a reconciliation")
    rc, seconds = d.signal_and_wait(signal.SIGTERM)
    assert rc == 0 and seconds < SHUTDOWN_LIMIT
    names = [e.get("event") for e in d.events()]
    assert "shutdown_requested" in names and "daemon_stopped" in names
    assert not [e for e in d.events() if e.get("event") in ("job_failed", "job_missed")]
    for source in SOURCES:
        rs = [r for r in runs(engine, source) if r.status == "success"]
        assert len(rs) >= 3
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(rs)]
        assert all(1.0 <= g <= 8.0 for g in gaps), gaps  # every 2 s, give or take a busy machine
        assert_runs_match_rows(engine, source)
    # every line carries the job; sync lines carry their run and source
    for e in d.events():
        if e.get("event") in ("sync_started", "sync_finished"):
            assert e["job"] == f"sync:{e['source']}" and isinstance(e["run_id"], int)


def test_sigterm_during_a_sync_stops_at_a_page_boundary(tmp_path: Path, servers: dict[str, SimServer],
                                                        daemons: list[DaemonProc]) -> None:
    servers["one_stop"].faults.set_latency(0.2, "data")
    config = write_sim_config(tmp_path, servers, per_source={"one_stop": "page_size = 20"})
    engine = open_engine(load_settings(config).agent.database_url)
    d = start_daemon(config, every_seconds=600)
    daemons.append(d)

    def pages_done() -> int:
        rs = [r for r in runs(engine, "one_stop") if r.status == "running"]
        return rs[0].pages if rs else 0

    deadline = time.monotonic() + 30
    while pages_done() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pages_done() >= 3
    rc, seconds = d.signal_and_wait(signal.SIGTERM)
    assert rc == 0 and seconds < SHUTDOWN_LIMIT
    assert "shutdown_budget_exceeded" not in [e.get("event") for e in d.events()]
    [run] = runs(engine, "one_stop")
    assert run.status == "interrupted" and run.error == "stopped on request at a page boundary"
    assert 3 <= run.pages < 60
    assert stored(engine, "one_stop") == run.inserted == run.pages * 20 - run.unchanged - run.updated
    assert_runs_match_rows(engine, "one_stop")

    # a restart resumes from the committed cursor and ends with everything
    servers["one_stop"].faults.reset()
    again = start_daemon(config, every_seconds=600, tag="2")
    daemons.append(again)
    again.wait_for(lambda evs: any(e.get("event") == "sync_finished" and e.get("source") == "one_stop"
                                   for e in evs if e.get("run_id", 0) > run.id), 30, "the resumed sync")
    assert again.signal_and_wait()[0] == 0
    assert runs(engine, "one_stop")[-1].status == "success"
    assert_runs_match_rows(engine, "one_stop")
    settings = load_settings(config)
    check = sync_source(engine, settings, "one_stop")
    assert check.ok and check.inserted == 0 and check.updated == 0  # nothing was lost


def test_sigterm_while_a_retry_sleeps_on_retry_after(tmp_path: Path, servers: dict[str, SimServer],
                                                     daemons: list[DaemonProc]) -> None:
    servers["residence"].faults.throttle_next(1, retry_after=90)
    config = write_sim_config(tmp_path, servers, per_source={
        "residence": "max_attempts = 3\nretry_after_cap = 120\nrequest_deadline = 300"})
    d = start_daemon(config, every_seconds=600)
    daemons.append(d)
    deadline = time.monotonic() + 30
    while not any(r.status == 429 for r in servers["residence"].requests) and time.monotonic() < deadline:
        assert d.proc.poll() is None, d.stderr()
        time.sleep(0.05)
    time.sleep(0.3)  # the connector is now asleep for 90 s
    rc, seconds = d.signal_and_wait(signal.SIGTERM)
    assert rc == 0 and seconds < SHUTDOWN_LIMIT
    exceeded = next(e for e in d.events() if e.get("event") == "shutdown_budget_exceeded")
    assert exceeded["still_running"] == ["sync:residence"]
    # the abandoned run is marked at the next sync of the source, which then works
    engine = open_engine(load_settings(config).agent.database_url)
    assert runs(engine, "residence")[-1].status == "running"
    assert sync_source(engine, load_settings(config), "residence").ok
    assert [r.status for r in runs(engine, "residence")] == ["interrupted", "success"]
    assert_runs_match_rows(engine, "residence")


def test_a_second_daemon_is_refused_and_a_killed_one_restarts(tmp_path: Path, servers: dict[str, SimServer],
                                                              daemons: list[DaemonProc]) -> None:
    servers["one_stop"].faults.set_latency(0.2, "data")
    config = write_sim_config(tmp_path, servers, per_source={"one_stop": "page_size = 20"})
    engine = open_engine(load_settings(config).agent.database_url)
    first = start_daemon(config, every_seconds=600)
    daemons.append(first)
    first.event("daemon_started")

    second = start_daemon(config, every_seconds=600, tag="second")
    daemons.append(second)
    assert second.proc.wait(timeout=30) == 1
    assert "another sync-agent daemon (pid " in second.stderr()
    assert "is already running on this store" in second.stderr()
    assert first.proc.poll() is None

    # kill -9 in the middle of a sync: no cleanup happens, and none is needed
    deadline = time.monotonic() + 30
    while not any(r.pages >= 2 for r in runs(engine, "one_stop")) and time.monotonic() < deadline:
        time.sleep(0.05)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert runs(engine, "one_stop")[-1].status == "running"
    servers["one_stop"].faults.reset()

    third = start_daemon(config, every_seconds=600, tag="third")
    daemons.append(third)
    third.wait_for(lambda evs: sum(1 for e in evs if e.get("event") == "daemon_started") >= 2, 30,
                   "the restarted daemon")
    third.wait_for(lambda evs: any(e.get("event") == "sync_finished" and e.get("source") == "one_stop"
                                   and e.get("status") == "success" for e in evs), 30, "its sync")
    assert third.signal_and_wait()[0] == 0
    statuses = [r.status for r in runs(engine, "one_stop")]
    assert statuses == ["interrupted", "success"]
    assert_runs_match_rows(engine, "one_stop")
