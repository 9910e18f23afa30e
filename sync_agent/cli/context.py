"""What every command needs, loaded once and only when asked for."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine

from sync_agent import logging as agent_logging
from sync_agent.config import Settings, load_settings, resolve_config_path
from sync_agent.store.engine import open_engine


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
        agent_logging.configure(level=agent.log_level, log_file=agent.log_file,
                                stderr_level=stderr_level, stderr_json=stderr_json)
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
