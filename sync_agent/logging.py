"""One logging pipeline for the agent, its libraries and the stdlib.

Every event becomes one JSON line in the log file, with ``run_id`` and ``source`` bound by the
sync loop through contextvars, so an operator chasing a wrong figure can follow one run with
``sync-agent logs --run N``. Secrets and anything shaped like a citizen's ID number are redacted
before any renderer sees the event.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import structlog

from sync_agent.errors import ConfigError
from sync_agent.privacy import redact_text
from sync_agent.redaction import REDACTED, redact_message, set_configured_secrets

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api_?key|authorization|session|cookie", re.I)
# keys the pipeline itself adds; never rewritten
_PIPELINE_KEYS = frozenset({"timestamp", "level", "logger", "run_id"})


def mask_values(values: Iterable[str]) -> None:
    """Mask these values (the configuration's secrets) wherever a log line, or any message a
    person reads, holds them (``redaction.set_configured_secrets``)."""
    set_configured_secrets(values)


def redact_value(value: Any, key: str = "") -> Any:
    """Mask a secret-named value, and ID-shaped numbers and inline secrets anywhere inside it."""
    if key and _SECRET_KEYS.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_message(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return redact_text(str(value)) if len(str(abs(value))) in (9, 12) else value
    if isinstance(value, dict):
        # a key may be a name that holds a secret too (a webhook's channel: its URL)
        return {(redact_message(k) if isinstance(k, str) else k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys, ID-shaped numbers and inline secrets, nested too."""
    for key, value in list(event.items()):
        if key not in _PIPELINE_KEYS:
            event[key] = redact_value(value, key)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        # aware UTC instants ("...Z"): a host clock in UTC and a ward in UTC+7 read the same
        # line the same way; ``sync-agent logs`` shows them in the ward's time zone
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_event,
    ]


#: apscheduler's executor line for a job that raised: the daemon's ``job_failed`` listener says the
#: same with the job's context and traceback. Its other errors (a job it could not run at all)
#: raise no event, so they stay.
_JOB_RAISED = 'Job "%s" raised an exception'


def _not_a_job_error_twice(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("apscheduler.executors") and record.msg == _JOB_RAISED)


class _LogFile(logging.handlers.WatchedFileHandler):
    """The JSON log file. A write it cannot make (a full disk) is said once on stderr, not as
    Python's traceback for every event, and the next line it can write, in this process or a
    later one, starts a line of its own rather than ending the one the disk cut short (which
    ``logs`` would then skip with it)."""

    def __init__(self, filename: Path) -> None:
        self.failing = False
        self._erred = False
        # a value holding half a character is written with its escape, never refused
        super().__init__(filename, encoding="utf-8", errors="backslashreplace")

    def emit(self, record: logging.LogRecord) -> None:
        self._erred = False
        try:
            super().emit(record)
        except OSError:  # the file could not be opened again (a disk remounted read-only)
            self.handleError(record)
        if self.failing and not self._erred:
            self.failing = False
            sys.stderr.write(f"sync-agent: the log file {self.baseFilename} is written again\n")

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):  # not the disk: an event that cannot be written out
            super().handleError(record)
            return
        self._erred = True
        if not self.failing:
            self.failing = True
            reason = exc.strerror or repr(exc)
            sys.stderr.write(f"sync-agent: cannot write the log file {self.baseFilename}: {reason}; "
                             "its events are lost until it can (warnings and errors still come here)\n")
        # what the stream holds half written is dropped: the next event opens the file again
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _open(self) -> Any:
        stream = super()._open()
        # a line the disk cut short (in this process or in one before it) is ended first
        with contextlib.suppress(OSError), open(self.baseFilename, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    stream.write("\n")
        return stream


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
    err.addFilter(_not_a_job_error_twice)
    root.addHandler(err)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fh = _LogFile(log_file)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError("agent.log_file", f"cannot write the log file {log_file}: {reason}") from None
        fh.setLevel(level)
        fh.setFormatter(json_formatter)
        fh.addFilter(_not_a_job_error_twice)
        root.addHandler(fh)
    # Libraries speak at WARNING and above: their INFO lines ("Added job ...", "Running job ...",
    # "Starting new HTTP connection") repeat what the agent's own events say with more context.
    # Their warnings and errors (a missed run, a retried connection) still reach the same file.
    for noisy in ("urllib3", "alembic", "apscheduler", "sqlalchemy", "tenacity"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.captureWarnings(True)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
