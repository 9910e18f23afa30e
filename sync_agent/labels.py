"""What Centre staff read for a source: its connector's Vietnamese name, whatever the table.

Each connector class declares its own (``Connector.label`` and ``short_label``), so a
third-party connector is named like a built-in one, and the core names no ministry. A source is
looked up by the name it is stored under: the configuration registers each configured table
with its connector's labels when it is loaded (a table may be named otherwise than its type);
a name it never registered is tried as a connector type (the usual table name), else shown as
it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class SourceLabels:
    """``full``: in the report's tables and the digest; ``short``: inside a line (a flag's
    details, a dossier's records)."""

    full: str
    short: str


_registered: dict[str, SourceLabels] = {}


def register(source: str, labels: SourceLabels) -> None:
    """The labels of the configured source ``source`` (its connector's)."""
    _registered[source] = labels


def forget() -> None:
    """Drop what an earlier configuration registered (a process, or a test run, loads several)."""
    _registered.clear()


def labels_of(source: str) -> SourceLabels:
    return _registered.get(source) or _by_type(source) or SourceLabels(source, source)


def source_label(source: str) -> str:
    return labels_of(source).full


def short_source_label(source: str) -> str:
    return labels_of(source).short


@cache
def _by_type(type_name: str) -> SourceLabels | None:
    from connectors.base import connector_labels

    return connector_labels(type_name)
