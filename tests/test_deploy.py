"""The files a ward IT officer installs beside the agent: the systemd unit and the logrotate
rules, checked by the real tools and against the agent's own behaviour."""

from __future__ import annotations

import configparser
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from sync_agent import logging as agent_logging
from sync_agent.daemon import SHUTDOWN_BUDGET
from sync_agent.logs import read_log

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "sync-agent.service"
LOGROTATE = ROOT / "deploy" / "logrotate.conf"
LOG_PATH = "/var/log/sync-agent/sync-agent.jsonl"


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
