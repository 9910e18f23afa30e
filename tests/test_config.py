"""A wrong configuration stops the agent at start: exit 2, one line naming the key."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from sync_agent.config import load_settings
from sync_agent.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "config" / "sync-agent.example.toml"
SECRETS = {
    "SYNC_AGENT_ID_HASH_KEY": "k", "ONE_STOP_PASSWORD": "p", "CIVIL_STATUS_SECRET": "s",
    "RESIDENCE_API_KEY": "r", "HKD_PASSWORD": "h", "SMTP_PASSWORD": "m",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync-agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def example_with(old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1)


def example_without(table: str) -> str:
    """The example configuration without its ``[connectors.<table>]`` table."""
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index(f"[connectors.{table}]")
    end = text.index("\n[", start) + 1
    return text[:start] + text[end:]


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": "/usr/bin:/bin", **SECRETS, **(env or {})}
    return subprocess.run([sys.executable, "-m", "sync_agent", "--config", str(config), *args],
                          capture_output=True, text=True, env=full_env, timeout=60)


def test_the_example_configuration_is_valid(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE, environ=SECRETS)
    assert settings.agent.ward_code == "11311"
    assert settings.source_names == ("one_stop", "civil_status", "residence", "household_business")
    assert settings.connector("one_stop").options["password"] == "p"
    assert settings.connector("residence").lookback_minutes == 60


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('type = "residence"', 'type = "residense"', "connectors.residence.type"),
        ('base_url = "http://127.0.0.1:8103"', 'base_url = "127.0.0.1:8103"', "connectors.residence.base_url"),
        ('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Asia/Hanoi_City"', "agent.timezone"),
        ('security = "starttls"', 'security = "tls"', "smtp.security"),
        ('time = "07:30"', 'time = "7h30"', "alerts.time"),
        ('period_start_day = 15', 'period_start_day = 31', "agent.period_start_day"),
        ('every_minutes = 15', 'every_minutes = "15"', "connectors.one_stop.every_minutes"),
        ('username = "tiepnhan"', 'usename = "tiepnhan"', "connectors.one_stop.usename"),
        ('working_saturdays = []', 'working_saturdays = ["2026-01-11"]', "calendar.working_saturdays[0]"),
        ('max_empty_pages = 10000', 'max_empty_pages = 0', "connectors.residence.max_empty_pages"),
        ('ward_code = "11311"', 'ward_code = "１１３１１"', "agent.ward_code"),  # full-width: sent as it is
    ],
)
def test_a_wrong_value_names_its_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, example_with(old, new)), environ=SECRETS)
    assert err.value.key == key


def test_a_missing_secret_names_the_key_and_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in SECRETS.items() if k != "HKD_PASSWORD"}
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, EXAMPLE.read_text(encoding="utf-8")), environ=env)
    assert err.value.key == "connectors.household_business.password"
    assert "HKD_PASSWORD" in str(err.value)


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE.read_text(encoding="utf-8")), environ=SECRETS)
    assert settings.agent.database_url == f"sqlite:///{tmp_path}/data/sync-agent.db"
    assert settings.agent.log_file == tmp_path / "logs" / "sync-agent.jsonl"


@pytest.mark.parametrize(
    ("text_change", "expected"),
    [
        (('[agent]', '[agent\n'), "line"),
        (('type = "civil_status"', 'type = "land_registry"'), "connectors.civil_status.type: unknown connector type"),
        (('client_secret = "${CIVIL_STATUS_SECRET}"', 'client_secret = "${NOT_SET_ANYWHERE}"'),
         "connectors.civil_status.client_secret: environment variable NOT_SET_ANYWHERE is not set"),
        (('timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Mars/Olympus"'), "agent.timezone: unknown time zone"),
        (('base_url = "http://127.0.0.1:8101"', 'base_url = "ftp://127.0.0.1:8101"'),
         "connectors.one_stop.base_url: not an http(s) URL"),
        (('database_url = "sqlite:///data/sync-agent.db"',
          'database_url = "postgresql+psycopg://nobody@127.0.0.1:1/none"'),
         "agent.database_url: cannot open database"),
        (('base_url = "http://127.0.0.1:8103"', 'base_url = "http://[127.0.0.1]:8103"'),
         "connectors.residence.base_url: not an http(s) URL"),
        (('base_url = "http://127.0.0.1:8103"', 'base_url = "https://[::1"'),
         "connectors.residence.base_url: not an http(s) URL"),
        (('base_url = "http://127.0.0.1:8103"', 'base_url = "http://127.0.0.1:8103/ api"'),
         "connectors.residence.base_url: a URL holds no spaces or control characters"),
        (('api_key = "${RESIDENCE_API_KEY}"', 'api_key = "${RESIDENCE_API_KEY"'),
         "connectors.residence.api_key: an unfinished ${...} reference"),
        (('log_file = "logs/sync-agent.jsonl"', 'log_file = "/etc/hostname/sync-agent.jsonl"'),
         "agent.log_file: cannot write the log file /etc/hostname/sync-agent.jsonl"),
        (('log_file = "logs/sync-agent.jsonl"', 'log_file = "/tmp"'),
         "agent.log_file: cannot write the log file /tmp"),
    ],
)
def test_the_agent_refuses_to_start_with_one_line_and_status_2(
    tmp_path: Path, text_change: tuple[str, str], expected: str
) -> None:
    config = write(tmp_path, example_with(*text_change))
    result = run_cli(config, "check-config", "--offline")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_the_hash_key_may_come_from_the_environment_alone(tmp_path: Path) -> None:
    """operations.md's own example has no ``id_hash_key``: the key is then read from
    ``SYNC_AGENT_ID_HASH_KEY``, the variable the README exports."""
    config = write(tmp_path, example_with('id_hash_key = "${SYNC_AGENT_ID_HASH_KEY}"', ""))
    assert load_settings(config, environ=SECRETS).agent.id_hash_key == "k"
    env = {k: v for k, v in SECRETS.items() if k != "SYNC_AGENT_ID_HASH_KEY"}
    with pytest.raises(ConfigError) as err:
        load_settings(config, environ=env)
    assert err.value.key == "agent.id_hash_key"
    assert "SYNC_AGENT_ID_HASH_KEY" in str(err.value)


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "nope.toml", "runs")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_a_valid_configuration_passes_check_config(tmp_path: Path) -> None:
    config = write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    result = run_cli(config, "check-config", "--offline")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


DB_PASSWORD = "p@ss/w:rd?#%"  # as a generator makes them: every character a URL gives a meaning


def test_a_database_password_from_the_environment_goes_into_the_url_as_it_is(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    config = write(tmp_path, example_with(
        'database_url = "sqlite:///data/sync-agent.db"',
        'database_url = "postgresql+psycopg://agent:${DB_PASSWORD}@127.0.0.1:5432/test"'))
    url = make_url(load_settings(config, environ={**SECRETS, "DB_PASSWORD": DB_PASSWORD}).agent.database_url)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "agent", DB_PASSWORD, "127.0.0.1", 5432, "test")


def test_a_whole_database_url_from_the_environment_is_taken_as_written(tmp_path: Path) -> None:
    written = "postgresql+psycopg://agent:p%40ss@127.0.0.1:5432/test"
    config = write(tmp_path, example_with('database_url = "sqlite:///data/sync-agent.db"',
                                          'database_url = "${DATABASE_URL}"'))
    settings = load_settings(config, environ={**SECRETS, "DATABASE_URL": written})
    assert settings.agent.database_url == written


@pytest.mark.postgres
def test_the_agent_opens_postgresql_with_such_a_password(tmp_path: Path, pg_url: str) -> None:
    """The local server trusts loopback, so the password is sent and not checked: the URL is."""
    from sqlalchemy.engine import make_url

    from sync_agent.store.engine import open_engine

    url = make_url(pg_url)
    template = url.set(password="PLACEHOLDER").render_as_string(hide_password=False)
    template = template.replace("PLACEHOLDER", "${DB_PASSWORD}")
    config = write(tmp_path, example_with('database_url = "sqlite:///data/sync-agent.db"',
                                          f'database_url = "{template}"'))
    settings = load_settings(config, environ={**SECRETS, "DB_PASSWORD": DB_PASSWORD})
    open_engine(settings.agent.database_url).dispose()


def test_an_smtp_user_without_a_password_is_refused_at_start(tmp_path: Path) -> None:
    """Else the first report, weeks later, would find it at the server's login."""
    text = example_with('username = ""  ', 'username = "ttpvhcc"  ')
    text = text.replace('password = "${SMTP_PASSWORD}"', "", 1)
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=SECRETS)
    assert err.value.key == "smtp.password" and "username is set" in str(err.value)


@pytest.mark.parametrize(("content", "says"), [(None, "does not exist"),
                                               ("not a certificate\n", "holds no certificate")],
                         ids=["missing", "not-pem"])
def test_an_smtp_ca_file_the_agent_cannot_load_is_refused_at_start(
        tmp_path: Path, content: str | None, says: str) -> None:
    """Else the first report, weeks later, fails in the mail with a bare "No such file"."""
    if content is not None:
        (tmp_path / "ca.pem").write_text(content)
    text = example_with('# ca_file = "certs/ca.pem"', 'ca_file = "ca.pem"')
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=SECRETS)
    assert err.value.key == "smtp.ca_file" and says in str(err.value)


def test_check_config_says_valid_only_once_the_database_opened(tmp_path: Path) -> None:
    config = write(tmp_path, example_with('database_url = "sqlite:///data/sync-agent.db"',
                                          'database_url = "sqlite:////etc/hostname/sync-agent.db"'))
    result = run_cli(config, "check-config", "--offline")
    assert result.returncode == 2 and "agent.database_url" in result.stderr
    assert "valid" not in result.stdout


def install_entry_point(site: Path, name: str, value: str) -> None:
    """A distribution installed in ``site`` (a folder on PYTHONPATH) that declares ``value`` as
    the connector type ``name``: what pip leaves for a third-party connector package."""
    dist = site / "ward_extra_connector-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ward-extra-connector\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[sync_agent.connectors]\n{name} = {value}\n")


def test_a_connector_package_that_cannot_be_imported_is_refused_in_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_entry_point(site, "land", "ward_land_connector.connector:LandConnector")  # module missing
    config = write(tmp_path, example_with('type = "civil_status"', 'type = "land"'))
    result = run_cli(config, "check-config", "--offline", env={"PYTHONPATH": str(site)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "configuration error: connectors.civil_status.type: the connector type 'land' "
        "(ward_land_connector.connector:LandConnector) cannot be loaded: "
        "ModuleNotFoundError: No module named 'ward_land_connector'"]


def test_the_one_stop_connector_under_another_name_is_refused(tmp_path: Path) -> None:
    """Reconciliation takes the Centre's reception register from the source named ``one_stop``:
    under another name every dossier would be reported as having bypassed the Centre."""
    text = EXAMPLE.read_text(encoding="utf-8").replace("[connectors.one_stop]", "[connectors.motcua]", 1)
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=SECRETS)
    assert err.value.key == "connectors.motcua"
    assert "[connectors.one_stop]" in err.value.message


def test_another_connector_under_the_reception_register_s_name_is_refused(tmp_path: Path) -> None:
    """The converse: residence's dossiers read as the Centre's register would all count as
    received at the Centre."""
    text = example_without("one_stop").replace("[connectors.residence]", "[connectors.one_stop]", 1)
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=SECRETS)
    assert err.value.key == "connectors.one_stop.type"
    assert "not the Centre's reception register" in err.value.message


def test_an_unknown_key_in_a_connector_table_lists_that_connector_s_own_keys(tmp_path: Path) -> None:
    """The example file cannot list a third party's options; the connector class does."""
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, example_with('username = "tiepnhan"', 'usename = "tiepnhan"')), environ=SECRETS)
    assert err.value.key == "connectors.one_stop.usename"
    assert "the one_stop connector's own keys: username, password" in err.value.message


def test_check_config_warns_when_no_reception_register_is_configured(tmp_path: Path) -> None:
    """Valid (a ward may add the ministries first), but every dossier would then be reported
    as having bypassed the Centre: the officer installing it must know."""
    result = run_cli(write(tmp_path, example_without("one_stop")), "check-config", "--offline")
    assert result.returncode == 0, result.stderr
    assert ("warning: no [connectors.one_stop] (the Centre's reception register): every dossier will be "
            "reported as not received at the Centre") in result.stdout
    with_it = run_cli(write(tmp_path, EXAMPLE.read_text(encoding="utf-8")), "check-config", "--offline")
    assert "warning" not in with_it.stdout


def test_check_config_warns_of_stored_records_no_table_names_any_more(tmp_path: Path) -> None:
    """A table renamed on a store in use starts a new source: its records are read again under the
    new name and the old ones still count, so the report counts that system twice."""
    from sync_agent.model import Channel, DossierRecord, Status
    from sync_agent.store.engine import open_engine, write_transaction
    from sync_agent.store.records import save_records

    config = write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    settings = load_settings(config, environ=SECRETS)
    engine = open_engine(settings.agent.database_url)
    record = DossierRecord(source="civil_status", source_id="HT-1", procedure_code="1.001193",
                           status=Status.RECEIVED, source_updated_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
                           channel=Channel.ONLINE)
    with write_transaction(engine) as conn:
        save_records(conn, "civil_status", [record], settings.agent.timezone, None, dt.datetime.now(dt.UTC))
    engine.dispose()
    renamed = write(tmp_path, EXAMPLE.read_text(encoding="utf-8").replace("[connectors.civil_status]",
                                                                           "[connectors.hotich]", 1))
    result = run_cli(renamed, "check-config", "--offline")
    assert result.returncode == 0, result.stderr
    assert ("warning: the store holds 1 record(s) of the source 'civil_status', which no [connectors] table "
            "names now; they still count in reports") in result.stdout
    config = write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))  # named again as it was
    assert "warning: the store" not in run_cli(config, "check-config", "--offline").stdout
    client = 'client_id = "phuong-11311"'
    disabled = write(tmp_path, example_with(client, client + "\nenabled = false"))
    assert "warning: the store" not in run_cli(disabled, "check-config", "--offline").stdout  # still named
