"""Fixtures for the daemon, alerts, status and logs tests: a config file and a store for it."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

SOURCES = ("one_stop", "civil_status", "residence", "household_business")

CREDENTIALS: Mapping[str, str] = {
    "one_stop": 'username = "tiepnhan"\npassword = "mat-khau-1"',
    "civil_status": 'client_id = "phuong-11311"\nclient_secret = "bi-mat-2"',
    "residence": 'api_key = "khoa-3"',
    "household_business": 'username = "phuong-11311"\npassword = "mat-khau-4"',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(db_url: str, base_urls: Mapping[str, str], *, log_file: str = "logs/agent.jsonl",
                credentials: Mapping[str, str] = CREDENTIALS, extra: str = "",
                every_minutes: int = 15) -> str:
    parts = [f'''[agent]
ward_code = "11311"
ward_name = "Phường Thạch Khôi"
timezone = "Asia/Ho_Chi_Minh"
database_url = "{db_url}"
id_hash_key = "test-key"
log_file = "{log_file}"
''']
    for name, url in base_urls.items():
        own = credentials.get(name, "")
        defaults = {"every_minutes": str(every_minutes), "max_attempts": "1", "request_deadline": "5"}
        common = "".join(f"{k} = {v}\n" for k, v in defaults.items()
                         if not re.search(rf"^{k}\s*=", own, re.M))
        parts.append(f'''[connectors.{name}]
type = "{name}"
base_url = "{url}"
{common}{own}
''')
    parts.append(extra)
    return "\n".join(parts)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(base_urls=..., db_url=..., extra=...)`` -> the config file's path."""
    def write(base_urls: Mapping[str, str] | None = None, db_url: str | None = None, **kw: object) -> Path:
        urls = dict(base_urls) if base_urls is not None else {
            s: f"http://127.0.0.1:{free_port()}" for s in SOURCES}
        path = tmp_path / "sync-agent.toml"
        path.write_text(config_text(db_url or f"sqlite:///{tmp_path / 'store.db'}", urls, **kw),  # type: ignore[arg-type]
                        encoding="utf-8")
        return path
    return write
