"""A source's times without an offset are read in the source's zone (sources.md: Vietnam's),
whatever clock the ward keeps (``agent.timezone``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.wardsim import SimServer
from sync_agent.config import parse_settings
from sync_agent.errors import ConfigError
from sync_agent.store.engine import create_store_engine, migrate, read_connection
from sync_agent.store.tables import dossiers
from sync_agent.sync import sync_source
from tests import test_sync_errors
from tests.conformance.suite import SPECS

sim = test_sync_errors.sim  # the same one_stop simulator, 30 dossiers


def synced(sim: SimServer, tmp_path: Path, agent_zone: str, **source: Any) -> set[tuple[Any, ...]]:
    """Every stored record's id and instants after one sync with the ward's clock in ``agent_zone``."""
    folder = tmp_path / agent_zone.replace("/", "_")
    folder.mkdir()
    settings = parse_settings(
        {"agent": {"ward_code": "11311", "ward_name": "Phường Thạch Khôi", "timezone": agent_zone,
                   "id_hash_key": "test-key", "database_url": "sqlite:///store.db"},
         "connectors": {"one_stop": {"type": "one_stop", "base_url": sim.url, **SPECS["one_stop"].options,
                                     **source}}},
        base_dir=folder)
    engine = create_store_engine(settings.agent.database_url)
    migrate(engine)
    assert sync_source(engine, settings, "one_stop").ok
    d = dossiers.c
    with read_connection(engine) as conn:
        rows = {tuple(r) for r in conn.execute(select(d.source_id, d.submitted_at, d.received_at, d.due_at,
                                                      d.completed_at, d.source_updated_at))}
    engine.dispose()
    return rows


def test_a_ward_keeping_its_clock_in_utc_stores_the_same_instants(sim: SimServer, tmp_path: Path) -> None:
    in_vietnam = synced(sim, tmp_path, "Asia/Ho_Chi_Minh")
    assert len(in_vietnam) == 30
    assert synced(sim, tmp_path, "UTC") == in_vietnam


def test_a_source_in_another_zone_is_read_in_it(sim: SimServer, tmp_path: Path) -> None:
    in_vietnam = synced(sim, tmp_path, "Asia/Ho_Chi_Minh")
    # the same wall-clock times read as Bangkok's (also UTC+7) are the same instants; as UTC's, 7 hours later
    assert synced(sim, tmp_path, "Asia/Bangkok", timezone="Asia/Bangkok") == in_vietnam
    later = {(r[0], *(t and t + dt.timedelta(hours=7) for t in r[1:])) for r in in_vietnam}
    assert synced(sim, tmp_path, "UTC", timezone="UTC") == later


def test_an_unknown_source_zone_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(
            {"agent": {"ward_code": "11311", "ward_name": "P", "id_hash_key": "k"},
             "connectors": {"one_stop": {"type": "one_stop", "base_url": "http://127.0.0.1:9", "username": "u",
                                         "password": "p", "timezone": "Asia/Hanoi"}}},
            base_dir=tmp_path)
    assert err.value.key == "connectors.one_stop.timezone" and "Asia/Hanoi" in str(err.value)
