"""Load the TOML configuration, fill ``${ENV}`` secrets, validate everything at start.

A ward IT officer edits this file by hand; a mistake must stop the agent at once with one line
naming the key, not three hours later with a traceback in the log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync_agent import labels
from sync_agent.errors import ConfigError
from sync_agent.model import RECEPTION_SOURCE
from sync_agent.redaction import mask_values_in

DEFAULT_CONFIG_PATH = Path("config/sync-agent.toml")
CONFIG_ENV = "SYNC_AGENT_CONFIG"
#: where the ID hash key is read from when the file does not set ``agent.id_hash_key``
ID_HASH_KEY_ENV = "SYNC_AGENT_ID_HASH_KEY"
#: the default of ``agent.timezone`` and of every source's ``timezone``
VIETNAM = "Asia/Ho_Chi_Minh"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# Every key the parser accepts, by table: the docs test checks each is explained in
# config/sync-agent.example.toml.
TOP_LEVEL_KEYS = frozenset({"agent", "connectors", "report", "smtp", "alerts", "calendar"})
AGENT_KEYS = frozenset({"ward_code", "ward_name", "province_name", "timezone", "database_url",
                        "id_hash_key", "period_start_day", "log_file", "log_level"})
CONNECTOR_KEYS = frozenset({"type", "base_url", "every_minutes", "lookback_minutes", "start_date",
                            "connect_timeout", "read_timeout", "request_deadline", "max_attempts",
                            "retry_after_cap", "page_size", "enabled", "timezone"})
REPORT_KEYS = frozenset({"recipients", "send_day", "send_time", "stale_after_hours"})
SMTP_KEYS = frozenset({"host", "port", "security", "username", "password", "sender", "timeout",
                       "max_attempts", "ca_file"})
ALERTS_KEYS = frozenset({"recipients", "time", "due_within_working_days", "webhooks"})
WEBHOOK_KEYS = frozenset({"url", "headers", "timeout"})
CALENDAR_KEYS = frozenset({"extra_days_off", "working_saturdays"})


@dataclass(frozen=True)
class AgentSettings:
    ward_code: str
    ward_name: str
    timezone: ZoneInfo
    database_url: str
    id_hash_key: str = field(repr=False)
    period_start_day: int = 15
    log_file: Path | None = None
    log_level: str = "INFO"
    #: as the report's opening sentence names the province's dossier system ("thành phố Hải Phòng")
    province_name: str = ""


@dataclass(frozen=True)
class ConnectorSettings:
    """One ``[connectors.NAME]`` table: the common keys, plus the type's own ``options``."""

    name: str
    type: str
    base_url: str
    every_minutes: int = 15
    lookback_minutes: int = 60
    start_date: dt.date | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    request_deadline: float = 120.0
    max_attempts: int = 5
    retry_after_cap: float = 120.0
    page_size: int | None = None
    enabled: bool = True
    #: the zone of the source's times that carry no offset (sources.md: Vietnam's), which is not
    #: the ward's clock (``agent.timezone``): a ward that keeps its clock in UTC still reads them right
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(VIETNAM))
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ReportSettings:
    recipients: tuple[str, ...] = ()
    send_day: int = 15
    send_time: dt.time = dt.time(8, 0)
    stale_after_hours: int = 24


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "sync-agent@localhost"
    timeout: float = 30.0
    max_attempts: int = 3
    ca_file: Path | None = None


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    recipients: tuple[str, ...] = ()
    time: dt.time = dt.time(7, 30)
    due_within_working_days: int = 2
    webhooks: tuple[WebhookSettings, ...] = ()


@dataclass(frozen=True)
class CalendarSettings:
    extra_days_off: frozenset[dt.date] = frozenset()
    working_saturdays: frozenset[dt.date] = frozenset()


@dataclass(frozen=True)
class Settings:
    agent: AgentSettings
    connectors: tuple[ConnectorSettings, ...]
    report: ReportSettings = ReportSettings()
    smtp: SmtpSettings = SmtpSettings()
    alerts: AlertSettings = AlertSettings()
    calendar: CalendarSettings = CalendarSettings()
    path: Path | None = None
    #: the values read from the environment (``${NAME}``): where secrets live, so every message
    #: masks them, a secret inside a URL's query or path included (``secret_values``)
    from_environment: tuple[str, ...] = field(default=(), repr=False)

    def connector(self, name: str) -> ConnectorSettings:
        for c in self.connectors:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.connectors if c.enabled)


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config``, else ``$SYNC_AGENT_CONFIG``, else ``config/sync-agent.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every secret the configuration holds: the ID hash key, the database's and the SMTP
    password, the webhooks' credential headers, each connector's options declared ``secret``, and
    every value read from the environment."""
    from sqlalchemy.engine import make_url

    from connectors.base import connector_option_specs

    values = [settings.agent.id_hash_key, settings.smtp.password,
              make_url(settings.agent.database_url).password or "", *settings.from_environment]
    values += [v for w in settings.alerts.webhooks for name, v in w.headers.items()
               if re.search(r"auth|key|token|secret|pass", name, re.I)]
    for cs in settings.connectors:
        try:
            specs = connector_option_specs(cs.type, f"connectors.{cs.name}.type")
        except ConfigError:  # settings built by hand, with a type not installed
            continue
        values += [str(cs.options[n]) for n, spec in specs.items() if spec.secret and cs.options.get(n)]
    return tuple(str(v) for v in values if v)


def load_settings(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    option_specs: Callable[[str, str], Mapping[str, Any]] | None = None,
) -> Settings:
    """Read and validate the file at ``path``.

    ``option_specs(type, key)`` returns a connector type's own options (see
    ``connectors.base.Option``) and raises ``ConfigError`` for an unknown type; by default the
    installed connectors are looked up through their entry points.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"configuration file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"configuration file {p} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from None
    return parse_settings(
        data, base_dir=p.resolve().parent, environ=environ, option_specs=option_specs, path=p
    )


def parse_settings(
    data: Mapping[str, Any],
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    option_specs: Callable[[str, str], Mapping[str, Any]] | None = None,
    path: Path | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    from_env: list[str] = []
    data = _interpolate(data, env, "", from_env)
    try:
        settings = _parse(data, base_dir, env, option_specs, path)
    except ConfigError as exc:  # it may quote a value that holds a secret (a mistyped URL)
        # as it came, and as ``repr`` quotes it (a secret file's newline, a backslash, doubled)
        shapes = [shape for value in from_env for shape in (value, repr(value)[1:-1])]
        raise ConfigError(exc.key, mask_values_in(exc.message, shapes)) from None
    return dataclasses.replace(settings, from_environment=tuple(from_env))


def _parse(data: Mapping[str, Any], base_dir: Path, env: Mapping[str, str],
           option_specs: Callable[[str, str], Mapping[str, Any]] | None, path: Path | None) -> Settings:
    installed = option_specs is None
    if option_specs is None:
        from connectors.base import connector_option_specs

        option_specs = connector_option_specs
    _only_keys(data, "", TOP_LEVEL_KEYS)
    agent = _agent(_table(data, "agent", required=True), base_dir, env)
    connectors_table = _table(data, "connectors", required=True)
    if not connectors_table:
        raise ConfigError("connectors", "at least one connector must be configured")
    connectors = tuple(
        _connector(name, _table(connectors_table, name, prefix="connectors", required=True),
                   option_specs)
        for name in connectors_table
    )
    if installed:
        _check_installed(connectors)
    return Settings(
        agent=agent,
        connectors=connectors,
        report=_report(_table(data, "report"), agent.period_start_day),
        smtp=_smtp(_table(data, "smtp"), base_dir),
        alerts=_alerts(_table(data, "alerts")),
        calendar=_calendar(_table(data, "calendar")),
        path=path,
    )


# --- sections -------------------------------------------------------------------------------

def _agent(t: Mapping[str, Any], base_dir: Path, env: Mapping[str, str]) -> AgentSettings:
    k = "agent"
    _only_keys(t, k, AGENT_KEYS)
    ward_code = _str(t, k, "ward_code", required=True)
    if not (ward_code.isascii() and ward_code.isdigit()):
        raise ConfigError(f"{k}.ward_code", f"must be the ward's numeric unit code, got {ward_code!r}")
    tz = _zone(t, k)
    start_day = _int(t, k, "period_start_day", default=15, low=1, high=28)
    log_file_s = _str(t, k, "log_file", default="logs/sync-agent.jsonl")
    log_level = _str(t, k, "log_level", default="INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"{k}.log_level", f"must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    return AgentSettings(
        ward_code=ward_code,
        ward_name=_str(t, k, "ward_name", required=True),
        timezone=tz,
        database_url=_database_url(_str(t, k, "database_url", default="sqlite:///data/sync-agent.db"),
                                   base_dir),
        id_hash_key=_id_hash_key(t, k, env),
        period_start_day=start_day,
        log_file=_path(log_file_s, base_dir) if log_file_s else None,
        log_level=log_level,
        province_name=_str(t, k, "province_name", default="").strip(),
    )


def _zone(t: Mapping[str, Any], k: str) -> ZoneInfo:
    """``K.timezone``, Vietnam's by default: the ward's clock, and the one sources.md gives every
    source's times that carry no offset."""
    name = _str(t, k, "timezone", default=VIETNAM)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{k}.timezone", f"unknown time zone {name!r}") from None


def _id_hash_key(t: Mapping[str, Any], k: str, env: Mapping[str, str]) -> str:
    """``agent.id_hash_key``, else ``$SYNC_AGENT_ID_HASH_KEY``: operations.md's example sets no key
    in the file, and a secret belongs in the environment anyway."""
    if "id_hash_key" in t:
        return _str(t, k, "id_hash_key", required=True)
    key = env.get(ID_HASH_KEY_ENV, "")
    if not key.strip():
        raise ConfigError(f"{k}.id_hash_key", f"missing (required): export {ID_HASH_KEY_ENV}, or set "
                                              f'id_hash_key = "${{{ID_HASH_KEY_ENV}}}"')
    return key


def _check_installed(connectors: Sequence[ConnectorSettings]) -> None:
    """What the configured connector classes say of their sources: the Centre's reception
    register, which reconciliation reads from the source of one name (under another, every
    dossier would be reported as having bypassed the Centre); and the labels staff read, which
    follow the connector whatever its table is named."""
    from connectors.base import connector_class, connector_labels

    labels.forget()  # a table of an earlier configuration in this process no longer counts
    for cs in connectors:
        register = connector_class(cs.type, f"connectors.{cs.name}.type").reception_register
        if register and cs.name != RECEPTION_SOURCE:
            raise ConfigError(f"connectors.{cs.name}", f"the {cs.type!r} connector is the Centre's reception register: "
                              f"configure it as [connectors.{RECEPTION_SOURCE}], the name reconciliation reads "
                              "it under")
        if cs.name == RECEPTION_SOURCE and not register:
            raise ConfigError(f"connectors.{cs.name}.type", f"the {cs.type!r} connector is not the Centre's reception "
                              f"register, which reconciliation reads from [connectors.{RECEPTION_SOURCE}]: its "
                              "dossiers would all count as received at the Centre")
        labels.register(cs.name, connector_labels(cs.type) or labels.SourceLabels(cs.name, cs.name))


def _connector(name: str, t: Mapping[str, Any],
               option_specs: Callable[[str, str], Mapping[str, Any]]) -> ConnectorSettings:
    k = f"connectors.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(k, "a source name is lower-case letters, digits and '_'")
    ctype = _str(t, k, "type", required=True)
    specs = option_specs(ctype, f"{k}.type")
    for key in t:
        if key not in CONNECTOR_KEYS and key not in specs:
            own = f"the {ctype} connector's own keys: {', '.join(specs)}; " if specs else ""
            raise ConfigError(f"{k}.{key}", f"unknown key (misspelt? {own}the common keys: see "
                                            "config/sync-agent.example.toml)")
    options: dict[str, Any] = {}
    for opt_name, spec in specs.items():
        options[opt_name] = spec.read(t, k, opt_name)
    start = t.get("start_date")
    start_date: dt.date | None
    if start is None or start == "":
        start_date = None
    elif isinstance(start, dt.date) and not isinstance(start, dt.datetime):
        start_date = start
    elif isinstance(start, str):
        try:
            start_date = dt.date.fromisoformat(start)
        except ValueError:
            raise ConfigError(f"{k}.start_date", f"must be a date YYYY-MM-DD, got {start!r}") from None
    else:
        raise ConfigError(f"{k}.start_date", "must be a date YYYY-MM-DD")
    page_size = t.get("page_size")
    return ConnectorSettings(
        name=name,
        type=ctype,
        base_url=_url(_str(t, k, "base_url", required=True), f"{k}.base_url"),
        every_minutes=_int(t, k, "every_minutes", default=15, low=1, high=1440),
        lookback_minutes=_int(t, k, "lookback_minutes", default=60, low=0, high=60 * 24 * 31),
        start_date=start_date,
        connect_timeout=_num(t, k, "connect_timeout", default=5.0, low=0.1, high=300),
        read_timeout=_num(t, k, "read_timeout", default=30.0, low=0.1, high=600),
        request_deadline=_num(t, k, "request_deadline", default=120.0, low=1, high=3600),
        max_attempts=_int(t, k, "max_attempts", default=5, low=1, high=20),
        retry_after_cap=_num(t, k, "retry_after_cap", default=120.0, low=0, high=3600),
        page_size=None if page_size is None else _int(t, k, "page_size", default=0, low=1, high=1000),
        enabled=_bool(t, k, "enabled", default=True),
        timezone=_zone(t, k),
        options=options,
    )


def _report(t: Mapping[str, Any], period_start_day: int) -> ReportSettings:
    k = "report"
    _only_keys(t, k, REPORT_KEYS)
    return ReportSettings(
        recipients=_emails(t, k, "recipients"),
        send_day=_int(t, k, "send_day", default=period_start_day, low=1, high=28),
        send_time=_hhmm(t, k, "send_time", default=dt.time(8, 0)),
        stale_after_hours=_int(t, k, "stale_after_hours", default=24, low=1, high=24 * 31),
    )


def _smtp(t: Mapping[str, Any], base_dir: Path) -> SmtpSettings:
    k = "smtp"
    _only_keys(t, k, SMTP_KEYS)
    security = _str(t, k, "security", default="starttls")
    if security not in {"starttls", "ssl", "none"}:
        raise ConfigError(f"{k}.security", f"must be starttls, ssl or none, got {security!r}")
    sender = _str(t, k, "sender", default="sync-agent@localhost")
    if not _EMAIL.match(sender) and not sender.endswith("@localhost"):
        raise ConfigError(f"{k}.sender", f"not an email address: {sender!r}")
    ca = _str(t, k, "ca_file", default="")
    username = _str(t, k, "username", default="")
    password = _str(t, k, "password", default="")
    if username and not password:
        # found now, not at the first report's login weeks later
        raise ConfigError(f"{k}.password", 'missing: username is set (password = "${SMTP_PASSWORD}")')
    return SmtpSettings(
        host=_str(t, k, "host", default="127.0.0.1"),
        port=_int(t, k, "port", default=587 if security == "starttls" else 465 if security == "ssl" else 25,
                  low=1, high=65535),
        security=security,
        username=username,
        password=password,
        sender=sender,
        timeout=_num(t, k, "timeout", default=30.0, low=1, high=600),
        max_attempts=_int(t, k, "max_attempts", default=3, low=1, high=10),
        ca_file=_ca_file(_path(ca, base_dir), f"{k}.ca_file") if ca else None,
    )


def _ca_file(path: Path, key: str) -> Path:
    """A CA bundle the agent can read and load: found now, not at the first report weeks later,
    when the mail would fail with a bare "No such file" that names no key."""
    import ssl

    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        raise ConfigError(key, f"{path} does not exist") from None
    except ssl.SSLError as exc:
        raise ConfigError(key, f"{path} holds no certificate the agent can load ({exc.reason or exc}): "
                               "give a PEM file of the CA that signed the server's certificate") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _alerts(t: Mapping[str, Any]) -> AlertSettings:
    k = "alerts"
    _only_keys(t, k, ALERTS_KEYS)
    hooks_raw = t.get("webhooks", [])
    if not isinstance(hooks_raw, list):
        raise ConfigError(f"{k}.webhooks", "must be a list of tables ([[alerts.webhooks]])")
    hooks: list[WebhookSettings] = []
    for i, h in enumerate(hooks_raw):
        hk = f"{k}.webhooks[{i}]"
        if not isinstance(h, Mapping):
            raise ConfigError(hk, "must be a table with a url")
        _only_keys(h, hk, WEBHOOK_KEYS)
        headers = h.get("headers", {})
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{hk}.headers", "must be a table of strings")
        hooks.append(WebhookSettings(
            url=_url(_str(h, hk, "url", required=True), f"{hk}.url"),
            headers=dict(headers),
            timeout=_num(h, hk, "timeout", default=10.0, low=0.1, high=300),
        ))
    return AlertSettings(
        recipients=_emails(t, k, "recipients"),
        time=_hhmm(t, k, "time", default=dt.time(7, 30)),
        due_within_working_days=_int(t, k, "due_within_working_days", default=2, low=0, high=30),
        webhooks=tuple(hooks),
    )


def _calendar(t: Mapping[str, Any]) -> CalendarSettings:
    k = "calendar"
    _only_keys(t, k, CALENDAR_KEYS)
    return CalendarSettings(
        extra_days_off=_dates(t, k, "extra_days_off"),
        working_saturdays=_dates(t, k, "working_saturdays", weekday=5),
    )


# --- value readers --------------------------------------------------------------------------

#: keys holding a URL whose user part may take a secret from the environment
_URL_KEYS = frozenset({"agent.database_url"})


def _userinfo_span(template: str) -> tuple[int, int] | None:
    """Where the user part (``user:password``) of a URL template lies, if it has one.

    The ``@`` that ends it is looked for in the template's own text, outside the ``${NAME}``
    references: a password generated for a server often holds ``@``, ``/`` or ``:``.
    """
    scheme_end = template.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    text = _ENV_REF.sub(lambda m: "x" * len(m.group(0)), template)
    at, slash = text.find("@", start), text.find("/", start)
    if at < 0 or 0 <= slash < at:
        return None
    return start, at


def _interpolate(value: Any, env: Mapping[str, str], key: str, found: list[str]) -> Any:
    """``value`` with its ``${NAME}`` references filled in; each value put in is added to ``found``."""
    if isinstance(value, str):
        if "${" in _ENV_REF.sub("", value):
            raise ConfigError(key, "an unfinished ${...} reference: write ${NAME}, NAME of letters, digits and _")
        userinfo = _userinfo_span(value) if key in _URL_KEYS else None

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env or env[name] == "":
                raise ConfigError(key, f"environment variable {name} is not set")
            found.append(env[name])
            if userinfo is not None and userinfo[0] <= m.start() < userinfo[1]:
                # a user name or password goes into the URL as it is, whatever it holds
                found.append(quote(env[name], safe=""))
                return found[-1]
            return env[name]
        return _ENV_REF.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, env, f"{key}.{k}" if key else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{key}[{i}]", found) for i, v in enumerate(value)]
    return value


def _table(t: Mapping[str, Any], name: str, prefix: str = "", required: bool = False) -> Mapping[str, Any]:
    key = f"{prefix}.{name}" if prefix else name
    v = t.get(name)
    if v is None:
        if required:
            raise ConfigError(key, "missing table")
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(key, "must be a table")
    return v


def _only_keys(t: Mapping[str, Any], prefix: str, allowed: frozenset[str] | set[str]) -> None:
    for key in t:
        if key not in allowed:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(where, "unknown key (misspelt? see config/sync-agent.example.toml)")


def _str(t: Mapping[str, Any], prefix: str, name: str, required: bool = False, default: str = "") -> str:
    v = t.get(name)
    if v is None:
        if required:
            raise ConfigError(f"{prefix}.{name}", "missing (required)")
        return default
    if not isinstance(v, str):
        raise ConfigError(f"{prefix}.{name}", f"must be a string, got {type(v).__name__}")
    if required and not v.strip():
        raise ConfigError(f"{prefix}.{name}", "must not be empty")
    return v


def _int(t: Mapping[str, Any], prefix: str, name: str, default: int, low: int, high: int) -> int:
    v = t.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{prefix}.{name}", f"must be a whole number, got {v!r}")
    if not low <= v <= high:
        raise ConfigError(f"{prefix}.{name}", f"must be between {low} and {high}, got {v}")
    return v


def _num(t: Mapping[str, Any], prefix: str, name: str, default: float, low: float, high: float) -> float:
    v = t.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{prefix}.{name}", f"must be a number, got {v!r}")
    if not low <= v <= high:
        raise ConfigError(f"{prefix}.{name}", f"must be between {low} and {high}, got {v}")
    return float(v)


def _bool(t: Mapping[str, Any], prefix: str, name: str, default: bool) -> bool:
    v = t.get(name, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{prefix}.{name}", f"must be true or false, got {v!r}")
    return v


def _url(value: str, key: str) -> str:
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # a malformed host ("[127.0.0.1]", an unclosed "[::1")
        host = None
    if not host or parts.scheme not in {"http", "https"}:
        raise ConfigError(key, f"not an http(s) URL: {value!r}")
    if any(c.isspace() or not c.isprintable() for c in value):  # pasted with a space, a tab, a newline
        raise ConfigError(key, f"a URL holds no spaces or control characters: {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ConfigError(key, f"bad port in URL: {value!r}") from None
    return value.rstrip("/")


def _path(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p


def _database_url(value: str, base_dir: Path) -> str:
    """Relative SQLite paths are taken from the config file's folder, like every other path."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError("agent.database_url", f"not a database URL: {value!r}") from None
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError("agent.database_url", f"unsupported database {backend!r} (sqlite or postgresql)")
    if backend == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        if not db.is_absolute():
            return url.set(database=str(base_dir / db)).render_as_string(hide_password=False)
    return value


def _emails(t: Mapping[str, Any], prefix: str, name: str) -> tuple[str, ...]:
    v = t.get(name, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise ConfigError(f"{prefix}.{name}", "must be a list of email addresses")
    for i, addr in enumerate(v):
        if not isinstance(addr, str) or not _EMAIL.match(addr):
            raise ConfigError(f"{prefix}.{name}[{i}]", f"not an email address: {addr!r}")
    return tuple(v)


def _hhmm(t: Mapping[str, Any], prefix: str, name: str, default: dt.time) -> dt.time:
    v = t.get(name)
    if v is None:
        return default
    if isinstance(v, dt.time):
        return v
    if not isinstance(v, str) or not _HHMM.match(v):
        raise ConfigError(f"{prefix}.{name}", f"must be a local time HH:MM, got {v!r}")
    hh, mm = v.split(":")
    return dt.time(int(hh), int(mm))


def _dates(t: Mapping[str, Any], prefix: str, name: str, weekday: int | None = None) -> frozenset[dt.date]:
    v = t.get(name, [])
    if not isinstance(v, list):
        raise ConfigError(f"{prefix}.{name}", "must be a list of dates")
    out: set[dt.date] = set()
    for i, item in enumerate(v):
        key = f"{prefix}.{name}[{i}]"
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            d = item
        elif isinstance(item, str):
            try:
                d = dt.date.fromisoformat(item)
            except ValueError:
                raise ConfigError(key, f"must be a date YYYY-MM-DD, got {item!r}") from None
        else:
            raise ConfigError(key, f"must be a date YYYY-MM-DD, got {item!r}")
        if weekday is not None and d.weekday() != weekday:
            raise ConfigError(key, f"{d.isoformat()} is not a Saturday")
        out.add(d)
    return frozenset(out)
