"""The daemon in a subprocess, with the simulators in the test process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.wardsim import DEFAULT_CREDENTIALS, SimServer
from tests.daemon.conftest import config_text

ROOT = Path(__file__).resolve().parents[2]


def sim_credentials() -> dict[str, str]:
    c = DEFAULT_CREDENTIALS
    return {
        "one_stop": f'username = "{c["one_stop"].username}"\npassword = "{c["one_stop"].password}"',
        "civil_status": f'client_id = "{c["civil_status"].username}"\n'
                        f'client_secret = "{c["civil_status"].password}"',
        "residence": f'api_key = "{c["residence"].api_key}"',
        "household_business": f'username = "{c["household_business"].username}"\n'
                              f'password = "{c["household_business"].password}"',
    }


def write_sim_config(folder: Path, servers: Mapping[str, SimServer], *,
                     per_source: Mapping[str, str] | None = None, extra: str = "") -> Path:
    creds = sim_credentials()
    for source, lines in (per_source or {}).items():
        creds[source] = creds[source] + "\n" + lines
    path = folder / "sync-agent.toml"
    path.write_text(config_text(f"sqlite:///{folder / 'store.db'}", {s: v.url for s, v in servers.items()},
                                credentials=creds, extra=extra), encoding="utf-8")
    return path


@dataclass
class DaemonProc:
    proc: subprocess.Popen[bytes]
    config: Path
    log_file: Path
    stderr_path: Path
    started: float = field(default_factory=time.monotonic)

    def events(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        out = []
        for line in self.log_file.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):  # a line being written
                out.append(json.loads(line))
        return out

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 30.0,
                 what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self.events())
            if result:
                return result
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + self.stderr_path.read_text(encoding="utf-8")[-3000:])
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        found: dict[str, Any] = self.wait_for(
            lambda evs: next((e for e in evs if e.get("event") == name), None), timeout, name)
        return found

    def signal_and_wait(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - t0

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_daemon(config: Path, *, every_seconds: float | None = None, tag: str = "") -> DaemonProc:
    """``python -m sync_agent --config CONFIG run`` with the host clock in UTC."""
    args = [sys.executable, "-m", "sync_agent", "--config", str(config), "run"]
    if every_seconds is not None:
        args += ["--every-seconds", str(every_seconds)]
    stderr_path = config.parent / f"daemon{tag}-{time.monotonic_ns()}.stderr"
    err = open(stderr_path, "wb")  # noqa: SIM115 - the child owns it
    env = {**os.environ, "TZ": "UTC"}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()
    return DaemonProc(proc=proc, config=config, log_file=config.parent / "logs" / "agent.jsonl",
                      stderr_path=stderr_path)
