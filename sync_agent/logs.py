"""Reading the agent's own JSON log back: ``sync-agent logs``.

An operator chasing a wrong figure wants one run's lines, or one source's warnings since
yesterday, without ``jq``. The log file is rotated by the system (logrotate: ``.1``, ``.2.gz``,
or a date suffix) and may end in a half-written line while the daemon writes, so every file of
the family is read, oldest first, and a line that is not a JSON object is counted and skipped,
never fatal.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LEVELS: Mapping[str, int] = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40,
                             "exception": 40, "critical": 50}
_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# keys shown in the text line's head rather than among the key=value pairs
_HEAD_KEYS = ("timestamp", "level", "event", "logger", "run_id", "source")


@dataclass(frozen=True)
class LogEvent:
    """One parsed log line."""

    timestamp: dt.datetime | None
    level: str
    event: str
    fields: Mapping[str, Any] = field(repr=False)
    line: str = field(repr=False, default="")

    @property
    def run_id(self) -> Any:
        return self.fields.get("run_id")

    @property
    def source(self) -> str | None:
        v = self.fields.get("source")
        return None if v is None else str(v)


@dataclass
class ReadStats:
    """What reading skipped, so the command can say so instead of hiding it."""

    files: int = 0
    lines: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class LogFilter:
    """The ``logs`` options; ``None`` means "any"."""

    run_id: int | None = None
    source: str | None = None
    level: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def matches(self, ev: LogEvent) -> bool:
        if self.run_id is not None and str(ev.run_id) != str(self.run_id):
            return False
        if self.source is not None and ev.source != self.source:
            return False
        if self.level is not None and LEVELS.get(ev.level, 0) < LEVELS[self.level.lower()]:
            return False
        if self.since is not None and (ev.timestamp is None or ev.timestamp < self.since):
            return False
        return not (self.until is not None and (ev.timestamp is None or ev.timestamp > self.until))


def log_files(log_file: Path) -> list[Path]:
    """The log file and its rotated siblings, oldest first.

    Rotated copies are ``NAME.1``, ``NAME.2.gz``, ``NAME-20261127``...: anything in the same
    folder whose name starts with the file's name and a ``.`` or ``-``. Ordered by modification
    time (a rotated copy is older than the live file whatever its number), the live file last.
    """
    folder = log_file.parent
    if not folder.is_dir():
        return []
    rotated = [p for p in folder.iterdir()
               if p.is_file() and p.name != log_file.name
               and (p.name.startswith(log_file.name + ".") or p.name.startswith(log_file.name + "-"))]
    rotated.sort(key=lambda p: (p.stat().st_mtime, p.name))
    return [*rotated, log_file] if log_file.is_file() else rotated


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def parse_line(line: str) -> LogEvent | None:
    """A log line as an event, or ``None`` when it is not a whole JSON object."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    ts = data.get("timestamp")
    when: dt.datetime | None = None
    if isinstance(ts, str):
        try:
            when = dt.datetime.fromisoformat(ts)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is None:  # lines written before timestamps had a zone
            when = when.astimezone()
    return LogEvent(timestamp=when, level=str(data.get("level", "info")).lower(),
                    event=str(data.get("event", "")), fields=data, line=text)


def iter_events(paths: Iterable[Path], stats: ReadStats | None = None) -> Iterator[LogEvent]:
    """Every parseable event of ``paths`` in order; unreadable or partial lines are counted."""
    st = stats if stats is not None else ReadStats()
    for path in paths:
        try:
            fh = _open(path)
        except OSError:
            continue
        st.files += 1
        with fh:
            try:
                for line in fh:
                    if not line.strip():
                        continue
                    st.lines += 1
                    ev = parse_line(line)
                    if ev is None:
                        st.skipped += 1
                        continue
                    yield ev
            except (OSError, EOFError):  # a truncated .gz: keep what was read
                st.skipped += 1


def read_log(log_file: Path, flt: LogFilter | None = None, stats: ReadStats | None = None,
             limit: int | None = None) -> list[LogEvent]:
    """The matching events of the log family, oldest first; only the last ``limit`` if given."""
    out: list[LogEvent] = []
    f = flt or LogFilter()
    for ev in iter_events(log_files(log_file), stats):
        if f.matches(ev):
            out.append(ev)
            if limit is not None and len(out) > 2 * limit:
                del out[: len(out) - limit]
    return out[-limit:] if limit is not None else out


def parse_time(text: str, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """``--since``/``--until``: ``30m``, ``2h``, ``1d`` ago, or a date / date-time (ward time
    when it has no offset). Raises ``ValueError`` with a readable message."""
    m = _RELATIVE.match(text)
    if m:
        return now - dt.timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use e.g. 30m, 2h, 1d, 2026-11-27 or 2026-11-27T08:00)"
        ) from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def format_text(ev: LogEvent, tz: dt.tzinfo) -> str:
    """One human line: local time, level, event, run and source, then the other keys."""
    when = ev.timestamp.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if ev.timestamp else "-" * 19
    head = f"{when} {ev.level.upper():<8} {ev.event}"
    ctx = []
    if ev.run_id is not None:
        ctx.append(f"run={ev.run_id}")
    if ev.source is not None:
        ctx.append(f"source={ev.source}")
    rest = [f"{k}={_short(v)}" for k, v in ev.fields.items() if k not in _HEAD_KEYS and v is not None]
    line = " ".join([head, *ctx, *rest])
    return line


def _short(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    if isinstance(v, str) and (" " in text or not text):
        text = json.dumps(v, ensure_ascii=False)
    return text
