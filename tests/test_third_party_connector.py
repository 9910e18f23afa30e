"""A connector installed from another package is found and shown like a built-in one.

The package here is real as far as Python can tell: a module and a ``.dist-info`` folder with
its entry point, on the import path, as pip leaves them.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from connectors import base
from sync_agent import labels
from sync_agent.config import ConnectorSettings, load_settings
from sync_agent.flags import details_text
from sync_agent.report import Period, build_report, render_text
from tests.reconcile.scenario import NOW, rec, run, save
from tests.report.conftest import make_settings
from tests.test_config import EXAMPLE, SECRETS, example_with, example_without, write

LAND = "Đất đai (Văn phòng đăng ký đất đai)"

MODULE = '''
from typing import ClassVar

from connectors.base import Connector


class LandConnector(Connector):
    """A land-registration office's dossiers (a third party's connector)."""

    type_name: ClassVar[str] = "land"
    label: ClassVar[str | None] = "{label}"
    short_label: ClassVar[str | None] = "Đất đai"

    def login(self) -> None:
        pass

    def fetch(self, since, until):
        return iter(())
'''


def forget_installed() -> None:
    base._entry_points.cache_clear()
    labels._by_type.cache_clear()
    labels.forget()


@pytest.fixture
def land_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    dist = site / "ward_land_connector-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "ward_land_connector.py").write_text(textwrap.dedent(MODULE.format(label=LAND)), encoding="utf-8")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ward-land-connector\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sync_agent.connectors]\nland = ward_land_connector:LandConnector\n")
    monkeypatch.syspath_prepend(str(site))
    forget_installed()
    yield
    forget_installed()


def config_with(tmp_path: Path, extra: str = "", old: str = "", new: str = "") -> Path:
    """The example configuration, ``old`` replaced by ``new``, ``extra`` added."""
    return write(tmp_path, (example_with(old, new) if old else EXAMPLE.read_text(encoding="utf-8")) + extra)


def test_a_connector_installed_beside_the_built_ins_is_configured_like_one(land_installed: None,
                                                                          tmp_path: Path) -> None:
    settings = load_settings(config_with(tmp_path, '\n[connectors.land]\ntype = "land"\n'
                                                   'base_url = "http://127.0.0.1:8105"\n'), environ=SECRETS)
    assert settings.connector("land").type == "land"
    assert "land" in base.available_types()


def test_its_source_is_named_as_its_connector_declares(land_installed: None) -> None:
    assert (labels.source_label("land"), labels.short_source_label("land")) == (LAND, "Đất đai")
    assert details_text({"one_stop": "resolved", "land": "awaiting_supplement"}) == \
        "Một cửa: đã giải quyết; Đất đai: chờ bổ sung"


def test_the_report_names_it_in_its_table_of_sources(land_installed: None, engine: Engine) -> None:
    settings = make_settings()
    settings = dataclasses.replace(settings, connectors=(
        *settings.connectors, ConnectorSettings(name="land", type="land", base_url="http://127.0.0.1:8105")))
    save(engine, rec("one_stop", "H-1"), rec("land", "DD-7", code=None, applicant="B2"))
    run(engine)
    report = build_report(engine, settings, Period.parse("2026-02"), now=NOW)
    assert [g.label for g in report.by_source] == ["Một cửa (HTTT giải quyết TTHC thành phố)", LAND]
    assert f"{LAND}:" in render_text(report)  # its line in the sync health


def test_a_built_in_connector_under_another_table_name_keeps_its_name(tmp_path: Path) -> None:
    load_settings(config_with(tmp_path, old="[connectors.civil_status]", new="[connectors.hotich]"), environ=SECRETS)
    assert labels.source_label("hotich") == "Hộ tịch (Bộ Tư pháp)"


def test_a_source_no_connector_names_is_shown_by_its_own_name() -> None:
    assert labels.source_label("nguon_cu") == "nguon_cu"


def test_a_configuration_loaded_later_replaces_the_names_of_an_earlier_one(tmp_path: Path) -> None:
    load_settings(config_with(tmp_path, old="[connectors.civil_status]", new="[connectors.hotich]"), environ=SECRETS)
    load_settings(config_with(tmp_path), environ=SECRETS)
    assert labels.source_label("hotich") == "hotich"
    labels.forget()


def test_a_connector_that_declares_no_name_is_shown_by_its_table_name_even_a_built_in_s(
        land_installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ward_land_connector

    monkeypatch.setattr(ward_land_connector.LandConnector, "label", None)
    monkeypatch.setattr(ward_land_connector.LandConnector, "short_label", None)
    forget_installed()
    land_as_civil_status = '\n[connectors.civil_status]\ntype = "land"\nbase_url = "http://127.0.0.1:8105"\n'
    load_settings(write(tmp_path, example_without("civil_status") + land_as_civil_status), environ=SECRETS)
    assert labels.source_label("civil_status") == "civil_status"
    labels.forget()


def test_the_connectors_command_lists_each_installed_type_with_its_keys(land_installed: None) -> None:
    """What a ward IT officer needs to write a table for a connector just installed."""
    from click.testing import CliRunner

    from sync_agent.cli import main

    result = CliRunner().invoke(main, ["connectors"], catch_exceptions=False)
    assert result.exit_code == 0
    out = result.stdout
    assert f"land  {LAND}  (ward_land_connector:LandConnector)" in out
    assert "one_stop  Một cửa (HTTT giải quyết TTHC thành phố)  (connectors.one_stop.connector:OneStopConnector)" in out
    assert "    password  text, required, secret: its password (use ${ENV})" in out
    assert "reception register: configure as [connectors.one_stop]" in out


def test_a_connector_that_declares_only_a_short_name_is_shown_by_it_everywhere(
        land_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import ward_land_connector

    monkeypatch.setattr(ward_land_connector.LandConnector, "label", None)
    forget_installed()
    assert (labels.source_label("land"), labels.short_source_label("land")) == ("Đất đai", "Đất đai")
