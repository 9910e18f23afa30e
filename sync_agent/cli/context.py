"""What every command needs, loaded once and only when asked for."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from sync_agent import logging as agent_logging
from sync_agent.config import Settings, load_settings, resolve_config_path, secret_values
from sync_agent.errors import UsageError
from sync_agent.store.engine import open_engine, refuse_root_on_service_file


class AgentContext:
    """Settings, logging and the store, opened lazily so ``--help`` needs no configuration."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = resolve_config_path(config_path)
        self._logging_done = False

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def setup_logging(self, stderr_level: str = "WARNING", stderr_json: bool | None = None) -> None:
        if self._logging_done:
            return
        agent = self.settings.agent
        if agent.log_file is not None:
            refuse_root_on_service_file(agent.log_file, "agent.log_file", "the log")
        agent_logging.configure(level=agent.log_level, log_file=agent.log_file,
                                stderr_level=stderr_level, stderr_json=stderr_json)
        agent_logging.mask_values(secret_values(self.settings))
        self._logging_done = True

    @cached_property
    def engine(self) -> Engine:
        self.setup_logging()
        return open_engine(self.settings.agent.database_url)

    def close(self) -> None:
        """Close the store's pooled connections, if it was opened (on SQLite the last one to
        close folds the write-ahead log back into the database file)."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.dispose()


def output_folder(path: Path, option: str = "--out") -> Path:
    """``path`` made (with its parents) and writable, or ``UsageError`` naming ``option``: asked
    before any work, so a mistyped folder costs one line, not a report computed for nothing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: Permission denied")
    return path


def configured(settings: Settings, source: str) -> bool:
    """Whether ``source`` is a configured source, enabled or not."""
    return any(c.name == source for c in settings.connectors)


def unknown_source(settings: Settings, source: str) -> UsageError:
    """The error for a ``--source`` neither configured nor ever seen: most likely mistyped (a
    source removed from the configuration keeps its history, and shows it)."""
    names = ", ".join(c.name for c in settings.connectors)
    return UsageError(f"unknown source {source}; configured: {names}")
