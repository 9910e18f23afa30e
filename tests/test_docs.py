"""Every command, option and setting is documented (after datasette's tests/test_docs.py).

A ward IT officer learns the agent from README.md and config/sync-agent.example.toml; a
command or key that exists only in the code does not exist for them.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from connectors.base import ENTRY_POINT_GROUP, connector_class
from sync_agent import config
from sync_agent.cli import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config" / "sync-agent.example.toml").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in main.commands.items():
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            out.extend((f"{name} {sub}", subcmd) for sub, subcmd in cmd.commands.items())
    return out


@pytest.mark.parametrize(("name", "cmd"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_is_in_the_readme(name: str, cmd: click.Command) -> None:
    assert f"sync-agent {name}" in README or f"`{name}" in README, f"README.md does not document {name!r}"
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in README, f"README.md does not document {name} {opt}"


def _documented_keys(table_header: str) -> set[str]:
    """Keys written (or commented) as `key =` below a TOML table header, up to the next header."""
    lines = EXAMPLE.splitlines()
    keys: set[str] = set()
    inside = False
    for line in lines:
        stripped = line.lstrip("# ").rstrip()
        if re.match(r"^\[\[?[a-z_.]+\]\]?", stripped):
            inside = stripped.split("]")[0].strip("[") == table_header
            continue
        if inside:
            m = re.match(r"^([a-z_]+)\s*=", stripped)
            if m:
                keys.add(m.group(1))
    return keys


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        ("agent", config.AGENT_KEYS),
        ("report", config.REPORT_KEYS),
        ("smtp", config.SMTP_KEYS),
        ("alerts", config.ALERTS_KEYS - {"webhooks"}),
        ("alerts.webhooks", config.WEBHOOK_KEYS),
        ("calendar", config.CALENDAR_KEYS),
    ],
)
def test_every_setting_is_explained_in_the_example(table: str, keys: frozenset[str]) -> None:
    missing = set(keys) - _documented_keys(table)
    assert not missing, f"[{table}] keys not in config/sync-agent.example.toml: {sorted(missing)}"


def test_every_common_connector_key_is_explained() -> None:
    for key in config.CONNECTOR_KEYS:
        assert re.search(rf"^#\s+{key}\s", EXAMPLE, re.M) or re.search(rf"^{key}\s*=", EXAMPLE, re.M), key


#: the connectors this project ships; a third party's, installed beside them, documents its own
BUILT_IN = tuple(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.value.startswith("connectors.")))


def test_the_four_built_in_connectors_are_installed() -> None:
    assert sorted(BUILT_IN) == ["civil_status", "household_business", "one_stop", "residence"]


@pytest.mark.parametrize("type_name", BUILT_IN)
def test_every_connector_option_is_explained(type_name: str) -> None:
    documented = _documented_keys(f"connectors.{type_name}")
    missing = set(connector_class(type_name).options) - documented
    assert not missing, f"{type_name} options not in the example: {sorted(missing)}"
