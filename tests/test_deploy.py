"""The files a ward IT officer installs beside the agent: the systemd unit and the logrotate
rules, checked by the real tools and against the agent's own behaviour."""

from __future__ import annotations

import configparser
import datetime as dt
import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import structlog
from sqlalchemy import func, select

from sync_agent import logging as agent_logging
from sync_agent.daemon import SHUTDOWN_BUDGET
from sync_agent.errors import ConfigError
from sync_agent.logs import read_log
from sync_agent.store.engine import open_engine, read_connection, write_transaction
from sync_agent.store.tables import sync_runs

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "sync-agent.service"
LOGROTATE = ROOT / "deploy" / "logrotate.conf"
WRAPPER = ROOT / "deploy" / "sync-agent-cli"
NOBODY = pwd.getpwnam("nobody")
LOG_PATH = "/var/log/sync-agent/sync-agent.jsonl"
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if found is None:
        pytest.skip(f"{name} is not installed on this machine")
    return found


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser["Service"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` names unknown keys and a command that cannot run."""
    agent = Path(sys.executable).with_name("sync-agent")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/sync-agent/bin/sync-agent", str(agent))
    (tmp_path / "sync-agent.service").write_text(text, encoding="utf-8")
    out = subprocess.run([tool("systemd-analyze"), "verify", str(tmp_path / "sync-agent.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "sync-agent.service" not in out.stderr, out.stderr


def test_the_unit_runs_the_daemon_and_gives_it_time_to_stop_cleanly() -> None:
    service = unit_service()
    assert service["ExecStart"].split()[1:] == ["run"]
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > SHUTDOWN_BUDGET  # else systemd kills it mid-page
    # exit status 2 includes a database not reachable yet at boot: it must be tried again
    assert service["Restart"] == "on-failure" and "RestartPreventExitStatus" not in service
    # the paths the unit lets the service write are the ones its logrotate rules and README name
    assert service["LogsDirectory"] == Path(LOG_PATH).parent.name


def test_logrotate_rotates_the_log_while_the_agent_writes_and_logs_reads_every_file(tmp_path: Path) -> None:
    log_file = tmp_path / "sync-agent.jsonl"
    rules = LOGROTATE.read_text(encoding="utf-8")
    assert LOG_PATH in rules
    # the service user does not exist on a test machine: files are created as the one running
    rules = re.sub(r"create .*", "create 0640", rules.replace(LOG_PATH, str(log_file)))
    conf = tmp_path / "logrotate.conf"
    conf.write_text(rules, encoding="utf-8")
    conf.chmod(0o644)
    rotate = [tool("logrotate"), "--force", "--state", str(tmp_path / "state"), str(conf)]
    agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
    try:
        log = structlog.get_logger("sync_agent.test")
        for week in range(3):
            for n in range(week * 5, week * 5 + 5):
                log.info("sync_finished", source="one_stop", n=n)
            if week < 2:
                out = subprocess.run(rotate, capture_output=True, text=True, timeout=60)
                assert out.returncode == 0, out.stderr
    finally:
        for h in logging.getLogger().handlers:
            h.flush()
        agent_logging.configure(level="INFO", stderr_level="CRITICAL")
    assert sorted(p.name for p in tmp_path.glob("sync-agent.jsonl*")) == [
        "sync-agent.jsonl", "sync-agent.jsonl.1", "sync-agent.jsonl.2.gz"]
    # the handler noticed each move and wrote on in the new file; nothing lost or repeated
    assert [e.fields["n"] for e in read_log(log_file) if e.event == "sync_finished"] == list(range(15))


def test_the_readme_backup_copies_a_store_while_the_agent_writes(tmp_path: Path) -> None:
    # the command README.md gives, run on a store of this test instead of /var/lib/sync-agent
    assert re.search(r'`umask 077; sqlite3 /var/lib/sync-agent/sync-agent\.db "VACUUM INTO \'[^\']+\'"`', README), \
        "README.md gives no SQLite backup command"
    store, copy = tmp_path / "sync-agent.db", tmp_path / "backup.db"
    engine = open_engine(f"sqlite:///{store}")
    stop, written = threading.Event(), [0]

    def sync_pages() -> None:  # commits a page of runs at a time, as fast as it can
        while not stop.is_set():
            with write_transaction(engine) as conn:
                conn.execute(sync_runs.insert(), [
                    {"source": "one_stop", "started_at": NOW, "status": "success"} for _ in range(500)])
            written[0] += 500

    writer = threading.Thread(target=sync_pages)
    writer.start()
    try:
        while written[0] < 5000:
            time.sleep(0.01)
        out = subprocess.run([tool("sqlite3"), str(store), f"VACUUM INTO '{copy}'"],
                             capture_output=True, text=True, timeout=60)
        before_end = written[0]
    finally:
        stop.set()
        writer.join()
    assert out.returncode == 0, out.stderr
    backup = open_engine(f"sqlite:///{copy}")
    with read_connection(backup) as conn:
        copied = conn.execute(select(func.count()).select_from(sync_runs)).scalar_one()
    assert 5000 <= copied <= before_end and copied % 500 == 0  # whole pages only


def _as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, as an IT officer typing commands on the server has")


def test_root_is_refused_a_store_that_belongs_to_the_service_user(tmp_path: Path) -> None:
    """Lock files and SQLite's -wal/-shm made by root beside the store would lock the daemon,
    running as its own user, out of it: every sync would fail."""
    _as_root()
    store = tmp_path / "sync-agent.db"
    open_engine(f"sqlite:///{store}").dispose()
    os.chown(store, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(ConfigError, match=r"agent\.database_url: the store .* belongs to the user nobody; "
                                          r"run commands as that user \(the service's: see deploy/sync-agent-cli\)"):
        open_engine(f"sqlite:///{store}")
    # nor may root make a new store, or a new log, in the service's folder
    service_dir = tmp_path / "var-lib-sync-agent"
    service_dir.mkdir()
    os.chown(service_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(ConfigError, match=r"agent\.database_url: the store .* belongs to the user nobody"):
        open_engine(f"sqlite:///{service_dir / 'sync-agent.db'}")
    assert list(service_dir.iterdir()) == []
    with pytest.raises(ConfigError, match=r"agent\.database_url: .*var-lib-sync-agent belongs to the user nobody"):
        open_engine(f"sqlite:///{service_dir / 'data' / 'sync-agent.db'}")  # a folder not made yet either
    assert list(service_dir.iterdir()) == []
    config = tmp_path / "sync-agent.toml"
    config.write_text(f'[agent]\nward_code = "11311"\nward_name = "P"\nid_hash_key = "k"\n'
                      f'log_file = "{service_dir / "sync-agent.jsonl"}"\n'
                      f'[connectors.one_stop]\ntype = "one_stop"\nbase_url = "http://127.0.0.1:9"\n'
                      f'username = "u"\npassword = "p"\n', encoding="utf-8")
    out = subprocess.run([str(Path(sys.executable).with_name("sync-agent")), "--config", str(config), "runs"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "agent.log_file: the log" in out.stderr and "belongs to the user nobody" \
        in out.stderr, out.stderr
    assert list(service_dir.iterdir()) == []


def test_the_wrapper_runs_a_command_as_the_service_user_with_its_secrets() -> None:
    """``sudo sync-agent-cli status``: the command runs as the service's user, with the secrets
    file loaded and the service's configuration, whatever the caller's environment holds."""
    _as_root()
    tool("setpriv")
    # under /tmp, not pytest's root-only folder: the service user must reach the program
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        here = Path(d)
        here.chmod(0o755)
        secrets = here / "secrets.env"
        # as systemd's EnvironmentFile= reads them; a shell would expand $9, run "b" and "cd"
        secrets.write_text("# secrets of the ward's sync-agent\n\nSYNC_AGENT_ID_HASH_KEY=k-1\n"
                           "ONE_STOP_PASSWORD='p 1'\nSMTP_PASSWORD=Xk$9pQ!2\nHKD_PASSWORD = a&b cd \n"
                           'RESIDENCE_API_KEY="q \'x\' $HOME"\n; old key\nnot an assignment\n'
                           "  # an indented note = not a key\nBAD NAME=1\r\nCIVIL_STATUS_SECRET='a\\b'\r\n",
                           encoding="utf-8")
        secrets.chmod(0o600)  # root's to read: the wrapper reads it before it drops to the user
        agent = here / "sync-agent"  # stands in for the venv's program, which lives under /root here
        agent.write_text('#!/bin/sh\nprintf "%s|" "$(id -un)" "$SYNC_AGENT_CONFIG" "$ONE_STOP_PASSWORD" '
                         '"$SMTP_PASSWORD" "$HKD_PASSWORD" "$RESIDENCE_API_KEY" "$CIVIL_STATUS_SECRET" "$*" '
                         '"$(umask)" "${FROM_ROOT_SHELL-unset}"\n', encoding="utf-8")
        agent.chmod(0o755)
        env = {"PATH": os.environ["PATH"], "SYNC_AGENT_USER": "nobody", "SYNC_AGENT_ENV": str(secrets),
               "SYNC_AGENT_CONFIG": "/srv/agent.toml", "SYNC_AGENT_BIN": str(agent),
               "ONE_STOP_PASSWORD": "from the caller", "FROM_ROOT_SHELL": "a secret the daemon lacks"}
        out = subprocess.run([str(WRAPPER), "report", "--period", "2026-11", "--out", "/srv/x=y"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        # the unit's environment only: nothing root's shell exported reaches the command
        assert out.stdout == ("nobody|/srv/agent.toml|p 1|Xk$9pQ!2|a&b cd|q 'x' $HOME|a\\b|"
                              "report --period 2026-11 --out /srv/x=y|0027|unset|")
        assert "line 11: 'BAD NAME' is not a variable name; skipped" in out.stderr
        # a backslash systemd would read as an escape: stopped, not passed on differently
        secrets.write_text("SMTP_PASSWORD=pa\\ss\n", encoding="utf-8")
        stopped = subprocess.run([str(WRAPPER), "status"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 2 and stopped.stdout == ""
    assert "line 1 (SMTP_PASSWORD): a backslash outside single quotes" in stopped.stderr
