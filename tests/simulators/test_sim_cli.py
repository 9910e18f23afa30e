"""``python -m connectors.wardsim``: serve until a signal, export JSONL, parse ``--fault``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.wardsim import SimClock, SimServer
from connectors.wardsim.cli import apply_fault, main
from connectors.wardsim.demo import DEMO_ENV, source_command, write_demo_env
from tests.simulators import clients as c
from tests.simulators.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_urls_and_exits_0_on_sigterm() -> None:
    args = [
        sys.executable,
        "-m",
        "connectors.wardsim",
        "serve",
        "--size",
        "300",
        "--port-base",
        "0",
        "--now",
        NOW.isoformat(),
        "--pin-clock",
        "--fault",
        "one_stop:fail_next=1",
    ]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in range(4)]
        urls = {line[0]: line[1] for line in lines}
        assert list(urls) == ["one_stop", "civil_status", "residence", "household_business"]
        session = c.os_login(urls["one_stop"])["session"]
        assert c.os_call(urls["one_stop"], session).status_code == 503  # the --fault
        assert c.os_call(urls["one_stop"], session).json()["error_code"] == "00"
        assert c.hk_call(urls["household_business"]).json()["TongSo"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_export_then_serve_from_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cutru.jsonl"
    assert (
        main(
            ["export", "--source", "residence", "--size", "200", "--now", NOW.isoformat(), "--out", str(out)]
        )
        == 0
    )
    assert "residence:" in capsys.readouterr().out
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert {"id", "updated_at", "status"} <= set(first)
    with SimServer("residence", clock=SimClock(NOW)) as server:
        n = server.load_jsonl(out)
        assert n > 0 and c.rs_all(server.url)


def test_fault_specs() -> None:
    servers = {"one_stop": SimServer("one_stop"), "residence": SimServer("residence")}
    apply_fault(servers, "latency=0.25")
    apply_fault(servers, "residence:throttle_next=2")
    apply_fault(servers, "one_stop:duplicates")
    assert servers["one_stop"].faults.latency("data") == 0.25
    assert servers["residence"].faults.before("data") is not None
    assert servers["one_stop"].faults.duplicates and not servers["residence"].faults.duplicates
    with pytest.raises(SystemExit):
        apply_fault(servers, "no_such_fault=1")
    with pytest.raises(SystemExit):
        apply_fault(servers, "civil_status:duplicates")


def test_the_demo_env_file_holds_the_demo_secrets_in_effect_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DEMO_ENV.items():  # a shell that sourced demo.env before runs the demo again
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HKD_PASSWORD", "a-real-secret")
    path = write_demo_env(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "export SYNC_AGENT_ID_HASH_KEY=demo-only-key-not-for-production" in text
    assert "HKD_PASSWORD" not in text and "a-real-secret" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("out", [".", "my data"], ids=["the working directory", "a path with a space"])
def test_the_demo_env_file_is_sourced_as_the_hint_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / out).mkdir(exist_ok=True)
    write_demo_env(tmp_path / out)
    command = source_command(Path(out) / "demo.env")  # as the demo names it, run with --out OUT
    env = {"PATH": "/usr/bin:/bin"}  # sh looks a bare name up here, not in the working directory
    shown = subprocess.run(["sh", "-c", f"{command} && echo \"$SYNC_AGENT_ID_HASH_KEY\""], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == DEMO_ENV["SYNC_AGENT_ID_HASH_KEY"]
