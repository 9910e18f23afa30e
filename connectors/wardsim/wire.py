"""Small helpers the four wire formats share: local-time text, strict parsing, integer parameters."""

from __future__ import annotations

import datetime as dt
import re

from connectors.wardsim.dataset import LOCAL_OFFSET, TZ, format_local


def local_text(ts: int | None, pattern: str, none: str | None = "") -> str | None:
    """Epoch seconds as local-time text; ``none`` when unset (``""`` or ``None`` by the source's habit)."""
    return none if ts is None else format_local(ts, pattern)


def iso_text(ts: int | None, *, utc: bool = False) -> str | None:
    """ISO 8601 with an offset (``+07:00``), or in UTC with ``Z``."""
    if ts is None:
        return None
    if utc:
        return format_local(ts - LOCAL_OFFSET, "%Y-%m-%dT%H:%M:%SZ")
    return format_local(ts, "%Y-%m-%dT%H:%M:%S+07:00")


def parse_local(text: object, pattern: str, shape: re.Pattern[str]) -> dt.datetime:
    """Strictly parse local-time text (``shape`` first, so ``strptime`` leniency lets nothing odd in)."""
    if not isinstance(text, str) or not shape.fullmatch(text):
        raise ValueError(f"not a time in the expected form: {text!r}")
    return dt.datetime.strptime(text, pattern).replace(tzinfo=TZ)


def parse_iso(text: object) -> dt.datetime:
    """ISO 8601 with an offset or ``Z``; a time without a zone is refused."""
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return moment


def int_param(value: object, *, default: int | None, minimum: int, maximum: int | None = None) -> int:
    """An integer parameter (a JSON number or digits), within bounds; ``ValueError`` otherwise."""
    if value is None or value == "":
        if default is None:
            raise ValueError("missing")
        return default
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        number = int(value)
    else:
        raise ValueError(f"not an integer: {value!r}")
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{number} out of range {bound}")
    return number


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())
