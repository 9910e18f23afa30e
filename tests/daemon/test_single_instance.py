"""One daemon per store, on SQLite (file lock) and PostgreSQL (advisory lock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync_agent.config import load_settings
from sync_agent.daemon import Daemon
from sync_agent.errors import AlreadyRunning
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
