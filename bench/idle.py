"""Benchmark: the idle daemon over one hour of schedule, against a sleeping Python process.

The agent runs for months on a ward server next to other work, so what it costs while nothing
happens matters more than its peak speed. "Idle" here is the normal state: the four sources
have nothing new, the daemon wakes every ``every_minutes`` (15) per source to ask them, and the
hourly reconciliation finds nothing to do.

An hour is measured in two parts, both on the same daemon set-up (four simulators in a separate
process, the store already synced, so the daemon starts idle):

A. *The hour's scheduled work, compressed*: ``sync-agent run --time-scale K`` (hidden option)
   runs every interval job K times faster, so the hour's 16 syncs and its reconciliation happen
   in 3600/K seconds of real time. The CPU time the daemon uses in that window is the CPU time
   of an hour's jobs (plus 3600/K seconds of idle overhead).
B. *The floor, in real time*: ``sync-agent run`` with the real schedule, measured for
   ``--idle-minutes`` of real time after its start-up syncs: no job falls in that window, so
   this is the pure cost of a waiting scheduler.

Hour CPU = A's CPU seconds + B's CPU rate x (3600 - 3600/K); CPU % = that / 3600. RSS is the
highest resident set seen in either part (sampled twice a second) and the kernel's high-water
mark. The baseline, ``python -c 'import time; time.sleep(3600)'``, is measured exactly like B
over the same real time. Resident memory and CPU are read from /proc (Linux only).

    .venv/bin/python bench/idle.py                          # K=60, 10 real minutes for B
    .venv/bin/python bench/idle.py --idle-minutes 2          # quicker, noisier
    .venv/bin/python bench/idle.py --write                   # also update bench/README.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
README = ROOT / "bench" / "README.md"
START, END = "<!-- bench:idle -->", "<!-- /bench:idle -->"
HOUR = 3600.0


@dataclass
class Sample:
    """CPU seconds used and memory seen over one measured window of one process."""

    seconds: float
    cpu: float
    rss_max_mb: float
    hwm_mb: float

    @property
    def cpu_rate(self) -> float:
        return self.cpu / self.seconds


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / TICK


def mem_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pid: int, seconds: float) -> Sample:
    t0, c0 = time.monotonic(), cpu_seconds(pid)
    rss = mem_mb(pid, "VmRSS")
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(0.5, left))
        rss = max(rss, mem_mb(pid, "VmRSS"))
    elapsed = time.monotonic() - t0
    return Sample(elapsed, cpu_seconds(pid) - c0, rss, mem_mb(pid, "VmHWM"))


def free_port_base() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 3 < 65535 and all(_free(base + i) for i in range(4)):
            return base
    raise RuntimeError("no four free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_simulators(size: int) -> tuple[subprocess.Popen[bytes], int]:
    base = free_port_base()
    proc = subprocess.Popen([PY, "-m", "connectors.wardsim", "serve", "--size", str(size), "--seed", "11",
                             "--port-base", str(base)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            for i in range(4):
                socket.create_connection(("127.0.0.1", base + i), timeout=1).close()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("simulators died") from None
            time.sleep(0.3)
    raise RuntimeError("simulators did not start")


def write_config(folder: Path, base: int) -> Path:
    from connectors.wardsim import DEFAULT_CREDENTIALS as C

    cfg = folder / "idle.toml"
    cfg.write_text(textwrap.dedent(f'''
        [agent]
        ward_code = "11311"
        ward_name = "Phường Thạch Khôi"
        database_url = "sqlite:///{folder}/idle.db"
        id_hash_key = "bench-key"
        log_file = "{folder}/idle.jsonl"

        [connectors.one_stop]
        type = "one_stop"
        base_url = "http://127.0.0.1:{base}"
        username = "{C["one_stop"].username}"
        password = "{C["one_stop"].password}"

        [connectors.civil_status]
        type = "civil_status"
        base_url = "http://127.0.0.1:{base + 1}"
        client_id = "{C["civil_status"].username}"
        client_secret = "{C["civil_status"].password}"

        [connectors.residence]
        type = "residence"
        base_url = "http://127.0.0.1:{base + 2}"
        api_key = "{C["residence"].api_key}"

        [connectors.household_business]
        type = "household_business"
        base_url = "http://127.0.0.1:{base + 3}"
        username = "{C["household_business"].username}"
        password = "{C["household_business"].password}"
    '''), encoding="utf-8")
    return cfg


def log_events(folder: Path) -> list[dict[str, object]]:
    path = folder / "idle.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def start_daemon(cfg: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PY, "-m", "sync_agent", "--config", str(cfg), "run", *extra], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_syncs(folder: Path, proc: subprocess.Popen[bytes], count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(1 for e in log_events(folder) if e.get("event") == "sync_finished")
        if done >= count:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError("the daemon's syncs did not finish")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    return proc.wait(timeout=30)


IMPORTS = (
    "import datetime, sync_agent.cli, sync_agent.daemon, sync_agent.calendar as c\n"
    "c.WorkingCalendar().is_working_day(datetime.date(2026, 2, 17))\n"
    "print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024)"
)


def imports_mb() -> float:
    """Resident memory of a process that only imports what the daemon imports (no store, no jobs)."""
    out = subprocess.run([PY, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def run(size: int, scale: float, idle_minutes: float) -> dict[str, object]:
    sims, base = start_simulators(size)
    try:
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            cfg = write_config(folder, base)
            # the store is already up to date when the daemon starts: idle means "nothing new"
            subprocess.run([PY, "-m", "sync_agent", "--config", str(cfg), "sync"], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
            synced_before = sum(1 for e in log_events(folder) if e.get("event") == "sync_finished")

            # A: an hour of schedule at `scale` times speed
            daemon = start_daemon(cfg, "--time-scale", str(scale))
            wait_for_syncs(folder, daemon, synced_before + 4)
            before = sum(1 for e in log_events(folder) if e.get("event") == "sync_finished")
            a = measure(daemon.pid, HOUR / scale)
            syncs_a = sum(1 for e in log_events(folder) if e.get("event") == "sync_finished") - before
            rc_a = stop(daemon)

            # B: the real schedule, after its start-up syncs: the waiting floor
            synced = sum(1 for e in log_events(folder) if e.get("event") == "sync_finished")
            daemon = start_daemon(cfg)
            wait_for_syncs(folder, daemon, synced + 4)
            time.sleep(2)
            b = measure(daemon.pid, idle_minutes * 60)
            rc_b = stop(daemon)

            # the same interpreter, without anything a developer's PYTHONPATH might preload
            clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            baseline_proc = subprocess.Popen([PY, "-c", "import time; time.sleep(3600)"], env=clean)
            time.sleep(1)
            base_s = measure(baseline_proc.pid, idle_minutes * 60)
            baseline_proc.kill()
            baseline_proc.wait()
    finally:
        sims.terminate()
        sims.wait(timeout=30)
    hour_cpu = a.cpu + b.cpu_rate * (HOUR - a.seconds)
    return {
        "size": size, "scale": scale, "idle_minutes": idle_minutes,
        "a": a.__dict__, "b": b.__dict__, "baseline": base_s.__dict__, "syncs_in_a": syncs_a,
        "exit_codes": [rc_a, rc_b],
        "agent_hour_cpu_s": hour_cpu, "agent_cpu_pct": 100 * hour_cpu / HOUR,
        "agent_rss_mb": max(a.rss_max_mb, b.rss_max_mb), "agent_hwm_mb": max(a.hwm_mb, b.hwm_mb),
        "baseline_hour_cpu_s": base_s.cpu_rate * HOUR, "baseline_cpu_pct": 100 * base_s.cpu_rate,
        "baseline_rss_mb": base_s.rss_max_mb, "imports_mb": imports_mb(),
    }


def table(r: dict[str, object], command: str) -> str:
    a, b, code_mb = r["a"], r["b"], r.get("imports_mb", 0.0)
    assert isinstance(a, dict) and isinstance(b, dict) and isinstance(code_mb, float)
    intro = textwrap.fill(
        f"Four simulators ({r['size']} dossiers) in another process, the store synced beforehand. "
        f"A: the hour's schedule played {r['scale']:g}x faster ({a['seconds']:.0f} s real, "
        f"{r['syncs_in_a']} scheduled syncs; a real hour has 16, plus the hourly reconciliation). "
        f"B: {r['idle_minutes']:g} real minute(s) of the real schedule after the start-up syncs, "
        "the waiting floor, extrapolated to the rest of the hour. The baseline is measured like B "
        "and extrapolated the same way.", 100)
    parts = textwrap.fill(
        f"Parts: A used {a['cpu']:.2f} CPU s in {a['seconds']:.0f} s (the hour's jobs); B used "
        f"{b['cpu']:.2f} CPU s in {b['seconds']:.0f} s ({100 * b['cpu'] / b['seconds']:.3f} % while "
        "waiting). CPU time is read from /proc in 10 ms ticks. Of the resident memory, "
        f"{code_mb:.0f} MB is the code itself: a process that only imports what the "
        "daemon imports (its jobs render and send the report and the alerts) and builds "
        "the holiday calendar. Goal: under 100 MB RSS and under 1 % CPU.",
        100)
    rows = [
        "| per hour of schedule | CPU seconds | CPU % | peak RSS MB (sampled) | RSS high-water MB |",
        "|---|---:|---:|---:|---:|",
        f"| `sync-agent run`, idle | {r['agent_hour_cpu_s']:.2f} | {r['agent_cpu_pct']:.3f} "
        f"| {r['agent_rss_mb']:.1f} | {r['agent_hwm_mb']:.1f} |",
        f"| `python -c 'import time; time.sleep(3600)'` | {r['baseline_hour_cpu_s']:.2f} "
        f"| {r['baseline_cpu_pct']:.3f} | {r['baseline_rss_mb']:.1f} | - |",
    ]
    return "\n".join([START, "## Idle daemon (`bench/idle.py`)", "", f"`{command}`", "", intro, "",
                      *rows, "", parts, END, ""])


def write_section(text: str) -> None:
    current = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1]
        updated = head + text.rstrip("\n") + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    README.write_text(updated, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=5000, help="dossiers the simulators serve")
    ap.add_argument("--scale", type=float, default=60.0, help="speed-up of part A")
    ap.add_argument("--idle-minutes", type=float, default=10.0, help="real minutes of part B")
    ap.add_argument("--write", action="store_true", help="update the section in bench/README.md")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    result = run(args.size, args.scale, args.idle_minutes)
    command = "python bench/idle.py" + "".join(
        f" --{k.replace('_', '-')} {v:g}" for k, v in (("size", args.size), ("scale", args.scale),
                                                        ("idle_minutes", args.idle_minutes)))
    text = table(result, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
