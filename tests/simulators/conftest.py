"""Fixtures: one scenario-heavy ward data set, served by all four simulators on loopback.

The servers' clock is pinned at the data set's ``now`` so every answer is reproducible; a test
that changes faults, the clock or the data gets its own server or restores what it changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from connectors.wardsim import (
    Rates,
    SimClock,
    SimServer,
    WardDataset,
    generate,
    start_simulators,
    stop_simulators,
)
from connectors.wardsim.dataset import TZ

NOW = dt.datetime(2026, 2, 15, 8, 30, tzinfo=TZ)
SEED = 11
SIZE = 1500


@pytest.fixture(scope="session")
def dataset() -> WardDataset:
    return generate(SEED, SIZE, NOW, rates=Rates.scenario_heavy())


@pytest.fixture(scope="session")
def sims(dataset: WardDataset) -> Iterator[dict[str, SimServer]]:
    servers = start_simulators(dataset, clock=SimClock(NOW))
    try:
        yield servers
    finally:
        stop_simulators(servers)


@pytest.fixture
def servers(sims: dict[str, SimServer]) -> Iterator[dict[str, SimServer]]:
    """The shared servers, with faults, log and sessions cleared before and after the test."""
    for s in sims.values():
        s.faults.reset()
        s.clear_requests()
        s.clock.set(NOW)
    yield sims
    for s in sims.values():
        s.faults.reset()
        s.expire_sessions()
        s.clock.set(NOW)
