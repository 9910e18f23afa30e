"""Cron jobs fire at Asia/Ho_Chi_Minh times whatever the host's clock zone (TZ=UTC here)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sync_agent.calendar import WorkingCalendar
from sync_agent.config import load_settings
from sync_agent.daemon import Daemon, JobSpec, job_specs, next_working_digest, report_send_moment
from sync_agent.store.engine import create_store_engine

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
PLUS7 = dt.timedelta(hours=7)
ALERTS = '''
[alerts]
recipients = ["tiepnhan@example.gov.vn"]
time = "07:30"

[report]
recipients = ["ttpvhcc@example.gov.vn"]
send_day = 15
send_time = "08:00"
'''


@pytest.fixture
def host_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _specs(write_config: Callable[..., Path], now: dt.datetime) -> dict[str, JobSpec]:
    settings = load_settings(write_config(extra=ALERTS))
    return {s.id: s for s in job_specs(settings, now)}


def test_jobs_have_explicit_ids_and_triggers_in_the_ward_zone(write_config: Callable[..., Path],
                                                               host_in_utc: None) -> None:
    assert time.localtime().tm_gmtoff == 0  # the host clock really is UTC
    now = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)  # 14:00 in Hanoi, a Friday
    specs = _specs(write_config, now)
    assert set(specs) == {"sync:one_stop", "sync:civil_status", "sync:residence", "sync:household_business",
                          "reconcile", "alerts:digest", "report:monthly"}
    for spec in specs.values():
        assert spec.trigger.timezone == ICT
        assert spec.misfire_grace_time is not None
    digest = specs["alerts:digest"]
    fire = digest.next_fire_time(now)
    assert fire == dt.datetime(2026, 11, 28, 7, 30, tzinfo=ICT)
    assert fire.utcoffset() == PLUS7 and fire.astimezone(dt.UTC).hour == 0
    # the trigger fires daily; the job skips Saturday and Sunday, so the next digest is Monday
    assert next_working_digest(digest, WorkingCalendar(), now) == dt.datetime(2026, 11, 30, 7, 30, tzinfo=ICT)
    report = specs["report:monthly"].next_fire_time(now)
    assert report == dt.datetime(2026, 12, 15, 8, 0, tzinfo=ICT) and report.utcoffset() == PLUS7
    # the first sync comes seconds after start, then every every_minutes
    sync = specs["sync:one_stop"]
    first = sync.next_fire_time(now)
    assert first is not None
    assert dt.timedelta(0) < first - now < dt.timedelta(seconds=10)
    second = sync.trigger.get_next_fire_time(first, first + dt.timedelta(seconds=1))
    assert second - first == dt.timedelta(minutes=15)


def test_the_digest_after_tet_is_on_the_monday_after(write_config: Callable[..., Path],
                                                     host_in_utc: None) -> None:
    now = dt.datetime(2026, 2, 13, 8, 0, tzinfo=ICT)  # Friday before Tết, after the digest
    digest = _specs(write_config, now)["alerts:digest"]
    assert next_working_digest(digest, WorkingCalendar(), now) == dt.datetime(2026, 2, 23, 7, 30, tzinfo=ICT)


def test_the_scheduler_itself_is_in_the_ward_zone(write_config: Callable[..., Path], host_in_utc: None,
                                                   tmp_path: Path) -> None:
    settings = load_settings(write_config(extra=ALERTS))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    daemon = Daemon(settings, engine)
    assert daemon.scheduler.timezone == ICT
    assert daemon.scheduler._job_defaults == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}


def test_report_send_moment_and_catch_up_boundary(write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(extra=ALERTS))
    # the period 2026-11 ends on 14 November; its report is due on the 15th at 08:00, ward time
    assert report_send_moment(dt.date(2026, 11, 14), settings) == dt.datetime(2026, 11, 15, 8, 0, tzinfo=ICT)


def test_a_separate_process_with_tz_utc_computes_the_same_times(write_config: Callable[..., Path]) -> None:
    path = write_config(extra=ALERTS)
    code = f"""
import datetime as dt, json
from sync_agent.config import load_settings
from sync_agent.daemon import job_specs
now = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
specs = {{s.id: s for s in job_specs(load_settings({str(path)!r}), now)}}
ids = ("alerts:digest", "report:monthly")
print(json.dumps({{k: specs[k].next_fire_time(now).isoformat() for k in ids}}))
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TZ": "UTC"},
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == {"alerts:digest": "2026-11-28T07:30:00+07:00",
                                      "report:monthly": "2026-12-15T08:00:00+07:00"}
