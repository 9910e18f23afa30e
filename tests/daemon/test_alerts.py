"""The digest on a crafted store: what is new, due soon, overdue, and the new flags."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Connection, Engine

from sync_agent.alerts import (
    EMAIL_ROWS_PER_SECTION,
    FIRST_DIGEST_NOTE,
    Digest,
    DigestItem,
    FlagItem,
    build_digest,
    last_digest_at,
    render_html,
    render_text,
    send_digest,
    subject,
    summary_text,
)
from sync_agent.config import Settings, load_settings
from sync_agent.locks import sync_lock_name, try_lock
from sync_agent.notifiers import ALREADY_SENT, FAILED, SENT, Notifier, NotifyOutcome
from sync_agent.report.vn import FLAG_LABELS, STATUS_LABELS
from sync_agent.store.engine import read_connection, write_transaction
from sync_agent.store.state import write_state
from sync_agent.store.tables import sync_runs
from tests.daemon import crafted
from tests.daemon.crafted import ICT, LAST_DIGEST, NOW, TODAY

ALERTS = '''
[alerts]
recipients = ["tiepnhan@example.gov.vn"]
time = "07:30"
due_within_working_days = 2
'''


@pytest.fixture
def settings(write_config: Callable[..., Path]) -> Settings:
    return load_settings(write_config(extra=ALERTS))


def codes(items: Sequence[Any]) -> list[str]:
    return [i["reception_code"] or i["source_id"] for i in items]


def test_digest_sections_on_a_crafted_store(engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    data = digest.as_json()
    # operations.md's keys, then what this agent adds
    assert list(data) == ["date", "new", "due_soon", "overdue", "new_flags", "stale_sources", "report_waiting"]
    assert data["date"] == "2026-02-12"
    # new since the last digest, grouped by source; "I" is after now, "G" before the last digest
    # "J" ended a month before the window (history loaded by a first sync): counted, not listed
    assert codes(data["new"]) == ["HT-77", "HKD-5", "H01-0001", "CT-9"]
    assert digest.new_by_source() == {"civil_status": 1, "household_business": 1, "one_stop": 1,
                                      "residence": 1}
    # the Centre's own register first, as in the report
    assert list(digest.new_by_source()) == ["one_stop", "civil_status", "household_business", "residence"]
    assert digest.backfilled == 2
    # due within 2 working days of Thursday 12 February: today, Friday 13, and Monday 23 (Tết between)
    assert codes(data["due_soon"]) == ["H01-0007", "H01-0001"]
    assert [i["working_days_left"] for i in data["due_soon"]] == [0, 2]
    # overdue: open and due before today; awaiting supplement and ended ones excluded
    assert codes(data["overdue"]) == ["H01-0003"]
    assert data["overdue"][0]["days_overdue"] == 2
    # flags raised since the last digest and still open, about a case or about a lone record
    assert [(f["kind"], f["reception_code"] or f["source_id"]) for f in data["new_flags"]] == [
        ("bypassed_reception", "HT-77"), ("unknown_reception_code", "H01-9999"), ("data_quality", "H01-0001")]
    assert data["new_flags"][1]["source"] == "civil_status"
    assert data["new_flags"][1]["source_id"] == "HT-88"
    assert data["new_flags"][1]["details"] == "cites H01-9999, CCCD [id-redacted]"
    assert data["new_flags"][2]["details"] == {"issue": "no_due_date"}
    for section in ("new", "due_soon", "overdue", "new_flags"):
        for item in data[section]:
            assert {"reception_code", "source_id", "procedure_code", "procedure_name", "source",
                    "due_on"} <= set(item)
            assert item["reception_code"] or item["source_id"]
    # the own id of a one_stop case is its one_stop record's id
    a = next(i for i in data["new"] if i["reception_code"] == "H01-0001")
    assert (a["source"], a["source_id"], a["due_on"]) == ("one_stop", "OS-1", "2026-02-23")
    assert a["applicant"] == "N. V. An"
    text = json.dumps(data, ensure_ascii=False)
    assert "Nguyễn Văn An" not in text and not re.search(r"(?<!\d)\d{12}(?!\d)", text)


def test_first_digest_covers_since_the_previous_working_days_digest_time(engine: Engine,
                                                                         settings: Settings) -> None:
    crafted.load(engine, last_digest=None)
    monday = dt.datetime(2026, 2, 23, 7, 30, tzinfo=ICT)
    digest = build_digest(engine, settings, monday.date(), now=monday)
    assert digest.first
    assert digest.since == dt.datetime(2026, 2, 13, 7, 30, tzinfo=ICT)  # Friday before Tết


def test_the_first_digest_says_its_flags_are_those_of_the_whole_history(engine: Engine,
                                                                        settings: Settings) -> None:
    """The first reconciliation of a year of records raises every flag at once (1.527 in the
    demo): staff must not read them as a day's worth."""
    crafted.load(engine, last_digest=None)
    first = build_digest(engine, settings, TODAY, now=NOW)
    assert FIRST_DIGEST_NOTE in render_text(first) and FIRST_DIGEST_NOTE in html.unescape(render_html(first))
    later = dataclasses.replace(first, first=False)
    assert FIRST_DIGEST_NOTE not in render_text(later) + html.unescape(render_html(later))
    n = len(first.new_flags)
    fresh = dataclasses.replace(first, stale_sources=())
    assert subject(fresh).endswith(f", {n} cảnh báo (đối chiếu lần đầu toàn bộ dữ liệu)")
    assert subject(dataclasses.replace(fresh, first=False)).endswith(f", {n} cảnh báo mới")
    assert summary_text(fresh).endswith(f", {n} cảnh báo (đối chiếu lần đầu toàn bộ dữ liệu).")  # the SMS too
    assert summary_text(dataclasses.replace(fresh, first=False)).endswith(f", {n} cảnh báo mới.")


def test_the_first_digest_does_not_speak_of_a_previous_digest(engine: Engine, settings: Settings) -> None:
    """There was none: its new dossiers are those since its window's start, which it names."""
    crafted.load(engine, last_digest=None)
    first = build_digest(engine, settings, TODAY, now=NOW)
    since = first.since.astimezone(ICT)
    title = f"Hồ sơ mới kể từ {since:%H:%M} ngày {since:%d/%m/%Y} ({len(first.new)})"
    for text in (render_text(first), html.unescape(render_html(first))):
        assert "bản tin trước" not in text and title in text
    later = dataclasses.replace(first, first=False)
    assert f"Hồ sơ mới kể từ bản tin trước ({len(first.new)})" in render_text(later)


def test_texts_are_vietnamese_with_masked_names_and_no_id_numbers(engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    subj = subject(digest)
    assert subj.startswith("[Phường Thạch Khôi] Bản tin hồ sơ ngày 12/02/2026")
    assert "4 mới" in subj and "2 sắp đến hạn" in subj and "1 quá hạn" in subj and "3 cảnh báo" in subj
    for body in (render_text(digest), render_html(digest)):
        assert "Hồ sơ mới" in body and "quá hạn" in body and "H01-0001" in body
        assert "N. V. An" in body and "Nguyễn Văn An" not in body
        assert "012345678901" not in body and "[id-redacted]" in body
        assert "hồ sơ chưa có ngày hẹn trả" in body
        assert "Ngoài ra 2 hồ sơ đã kết thúc từ trước" in body


def test_the_html_part_says_of_a_new_flag_what_the_text_part_says(engine: Engine, settings: Settings) -> None:
    """The dossier's status beside the flag, and where the ones left out can be seen."""
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    flagged = next(f for f in digest.new_flags if f.dossier.status)
    status = STATUS_LABELS[flagged.dossier.status or ""]
    assert status in render_text(digest)
    body = html.unescape(render_html(digest))
    assert f"{status} · {FLAG_LABELS[flagged.kind]}" in body
    cut = html.unescape(render_html(digest, limit=0))
    assert "cảnh báo khác (danh sách đầy đủ: cán bộ CNTT xem trên máy chủ)" in cut
    assert "Thư này do phần mềm đồng bộ dữ liệu gửi tự động." in body


@pytest.mark.parametrize(("details", "text"), [
    ({"issue": "no_reception_time, no_end_time"},
     "hồ sơ chưa có ngày tiếp nhận, đã kết thúc nhưng chưa có ngày kết thúc"),
    ({"issue": "due_before_reception"}, "ngày hẹn trả trước ngày tiếp nhận"),
    ({"one_stop": "in_progress", "residence": "delivered"}, "Một cửa: đang giải quyết; Cư trú: đã trả kết quả"),
])
def test_a_flags_details_read_in_vietnamese_in_the_digest(details: dict[str, str], text: str) -> None:
    """Every data-quality issue, several at once, and the statuses that disagree: as ``flags`` shows them."""
    item = FlagItem(flag_id=1, kind="data_quality", raised_at=NOW, details=details,
                    dossier=DigestItem(source="one_stop", procedure_code="1.001193"))
    assert item.details_text() == text


class Recorder(Notifier):
    name = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[Digest] = []

    @property
    def channel(self) -> str:
        return "test:recorder"

    def build(self, digest: Digest, message_id: str) -> Any:
        return digest

    def send(self, message: Any) -> None:
        raise AssertionError("not used")

    @classmethod
    def from_settings(cls, settings: Settings) -> Sequence[Notifier]:
        return []

    def deliver(self, engine: Engine, digest: Digest, *, force: bool = False,
                now: dt.datetime | None = None, on_sent: Callable[[Connection], None] | None = None
                ) -> NotifyOutcome:
        self.seen.append(digest)
        if self.seen[:-1] and not self.fail and not force:
            return NotifyOutcome(self.channel, ALREADY_SENT)
        return NotifyOutcome(self.channel, FAILED if self.fail else SENT, "down" if self.fail else None)


def test_a_second_send_logs_that_the_digest_had_already_gone(engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    recorder = Recorder()
    with structlog.testing.capture_logs() as logs:
        send_digest(engine, settings, digest, now=NOW, notifiers=[recorder])
        send_digest(engine, settings, digest, now=NOW, notifiers=[recorder])
    sent = [e for e in logs if e["event"].startswith("digest_")]
    assert [e["event"] for e in sent] == ["digest_sent", "digest_already_sent"]
    assert sent[0]["since"].endswith("+07:00") and sent[0]["until"].endswith("+07:00")  # the ward's time


def test_since_moves_only_after_a_successful_send(engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    failed = send_digest(engine, settings, digest, now=NOW, notifiers=[Recorder(fail=True)])
    assert not failed.ok
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == LAST_DIGEST
    ok = send_digest(engine, settings, digest, now=NOW, notifiers=[Recorder()])
    assert ok.ok and ok.sent_now
    with read_connection(engine) as conn:
        assert last_digest_at(conn) == NOW
    # the next day's digest starts where this one ended (the day's own keeps its window)
    later = dt.datetime(2026, 2, 13, 7, 30, tzinfo=ICT)
    nxt = build_digest(engine, settings, TODAY + dt.timedelta(days=1), now=later)
    assert nxt.since == NOW and [i.code for i in nxt.new] == ["H01-0009"]
    assert build_digest(engine, settings, TODAY, now=later).until == NOW


def test_long_sections_count_in_vietnamese_style_and_say_what_was_left_out(engine: Engine,
                                                                          settings: Settings) -> None:
    crafted.load(engine)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    many = dataclasses.replace(digest, new_flags=tuple(digest.new_flags) * 500)
    cut = len(many.new_flags) - EMAIL_ROWS_PER_SECTION
    html, text = render_html(many), render_text(many, limit=EMAIL_ROWS_PER_SECTION)
    for body in (html, text):
        assert "Cảnh báo mới (1.500)" in body
        assert f"... và {cut:,} cảnh báo khác".replace(",", ".") in body
        assert "Từ 07:30 ngày 11/02/2026 đến 07:30 ngày 12/02/2026" in body
    assert "sync-agent alerts`)" not in text  # the staff reading the email have no command line


def running_sync(engine: Engine, source: str, started: dt.datetime) -> None:
    """A sync run of ``source`` as the store shows it while the sync is under way."""
    with write_transaction(engine) as conn:
        conn.execute(sync_runs.insert().values(source=source, started_at=started, status="running"))


def test_a_sync_in_flight_ends_the_window_at_its_start(engine: Engine, settings: Settings) -> None:
    """Its pages are dated when read and stored a moment later: one dated before the digest's
    end but committed after the digest read the store would be in no digest at all."""
    crafted.load(engine)
    started = dt.datetime(2026, 2, 12, 6, 30, tzinfo=ICT)
    running_sync(engine, "residence", started)
    lock = try_lock(engine, sync_lock_name("residence"))  # the sync, holding its source's lock
    assert lock is not None
    with lock:
        digest = build_digest(engine, settings, TODAY, now=NOW)
    assert digest.since == LAST_DIGEST and digest.until == started
    # CT-9, first seen at 07:00 while that sync ran, goes in the next digest, which starts there
    assert "CT-9" not in codes(digest.as_json()["new"])
    assert {"H01-0001", "HKD-5"} <= set(codes(digest.as_json()["new"]))
    with write_transaction(engine) as conn:
        conn.execute(sync_runs.update().values(status="success", finished_at=NOW))
        write_state(conn, "alerts.last_digest_at", started.astimezone(dt.UTC).isoformat(), NOW)
    later = build_digest(engine, settings, TODAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert later.since == started and "CT-9" in codes(later.as_json()["new"])


def test_a_sync_that_ended_during_the_digests_reconciliation_also_ends_the_window(
        engine: Engine, settings: Settings) -> None:
    """The digest's end is read before it reconciles; a page dated before it can commit after
    the reconciliation read the queue, and the sync be over when the digest reads the store."""
    crafted.load(engine)
    started = dt.datetime(2026, 2, 12, 6, 30, tzinfo=ICT)
    with write_transaction(engine) as conn:
        conn.execute(sync_runs.insert().values(source="residence", started_at=started, status="success",
                                               finished_at=NOW + dt.timedelta(seconds=2)))
        # one that ended before the digest's end stored all it had by then: no reason to wait
        conn.execute(sync_runs.insert().values(source="one_stop", started_at=started - dt.timedelta(hours=1),
                                               status="success", finished_at=NOW - dt.timedelta(seconds=1)))
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert digest.until == started and digest.cut_short
    assert "CT-9" not in codes(digest.as_json()["new"])


def test_a_digest_cut_short_says_so_and_where_the_rest_goes(engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    running_sync(engine, "residence", dt.datetime(2026, 2, 12, 6, 30, tzinfo=ICT))
    lock = try_lock(engine, sync_lock_name("residence"))
    assert lock is not None
    with lock:
        digest = build_digest(engine, settings, TODAY, now=NOW)
    note = ("Bản tin chỉ tính đến 06:30 ngày 12/02/2026 vì từ lúc đó có hệ thống đang đồng bộ dữ liệu, chưa xong "
            "khi lập bản tin; hồ sơ và cảnh báo mới sau thời điểm đó sẽ có trong bản tin tiếp theo.")
    assert note in render_text(digest) and note in html.unescape(render_html(digest))
    uncut = build_digest(engine, settings, TODAY, now=NOW)
    assert not uncut.cut_short and note not in render_text(uncut)


def test_a_sync_that_ends_between_the_digests_read_and_its_lock_check_still_ends_the_window(
        engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest's snapshot shows the run 'running'; by the time the lock is checked the sync
    has recorded its end (after the digest's) and let go: it is not a dead process's run."""
    import sync_agent.alerts as alerts_module

    crafted.load(engine)
    started = dt.datetime(2026, 2, 12, 6, 30, tzinfo=ICT)
    running_sync(engine, "residence", started)

    def the_sync_ends_first(engine_: Engine, name: str) -> bool:
        with write_transaction(engine) as conn:
            conn.execute(sync_runs.update().values(status="success", finished_at=NOW + dt.timedelta(seconds=2)))
        return False

    monkeypatch.setattr(alerts_module, "is_held", the_sync_ends_first)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert digest.until == started and digest.cut_short


def test_a_run_left_running_by_a_dead_process_does_not_hold_the_window_back(
        engine: Engine, settings: Settings) -> None:
    crafted.load(engine)
    running_sync(engine, "residence", dt.datetime(2026, 2, 12, 6, 30, tzinfo=ICT))
    lock = try_lock(engine, sync_lock_name("residence"))
    assert lock is not None
    lock.release()  # a sync that took the lock and was killed: nobody holds it now
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert digest.until == NOW and "CT-9" in codes(digest.as_json()["new"])


def synced(engine: Engine, finished: dict[str, dt.datetime]) -> None:
    with write_transaction(engine) as conn:
        for source, at in finished.items():
            conn.execute(sync_runs.insert().values(source=source, started_at=at - dt.timedelta(minutes=1),
                                                   finished_at=at, status="success"))


def test_the_digest_says_which_source_s_data_is_stale(engine: Engine, settings: Settings) -> None:
    """A source down for a day shows no new dossier: staff must not read that as none came."""
    crafted.load(engine)
    hour = dt.timedelta(hours=1)
    synced(engine, {"one_stop": NOW - 30 * hour, "civil_status": NOW - hour, "residence": NOW - hour})
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert [(s.source, s.last_success) for s in digest.stale_sources] == [
        ("one_stop", (NOW - 30 * hour).astimezone(ICT)), ("household_business", None)]
    text = render_text(digest)
    assert ("Lưu ý: dữ liệu hệ thống Một cửa (HTTT giải quyết TTHC thành phố) chưa được cập nhật kể từ 01:30 "
            "ngày 11/02/2026") in text
    assert "Lưu ý: dữ liệu hệ thống Đăng ký hộ kinh doanh (HTTT quốc gia) chưa đồng bộ thành công lần nào" in text
    assert "bản tin có thể thiếu hồ sơ mới của hệ thống này" in html.unescape(render_html(digest))
    stale = digest.as_json()["stale_sources"]
    assert stale == [{"source": "one_stop", "last_success": (NOW - 30 * hour).astimezone(ICT).isoformat()},
                     {"source": "household_business", "last_success": None}]
    assert subject(digest).endswith(" (có hệ thống chưa cập nhật dữ liệu)")
    assert summary_text(digest).endswith(" Lưu ý: 2 hệ thống chưa cập nhật dữ liệu, số liệu có thể thiếu.")
    synced(engine, {"one_stop": NOW - hour, "household_business": NOW - hour})
    fresh = build_digest(engine, settings, TODAY, now=NOW)
    assert fresh.stale_sources == () and "Lưu ý: dữ liệu" not in render_text(fresh)
    assert "chưa cập nhật" not in subject(fresh) + summary_text(fresh)


def test_the_digest_says_the_monthly_report_waits_for_a_source(engine: Engine, settings: Settings) -> None:
    from sync_agent.report.period import Period
    from sync_agent.report_readiness import mark_report_waiting

    crafted.load(engine)
    mark_report_waiting(engine, Period.parse("2026-02"), ("civil_status",), NOW)
    digest = build_digest(engine, settings, TODAY, now=NOW)
    assert digest.report_waiting == ("2026-02", ("civil_status",))
    note = ("Lưu ý: báo cáo tháng 02/2026 chưa được gửi vì đang chờ dữ liệu của hệ thống Hộ tịch (Bộ Tư pháp) "
            "được đồng bộ đến hết kỳ báo cáo")
    assert note in render_text(digest) and note in html.unescape(render_html(digest))
    assert digest.as_json()["report_waiting"] == {"period": "2026-02", "sources": ["civil_status"]}
    # sent by hand meanwhile: the daemon forgets the wait only at its next check, the digest now
    from sync_agent.store.tables import deliveries
    with write_transaction(engine) as conn:
        conn.execute(deliveries.insert().values(key="report:2026-02", channel="email", message_id="<m@x>",
                                                status="sent", created_at=NOW, updated_at=NOW, sent_at=NOW))
    after = build_digest(engine, settings, TODAY, now=NOW)
    assert after.report_waiting is None and "chưa được gửi" not in render_text(after)


def test_a_digest_rebuilt_on_its_saved_window_tells_the_sources_as_they_were_then(
        engine: Engine, settings: Settings) -> None:
    """A retry, a catch-up or `alerts --date D --send --force` rebuilds a day's digest on the
    window of its first send: its warning must be of that time, not of the resend's."""
    from sync_agent.alerts import _fix_window

    crafted.load(engine)
    hour = dt.timedelta(hours=1)
    synced(engine, {s: NOW - hour for s in ("one_stop", "civil_status", "residence", "household_business")})
    _fix_window(engine, settings, build_digest(engine, settings, TODAY, now=NOW), NOW)
    synced(engine, {s: NOW + hour for s in ("one_stop", "civil_status", "residence", "household_business")})
    again = build_digest(engine, settings, TODAY, now=NOW + 3 * 24 * hour)
    assert again.until == NOW and again.stale_sources == ()


def test_a_digest_cut_short_and_rebuilt_tells_the_sources_as_its_first_send_did(
        engine: Engine, settings: Settings) -> None:
    """Cut short, its window ends at a sync's start, before it was made: a retry measuring there
    could call a source stale that the first send did not."""
    from sync_agent.alerts import _fix_window

    crafted.load(engine)
    started = NOW - dt.timedelta(minutes=30)
    running_sync(engine, "residence", started)
    synced(engine, {"one_stop": NOW - dt.timedelta(minutes=10), "civil_status": NOW - dt.timedelta(hours=1),
                    "household_business": NOW - dt.timedelta(hours=1)})
    with write_transaction(engine) as conn:  # residence's last success: 24 h 20 min before the first send
        conn.execute(sync_runs.insert().values(source="residence", started_at=NOW - dt.timedelta(hours=25),
                                               finished_at=NOW - dt.timedelta(hours=24, minutes=20),
                                               status="success"))
    lock = try_lock(engine, sync_lock_name("residence"))  # the sync, holding its source's lock
    assert lock is not None
    with lock:
        first = build_digest(engine, settings, TODAY, now=NOW)
        assert first.cut_short and first.until == started
        _fix_window(engine, settings, first, NOW)
    again = build_digest(engine, settings, TODAY, now=NOW + dt.timedelta(hours=2))
    assert [s.source for s in again.stale_sources] == [s.source for s in first.stale_sources] == ["residence"]


def test_two_first_sends_of_a_cut_short_digest_carry_one_stale_list(engine: Engine, settings: Settings) -> None:
    """The 07:30 job and a person's `alerts --send` a few minutes later, both cut short at one
    sync's start: same window, but each measured the sources at its own making."""
    from sync_agent.alerts import _fix_window

    crafted.load(engine)
    started = NOW - dt.timedelta(minutes=30)
    running_sync(engine, "residence", started)
    synced(engine, {s: NOW - dt.timedelta(hours=1) for s in ("one_stop", "civil_status", "household_business")})
    with write_transaction(engine) as conn:  # residence: 23 h 55 min old at 07:30, stale by 07:36
        conn.execute(sync_runs.insert().values(source="residence", started_at=NOW - dt.timedelta(hours=25),
                                               finished_at=NOW - dt.timedelta(hours=23, minutes=55),
                                               status="success"))
    lock = try_lock(engine, sync_lock_name("residence"))
    assert lock is not None
    with lock:
        job = build_digest(engine, settings, TODAY, now=NOW)
        person = build_digest(engine, settings, TODAY, now=NOW + dt.timedelta(minutes=6))
        assert (job.until, person.until) == (started, started)
        assert job.stale_sources == () and [s.source for s in person.stale_sources] == ["residence"]
        _fix_window(engine, settings, job, NOW)
        assert _fix_window(engine, settings, person, NOW + dt.timedelta(minutes=6)).stale_sources == ()


def test_the_webhook_names_every_source_it_speaks_of_as_staff_read_it() -> None:
    """A receiver (an SMS gateway) shows the systems' names: those of the warnings too, and no
    name for the placeholder of a flag whose record is gone."""
    from sync_agent.alerts import StaleSource, webhook_payload

    gone = FlagItem(flag_id=1, kind="data_quality", raised_at=NOW, dossier=DigestItem(source="?", procedure_code=""))
    digest = Digest(date=TODAY, since=LAST_DIGEST, until=NOW, new_flags=(gone,),
                    stale_sources=(StaleSource("residence", None),), report_waiting=("2026-01", ("civil_status",)))
    assert webhook_payload(digest)["source_labels"] == {"civil_status": "Hộ tịch (Bộ Tư pháp)",
                                                       "residence": "Cư trú (Bộ Công an)"}
