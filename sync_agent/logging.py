"""One logging pipeline for the agent, its libraries and the stdlib.

Every event becomes one JSON line in the log file, with ``run_id`` and ``source`` bound by the
sync loop through contextvars, so an operator chasing a wrong figure can follow one run with
``sync-agent logs --run N``. Secrets and anything shaped like a citizen's ID number are redacted
before any renderer sees the event.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from sync_agent.privacy import redact_text

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api_?key|authorization|session|cookie", re.I)
REDACTED = "[redacted]"


def redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and ID-shaped numbers in every value."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value not in (None, ""):
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = redact_text(value)
        elif isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) in (9, 12):
            event[key] = redact_text(str(value))
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=False),
        structlog.processors.format_exc_info,
        redact_event,
    ]


def configure(
    level: str = "INFO",
    log_file: Path | None = None,
    stderr_level: str = "WARNING",
    stderr_json: bool | None = None,
) -> None:
    """Route structlog and stdlib logging to the JSON file and to stderr.

    ``stderr_json`` None means: console rendering on a terminal, JSON lines otherwise (a
    container's log collector wants JSON).
    """
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(ensure_ascii=False)],
    )
    use_json = (not sys.stderr.isatty()) if stderr_json is None else stderr_json
    console_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(ensure_ascii=False) if use_json
                    else structlog.dev.ConsoleRenderer(colors=False)],
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(min(logging.getLevelName(level), logging.getLevelName(stderr_level)))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(stderr_level)
    err.setFormatter(console_formatter)
    root.addHandler(err)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        fh.setLevel(level)
        fh.setFormatter(json_formatter)
        root.addHandler(fh)
    for noisy in ("urllib3", "alembic", "apscheduler", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING)
                                          if noisy != "apscheduler" else logging.getLevelName(level))
    logging.captureWarnings(True)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
