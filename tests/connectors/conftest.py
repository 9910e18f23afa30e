"""Fixtures for the connector tests: a ward context, settings, an HTTP client that never sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import ConnectorContext
from connectors.http import HttpClient
from sync_agent.config import ConnectorSettings
from sync_agent.privacy import IdHasher

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WARD = "11311"


class FakeClock:
    """Monotonic seconds that move only when the code under test sleeps (or the test says)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def context() -> ConnectorContext:
    return ConnectorContext(ward_code=WARD, timezone=TZ, hasher=IdHasher("test-key"))


def make_settings(base_url: str = "http://127.0.0.1:9", **overrides: Any) -> ConnectorSettings:
    values: dict[str, Any] = {
        "name": "src",
        "type": "x",
        "base_url": base_url,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "request_deadline": 30.0,
        "max_attempts": 4,
        "retry_after_cap": 60.0,
    }
    values.update(overrides)
    return ConnectorSettings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client_for(clock: FakeClock) -> Iterator[Callable[..., HttpClient]]:
    """An ``HttpClient`` whose sleeps are recorded on ``clock`` instead of waited."""
    made: list[HttpClient] = []

    def build(settings: ConnectorSettings, **kwargs: Any) -> HttpClient:
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rng", random.Random(7))
        client = HttpClient(settings, **kwargs)
        made.append(client)
        return client

    yield build
    for c in made:
        c.close()
