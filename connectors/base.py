"""The connector interface, and how the core finds connectors.

A connector turns one source system's API into pages of normalised records. It knows its wire
format, its auth, its pagination and its status mapping; it knows nothing of the store. Built-in
and third-party connectors alike are found through the ``sync_agent.connectors`` entry-point
group, so adding a ministry is installing a package.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sync_agent.config import ConnectorSettings
from sync_agent.errors import ConfigError
from sync_agent.labels import SourceLabels
from sync_agent.model import Page
from sync_agent.privacy import IdHasher

ENTRY_POINT_GROUP = "sync_agent.connectors"


@dataclass(frozen=True)
class Option:
    """One connector-specific configuration key, declared by the connector class."""

    type: type
    required: bool = False
    default: Any = None
    secret: bool = False
    help: str = ""
    low: int | None = None  # the least value a number may take

    def read(self, table: Mapping[str, Any], prefix: str, name: str) -> Any:
        key = f"{prefix}.{name}"
        if name not in table or table[name] is None:
            if self.required:
                raise ConfigError(key, "missing (required)")
            return self.default
        value = table[name]
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ConfigError(key, f"must be a {self.type.__name__}, got {type(value).__name__}")
        if self.required and isinstance(value, str) and not value.strip():
            raise ConfigError(key, "must not be empty")
        if self.low is not None and isinstance(value, int | float) and value < self.low:
            raise ConfigError(key, f"must be at least {self.low}, got {value}")
        return value


@dataclass(frozen=True)
class ConnectorContext:
    """What the core hands every connector: the ward, its clock zone, and the ID hasher."""

    ward_code: str
    timezone: ZoneInfo
    hasher: IdHasher


class Connector(abc.ABC):
    """One source system.

    ``fetch(since, until)`` yields pages of the records whose last-update time lies in
    ``[since, until)`` (``since`` ``None`` means the whole history), in the source's update
    order, each page with a ``checkpoint`` no later than ``until``. It raises
    ``TransientSourceError`` (after its own retries), ``FatalSourceError`` or
    ``SessionExpired`` only when it cannot renew the session. A record that cannot be
    normalised is yielded as a ``QuarantinedRecord``, never raised.
    """

    #: the ``type`` value in the configuration
    type_name: ClassVar[str]
    #: connector-specific configuration keys
    options: ClassVar[Mapping[str, Option]] = {}
    #: the source system's name as Centre staff read it (Vietnamese): in full, in the report's
    #: tables and the digest, and short, inside a line; a connector without one is shown by
    #: its configured name
    label: ClassVar[str | None] = None
    short_label: ClassVar[str | None] = None
    #: whether the source is the Centre's reception register, whose records tell a dossier
    #: received at the Centre from one that bypassed it; such a source must be configured
    #: under the name ``model.RECEPTION_SOURCE``
    reception_register: ClassVar[bool] = False
    #: the default and largest page sizes the source accepts
    default_page_size: ClassVar[int] = 100
    max_page_size: ClassVar[int] = 100

    def __init__(self, settings: ConnectorSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def page_size(self) -> int:
        size = self.settings.page_size or self.default_page_size
        return min(size, self.max_page_size)

    @abc.abstractmethod
    def login(self) -> None:
        """Authenticate now (``check-config`` uses it); raises ``FatalSourceError`` on refusal."""

    @abc.abstractmethod
    def fetch(self, since: dt.datetime | None, until: dt.datetime) -> Iterator[Page]:
        """Pages of records updated in ``[since, until)``, oldest first."""

    def request_stop(self) -> None:  # noqa: B027 - optional hook
        """Asked to stop soon (daemon shutdown); the sync loop stops at the next page anyway."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and sockets."""


@cache
def _entry_points() -> Mapping[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_types() -> tuple[str, ...]:
    return tuple(sorted(_entry_points()))


def installed_from(type_name: str) -> str:
    """Where the type's class is installed from (``module:Class``), as its entry point says."""
    return str(_entry_points()[type_name].value)


def connector_class(type_name: str, key: str = "type") -> type[Connector]:
    """The connector class installed under ``type_name``; ``ConfigError`` naming ``key`` if none."""
    ep = _entry_points().get(type_name)
    if ep is None:
        known = ", ".join(available_types()) or "none installed"
        raise ConfigError(key, f"unknown connector type {type_name!r} (known: {known})")
    try:
        cls = ep.load()
    except Exception as exc:  # the package is broken or half installed: a config error, not a crash
        raise ConfigError(key, f"the connector type {type_name!r} ({ep.value}) cannot be loaded: "
                               f"{type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(key, f"entry point {type_name!r} is not a Connector subclass")
    return cls


def connector_labels(type_name: str) -> SourceLabels | None:
    """The labels the connector type ``type_name`` declares; ``None`` if it declares none, or
    no such type loads."""
    try:
        return labels_of_class(connector_class(type_name))
    except ConfigError:
        return None


def labels_of_class(cls: type[Connector]) -> SourceLabels | None:
    """The labels a connector class declares, if any."""
    full = cls.label or cls.short_label  # one of the two is enough
    if not full:
        return None
    return SourceLabels(full=full, short=cls.short_label or full)


def connector_option_specs(type_name: str, key: str) -> Mapping[str, Option]:
    return connector_class(type_name, key).options


def build_connector(settings: ConnectorSettings, context: ConnectorContext) -> Connector:
    return connector_class(settings.type, f"connectors.{settings.name}.type")(settings, context)
