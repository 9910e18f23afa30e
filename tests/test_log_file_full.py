"""A log file on a full disk: said once on stderr, and the log takes up again on a line of its own.

Real writes, refused for real: the process may not grow files past a size (``RLIMIT_FSIZE``,
whose soft limit it then raises again, as space freed on a disk would).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import resource, signal, sys
    from pathlib import Path
    import structlog
    from sync_agent import logging as agent_logging

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log_file = Path(sys.argv[1])
    agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
    log = structlog.get_logger("test")
    log.info("before", n=0)
    size = log_file.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300, resource.RLIM_INFINITY))
    for n in range(1, 40):  # the disk fills in the middle of one of them
        log.info("while_full", n=n, padding="x" * 100)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    log.info("after", n=40)
''')


def test_a_full_disk_is_said_once_and_the_next_event_starts_its_own_line(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.jsonl"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log_file)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    said = done.stderr.splitlines()
    assert said == [f"sync-agent: cannot write the log file {log_file}: File too large; its events are lost "
                    "until it can (warnings and errors still come here)",
                    f"sync-agent: the log file {log_file} is written again"]
    lines = log_file.read_text(encoding="utf-8").splitlines()
    events = []
    for line in lines:
        try:
            events.append(json.loads(line)["event"])
        except ValueError:
            events.append("(cut short)")
    assert events[0] == "before" and events[-1] == "after"
    assert events.count("(cut short)") <= 1  # at most the one the disk cut; "after" not glued to it


def test_an_event_that_cannot_be_written_out_is_not_taken_for_a_full_disk(tmp_path: Path) -> None:
    script = textwrap.dedent('''
        import sys
        from pathlib import Path
        import structlog
        from sync_agent import logging as agent_logging

        class Unshowable:
            def __repr__(self) -> str:
                raise ValueError("a bug of the agent's")

        agent_logging.configure(level="INFO", log_file=Path(sys.argv[1]), stderr_level="CRITICAL")
        structlog.get_logger("test").info("odd", value=Unshowable())
    ''')
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "agent.jsonl")], capture_output=True,
                          text=True, timeout=60)
    assert "--- Logging error ---" in done.stderr and "a bug of the agent's" in done.stderr
    assert "cannot write the log file" not in done.stderr


def test_a_line_a_full_disk_cut_short_in_an_earlier_process_is_ended_before_the_next_event(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.jsonl"
    log_file.write_text('{"event": "before"}\n{"event": "sync_fin', encoding="utf-8")  # the disk filled here
    script = textwrap.dedent('''
        import sys
        from pathlib import Path
        import structlog
        from sync_agent import logging as agent_logging
        agent_logging.configure(level="INFO", log_file=Path(sys.argv[1]), stderr_level="CRITICAL")
        structlog.get_logger("test").info("sync_started")
    ''')
    done = subprocess.run([sys.executable, "-c", script, str(log_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ['{"event": "before"}', '{"event": "sync_fin']
    assert json.loads(lines[2])["event"] == "sync_started"


def test_a_log_file_that_cannot_be_opened_again_is_said_once_and_no_event_raises(tmp_path: Path) -> None:
    script = textwrap.dedent('''
        import sys
        from pathlib import Path
        import structlog
        from sync_agent import logging as agent_logging
        log_file = Path(sys.argv[1])
        log_file.symlink_to("/dev/full")  # every write refused
        agent_logging.configure(level="INFO", log_file=log_file, stderr_level="CRITICAL")
        log = structlog.get_logger("test")
        log.info("one")
        log_file.unlink()
        log_file.mkdir()  # and now it cannot even be opened again
        log.info("two")
        log.info("three", source_id="HS-\\udc80")
        print("went on")
    ''')
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "agent.jsonl")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "went on"
    assert done.stderr.count("cannot write the log file") == 1 and "Traceback" not in done.stderr


def test_a_value_holding_half_a_character_is_logged_with_its_escape(tmp_path: Path) -> None:
    script = textwrap.dedent('''
        import sys
        from pathlib import Path
        import structlog
        from sync_agent import logging as agent_logging
        agent_logging.configure(level="INFO", log_file=Path(sys.argv[1]), stderr_level="CRITICAL")
        structlog.get_logger("test").warning("record_quarantined", source_id="HS-\\udc80x")
    ''')
    log_file = tmp_path / "agent.jsonl"
    done = subprocess.run([sys.executable, "-c", script, str(log_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Logging error" not in done.stderr, done.stderr
    assert '"source_id": "HS-\\udc80x"' in log_file.read_text(encoding="utf-8")
