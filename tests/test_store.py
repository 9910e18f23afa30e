"""The store suite: runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select

from sync_agent.errors import ConfigError
from sync_agent.model import Channel, DossierRecord, QuarantinedRecord, Status
from sync_agent.store.engine import open_engine, read_connection, schema_is_current, write_transaction
from sync_agent.store.records import save_quarantined, save_records
from sync_agent.store.runs import advance_cursor, get_cursor
from sync_agent.store.tables import dossiers, metadata, quarantine

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 2, 15, 8, 0, tzinfo=TZ)


def rec(source_id: str, status: Status = Status.RECEIVED, updated_hour: int = 8,
        **kw: object) -> DossierRecord:
    base: dict[str, object] = dict(
        source="one_stop", source_id=source_id, procedure_code="1.001193", status=status,
        source_updated_at=dt.datetime(2026, 2, 1, updated_hour, tzinfo=TZ),
        received_at=dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC), channel=Channel.ONLINE,
        raw={"MaHoSo": source_id},
    )
    base.update(kw)
    return DossierRecord(**base)  # type: ignore[arg-type]


def test_migrations_match_the_tables(engine: Engine) -> None:
    assert schema_is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_the_head_revision_in_the_code_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from sync_agent.store.engine import HEAD_REVISION, MIGRATIONS

    assert ScriptDirectory(str(MIGRATIONS)).get_heads() == [HEAD_REVISION]


def test_a_store_at_an_older_revision_is_brought_to_the_head_at_start(db_url: str) -> None:
    from alembic import command

    from sync_agent.store.engine import HEAD_REVISION, _alembic_config, create_store_engine, stored_revisions

    eng = create_store_engine(db_url)
    try:
        assert stored_revisions(eng) is None
        with eng.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "0006")
        assert stored_revisions(eng) == {"0006"}
    finally:
        eng.dispose()
    eng = open_engine(db_url)
    try:
        assert stored_revisions(eng) == {HEAD_REVISION}
        assert schema_is_current(eng)
    finally:
        eng.dispose()


def store_at(db_url: str, revision: str) -> None:
    from alembic import command

    from sync_agent.store.engine import _alembic_config, create_store_engine

    eng = create_store_engine(db_url)
    try:
        with eng.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), revision)
    finally:
        eng.dispose()


def test_an_upgrade_is_logged_with_both_revisions(db_url: str) -> None:
    """An operator must be able to tell when, and by which command, the store was upgraded."""
    from structlog.testing import capture_logs

    from sync_agent.store.engine import HEAD_REVISION

    store_at(db_url, "0007")
    with capture_logs() as logs:
        open_engine(db_url).dispose()
        open_engine(db_url).dispose()  # current now: nothing more to say
    assert [(e["event"], e["from_revision"], e["to_revision"]) for e in logs if e["event"] == "store_migrated"] == [
        ("store_migrated", "0007", HEAD_REVISION)]


def test_an_upgrade_cuts_a_runs_stored_error_to_the_failed_statements_first_line(db_url: str) -> None:
    """Errors stored before 2f8167b held the page's parameters: applicants' names, payloads."""
    from sqlalchemy import text

    from sync_agent.store.engine import create_store_engine
    from sync_agent.store.runs import start_run

    store_at(db_url, "0009")
    eng = create_store_engine(db_url)
    first = "DataError: (psycopg.DataError) PostgreSQL text fields cannot contain NUL (0x00) bytes"
    with eng.begin() as conn:
        failed = start_run(conn, "one_stop", NOW, None, None, NOW)
        plain = start_run(conn, "residence", NOW, None, None, NOW)
        conn.execute(text("UPDATE sync_runs SET error = :e WHERE id = :i"),
                     {"e": first + "\n[SQL: INSERT INTO dossiers ...]\n[parameters: [{'applicant_name': "
                                   "'Nguyễn Văn An'}]]\n(Background on this error at: https://sqlalche.me/e/21/9h9h)",
                      "i": failed})
        conn.execute(text("UPDATE sync_runs SET error = :e WHERE id = :i"),
                     {"e": "TransientSourceError: gave up after 5 attempt(s): GET /dossiers: HTTP 503", "i": plain})
    eng.dispose()
    eng = open_engine(db_url)
    with read_connection(eng) as conn:
        errors = dict(conn.execute(text("SELECT id, error FROM sync_runs")).all())
    eng.dispose()
    assert errors == {failed: first + " [the statement and its values are no longer kept]",
                      plain: "TransientSourceError: gave up after 5 attempt(s): GET /dossiers: HTTP 503"}


def test_a_store_a_newer_release_upgraded_is_refused_in_one_line(db_url: str) -> None:
    """Going back to an older release after an upgrade gave Alembic's 99-line traceback."""
    from sqlalchemy import text

    from sync_agent.store.engine import create_store_engine

    open_engine(db_url).dispose()
    eng = create_store_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    eng.dispose()
    with pytest.raises(ConfigError) as caught:
        open_engine(db_url)
    assert caught.value.key == "agent.database_url"
    assert "newer release of sync-agent (schema revision 0099" in str(caught.value)
    assert "\n" not in str(caught.value)


def hold_the_daemon_lock(db_url: str, then: str = "") -> subprocess.Popen[str]:
    """Another process takes the store's daemon lock (``then``: Python run after, with ``lock``)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sync_agent.locks import try_lock; "
         "from sync_agent.store.engine import create_store_engine; "
         f"lock = try_lock(create_store_engine(sys.argv[1]), 'daemon'); {then or 'pass'}; print('held', flush=True); "
         "time.sleep(60)", db_url], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("host", ["this machine", "another container"])
def test_a_store_is_not_upgraded_under_a_daemon_of_the_older_release(
        db_url: str, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trying the new release while the old daemon ran upgraded the store under it (even a
    `run` that then refused), and the old daemon could not start again. In a container of its
    own the daemon's lock file names another host: the lock itself decides."""
    from sync_agent.store import engine as engine_module
    from sync_agent.store.engine import HEAD_REVISION, stored_revisions

    monkeypatch.setattr(engine_module, "UPGRADE_LOCK_WAIT", 0.5)
    store_at(db_url, "0007")
    rename = "" if host == "this machine" else (
        "lock._file and (lock._file.seek(0), lock._file.truncate(), lock._file.write('1 3f2a9c1b7d10 -\\n'), "
        "lock._file.flush())")
    holder = hold_the_daemon_lock(db_url, rename)
    try:
        with pytest.raises(ConfigError) as caught:
            open_engine(db_url)
        message = str(caught.value)
        assert "holds its daemon lock" in message and "stop it" in message and f"needs {HEAD_REVISION}" in message
        if host == "this machine":
            assert f"pid {holder.pid}" in message
        eng = open_engine(db_url, migrate_schema=False)
        assert stored_revisions(eng) == {"0007"}
        eng.dispose()
    finally:
        holder.kill()
        holder.wait()
    eng = open_engine(db_url)  # the old daemon stopped: the upgrade goes ahead
    assert stored_revisions(eng) == {HEAD_REVISION}
    eng.dispose()


def test_a_lock_file_an_older_release_left_behind_does_not_block_the_upgrade(tmp_path: Path) -> None:
    """Releases before the lock file was emptied on release left 'pid host' in it: after a stop
    (or a reboot) that number may be any live process's, and no daemon holds the lock."""
    from sync_agent.store.engine import HEAD_REVISION, stored_revisions

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store_at(url, "0007")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        Path(f"{tmp_path / 'store.db'}.daemon.lock").write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        eng = open_engine(url)
        assert stored_revisions(eng) == {HEAD_REVISION}
        eng.dispose()
    finally:
        sleeper.kill()
        sleeper.wait()


def opened_at_once(db_url: str, processes: int) -> list[BaseException]:
    """``processes`` threads opening the store at the same instant; what they raised."""
    barrier = threading.Barrier(processes)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            open_engine(db_url).dispose()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(processes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_commands_starting_on_an_old_store_both_open_it(db_url: str) -> None:
    """One upgrades under the daemon lock; the other waits for it rather than taking it for a
    running daemon."""
    from sync_agent.store.engine import HEAD_REVISION, stored_revisions

    store_at(db_url, "0007")
    assert opened_at_once(db_url, 2) == []
    eng = open_engine(db_url)
    assert stored_revisions(eng) == {HEAD_REVISION}
    eng.dispose()


def test_opening_a_current_store_does_not_load_alembic(db_url: str) -> None:
    open_engine(db_url).dispose()  # a new store: migrated with Alembic
    script = ("import sys; from sync_agent.store.engine import open_engine; open_engine(sys.argv[1]).dispose(); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    out = subprocess.run([sys.executable, "-c", script, db_url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_processes_starting_together_on_a_new_store_all_open_it(db_url: str) -> None:
    """The daemon and an operator's command starting at once on a new database: one creates
    the schema, the others wait for it (PostgreSQL raced: 'duplicate key value ... pg_type')."""
    from sync_agent.store.engine import HEAD_REVISION, stored_revisions

    assert opened_at_once(db_url, 4) == []
    eng = open_engine(db_url)
    try:
        assert stored_revisions(eng) == {HEAD_REVISION}
    finally:
        eng.dispose()


def test_saving_the_same_page_twice_inserts_once(engine: Engine) -> None:
    page = [rec("A"), rec("B")]
    with write_transaction(engine) as conn:
        first = save_records(conn, "one_stop", page, TZ, 1, NOW)
    with write_transaction(engine) as conn:
        second = save_records(conn, "one_stop", page, TZ, 2, NOW)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)


def test_a_newer_version_updates_and_an_older_one_is_ignored(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec("A", updated_hour=8)], TZ, 1, NOW)
        newer = save_records(conn, "one_stop", [rec("A", Status.IN_PROGRESS, updated_hour=9)], TZ, 1, NOW)
        older = save_records(conn, "one_stop", [rec("A", Status.RECEIVED, updated_hour=7)], TZ, 1, NOW)
    assert newer.updated == 1 and older.unchanged == 1
    with read_connection(engine) as conn:
        assert conn.execute(select(dossiers.c.status)).scalar() == "in_progress"


def test_duplicates_within_a_page_give_one_row(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("A", Status.IN_PROGRESS)], TZ, 1, NOW)
    assert counts.inserted == 1
    with read_connection(engine) as conn:
        assert conn.execute(select(dossiers.c.status)).scalars().all() == ["in_progress"]


def test_local_dates_are_taken_in_the_ward_time_zone(engine: Engine) -> None:
    # 23:30 UTC on 31 January is 06:30 on 1 February in Hanoi
    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec("A")], TZ, 1, NOW)
    with read_connection(engine) as conn:
        row = conn.execute(select(dossiers.c.received_on, dossiers.c.received_at)).one()
    assert row.received_on == dt.date(2026, 2, 1)
    assert row.received_at == dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC)


def test_a_quarantined_record_seen_twice_is_kept_once_and_counted(engine: Engine) -> None:
    bad = QuarantinedRecord(source="one_stop", reason="unknown TrangThaiHoSo '99'", raw={"MaHoSo": "X"},
                            source_id="X")
    with write_transaction(engine) as conn:
        save_quarantined(conn, "one_stop", [bad], 1, NOW)
    with write_transaction(engine) as conn:
        save_quarantined(conn, "one_stop", [bad], 2, NOW)
    with read_connection(engine) as conn:
        rows = conn.execute(select(quarantine.c.reason, quarantine.c.times_seen)).all()
    assert [(r.reason, r.times_seen) for r in rows] == [("unknown TrangThaiHoSo '99'", 2)]


def test_a_quarantined_record_met_twice_in_one_run_is_counted_once(engine: Engine) -> None:
    # a read re-reads the end of its window and meets the same bad record again
    bad = QuarantinedRecord(source="one_stop", reason="unknown TrangThaiHoSo '99'", raw={"MaHoSo": "X"},
                            source_id="X")
    with write_transaction(engine) as conn:
        assert save_quarantined(conn, "one_stop", [bad, bad], 1, NOW) == 1
    with write_transaction(engine) as conn:
        assert save_quarantined(conn, "one_stop", [bad], 1, NOW) == 0
    with write_transaction(engine) as conn:
        assert save_quarantined(conn, "one_stop", [bad], 2, NOW) == 1  # the next run meets it anew
    with read_connection(engine) as conn:
        assert conn.execute(select(quarantine.c.times_seen)).scalar_one() == 2  # in two runs


def test_a_valid_version_supersedes_the_quarantined_one(engine: Engine) -> None:
    bad = QuarantinedRecord(source="one_stop", reason="bad date", raw={"MaHoSo": "A"}, source_id="A")
    with write_transaction(engine) as conn:
        save_quarantined(conn, "one_stop", [bad], 1, NOW)
        save_records(conn, "one_stop", [rec("A")], TZ, 2, NOW)
    with read_connection(engine) as conn:
        assert conn.execute(select(quarantine.c.superseded_at)).scalar() is not None


def test_a_code_longer_than_its_column_quarantines_the_record_and_the_rest_of_the_page_is_stored(
        engine: Engine) -> None:
    # PostgreSQL refuses a value longer than a VARCHAR's length; SQLite would keep it
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("B", procedure_code="1." + "0" * 63)], TZ, 1, NOW)
    assert (counts.inserted, counts.quarantined) == (1, 1)
    with read_connection(engine) as conn:
        assert conn.execute(select(dossiers.c.source_id)).scalars().all() == ["A"]
        held = conn.execute(select(quarantine.c.source_id, quarantine.c.reason)).one()
    assert tuple(held) == ("B", "procedure_code is 65 characters long, longer than the 64 the store keeps")


def test_a_record_dated_in_year_1_local_time_which_is_year_0_in_utc_is_quarantined(engine: Engine) -> None:
    # "00010101000000": .NET's DateTime.MinValue, how some systems send "no date"
    unset = dt.datetime(1, 1, 1, tzinfo=TZ)
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("B", submitted_at=unset)], TZ, 1, NOW)
    assert (counts.inserted, counts.quarantined) == (1, 1)
    with read_connection(engine) as conn:
        held = conn.execute(select(quarantine.c.source_id, quarantine.c.reason)).one()
    assert tuple(held) == ("B", "submitted_at is 0001-01-01 00:00:00, outside the dates the agent keeps "
                                "(2 January of year 1 to 30 December 9999, in UTC)")


def test_a_record_dated_on_the_calendars_last_day_in_utc_is_quarantined(engine: Engine) -> None:
    # in the ward's time it is in year 10000, where the report would show it
    last = dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.UTC)
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("B", submitted_at=last),
                                                 rec("C", submitted_at=dt.datetime(9999, 12, 30, tzinfo=TZ))],
                              TZ, 1, NOW)
    assert (counts.inserted, counts.quarantined) == (2, 1)
    with read_connection(engine) as conn:
        held = conn.execute(select(quarantine.c.source_id, quarantine.c.reason)).one()
    assert tuple(held) == ("B", "submitted_at is 9999-12-31 23:00:00, outside the dates the agent keeps "
                                "(2 January of year 1 to 30 December 9999, in UTC)")


def test_a_record_updated_in_year_1_local_time_is_quarantined_without_that_time(engine: Engine) -> None:
    unset = dt.datetime(1, 1, 1, tzinfo=TZ)
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("B", source_updated_at=unset)], TZ, 1, NOW)
    assert (counts.inserted, counts.quarantined) == (1, 1)
    with read_connection(engine) as conn:
        held = conn.execute(select(quarantine.c.source_id, quarantine.c.source_updated_at)).one()
    assert tuple(held) == ("B", None)  # no date to keep it under; the reason says what it was


def test_a_source_id_holding_half_a_character_is_quarantined_not_the_page(engine: Engine) -> None:
    # a byte that was not UTF-8, read as a lone surrogate
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A"), rec("B\udce0")], TZ, 1, NOW)
    assert (counts.inserted, counts.quarantined) == (1, 1)
    with read_connection(engine) as conn:
        held = conn.execute(select(quarantine.c.source_id, quarantine.c.reason)).one()
    assert tuple(held) == ("B\\udce0", "source_id holds \\udce0, which is not Unicode text (half a character, "
                                        "or a byte that is not UTF-8)")


def test_an_old_version_a_store_cannot_keep_is_ignored_like_any_old_version(engine: Engine) -> None:
    # pages arrive out of order: a newer, valid version is stored already
    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec("A", updated_hour=9)], TZ, 1, NOW)
    with write_transaction(engine) as conn:
        counts = save_records(conn, "one_stop", [rec("A", updated_hour=8, applicant_name="An\x00")], TZ, 2, NOW)
    assert (counts.unchanged, counts.quarantined) == (1, 0)
    with read_connection(engine) as conn:
        assert conn.execute(select(quarantine.c.id)).all() == []


def test_a_quarantined_source_id_keeps_a_nul_as_its_escape_and_is_cut_to_the_column(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec("A\x00B"), rec("C" * 200)], TZ, 1, NOW)
    with read_connection(engine) as conn:
        held = sorted(conn.execute(select(quarantine.c.source_id)).scalars())
    assert held == ["A\\x00B", "C" * 127 + "…"]


def test_a_failed_statements_error_does_not_list_its_parameters(engine: Engine) -> None:
    # they are a page's records, and the error goes into the log's traceback (PostgreSQL's own
    # message may still quote the failing row: a run keeps only its first line)
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as failed, write_transaction(engine) as conn:
        conn.execute(insert(dossiers).values(source="one_stop", source_id="A", applicant_name="Nguyễn Văn An"))
    added = str(failed.value).split("[SQL:", 1)[1]  # what SQLAlchemy adds to the driver's message
    assert "Nguyễn Văn An" not in added


def test_the_cursor_never_moves_backwards(engine: Engine) -> None:
    t1 = dt.datetime(2026, 2, 1, 8, tzinfo=TZ)
    with write_transaction(engine) as conn:
        advance_cursor(conn, "one_stop", t1, NOW)
        advance_cursor(conn, "one_stop", t1 - dt.timedelta(hours=1), NOW)
    with read_connection(engine) as conn:
        assert get_cursor(conn, "one_stop") == t1


def test_upgrading_to_0005_moves_links_and_marks_out_of_the_records(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from sync_agent.store.engine import _alembic_config, create_store_engine
    from sync_agent.store.tables import case_links, reconcile_queue

    eng = create_store_engine(db_url)
    try:
        with eng.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "0004")
            for i, (case_id, kind, marked) in enumerate(((1, "own", False), (1, "code", True), (None, None, True)), 1):
                conn.execute(text(
                    "INSERT INTO dossiers (id, source, source_id, procedure_code, channel, status, source_updated_at, "
                    "raw_payload, content_hash, first_seen_at, last_seen_at, case_id, link_kind, needs_reconcile) "
                    "VALUES (:i, 'one_stop', :sid, '1.001193', 'online', 'received', '2026-02-01 01:00:00', '{}', "
                    "'h', '2026-02-01 01:00:00', '2026-02-01 01:00:00', :c, :k, :m)"),
                    {"i": i, "sid": f"S{i}", "c": case_id, "k": kind, "m": marked})
            command.upgrade(_alembic_config(conn), "head")
        with read_connection(eng) as conn:
            links = conn.execute(select(case_links).order_by(case_links.c.dossier_id)).all()
            queued = conn.execute(select(reconcile_queue.c.dossier_id).order_by(reconcile_queue.c.dossier_id)).all()
            columns = set(conn.execute(select(dossiers).limit(1)).keys())
        assert [tuple(r) for r in links] == [(1, 1, "own"), (2, 1, "code")]
        assert [r[0] for r in queued] == [2, 3]
        assert not {"case_id", "link_kind", "needs_reconcile"} & columns
        assert schema_is_current(eng)
    finally:
        eng.dispose()


def test_upgrading_to_0006_keeps_the_cases_and_their_unique_key(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from sync_agent.store.engine import _alembic_config, create_store_engine
    from sync_agent.store.tables import cases

    insert = text(
        "INSERT INTO cases (id, case_key, has_one_stop, reception_source, state_source, procedure_code, channel, "
        "status, digitised, data_reused, fee_required, paid_online, record_count, first_seen_at, updated_at) "
        "VALUES (:i, 'rc:MC-1', TRUE, 'one_stop', 'one_stop', '1.001193', 'online', 'received', FALSE, FALSE, "
        "FALSE, FALSE, 1, '2026-02-01 01:00:00', '2026-02-01 01:00:00')")
    eng = create_store_engine(db_url)
    try:
        with eng.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "0005")
            conn.execute(insert, {"i": 1})
            command.upgrade(_alembic_config(conn), "head")
        with read_connection(eng) as conn:
            assert conn.execute(select(cases.c.id, cases.c.case_key)).all() == [(1, "rc:MC-1")]
        assert schema_is_current(eng)
        with pytest.raises(IntegrityError), eng.connect() as conn, conn.begin():
            conn.execute(insert, {"i": 2})
        with eng.connect() as conn, conn.begin():  # and back: the constraint again
            command.downgrade(_alembic_config(conn), "0005")
        with pytest.raises(IntegrityError), eng.connect() as conn, conn.begin():
            conn.execute(insert, {"i": 2})
    finally:
        eng.dispose()


def test_upgrading_to_0007_queues_the_cases_with_a_mismatch_clock(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from sync_agent.store.engine import _alembic_config, create_store_engine
    from sync_agent.store.tables import reconcile_queue

    case = ("INSERT INTO cases (id, case_key, has_one_stop, reception_source, state_source, procedure_code, "
            "channel, status, digitised, data_reused, fee_required, paid_online, record_count, first_seen_at, "
            "updated_at, mismatch_since) VALUES (:i, :k, TRUE, 'one_stop', 'one_stop', '1.001193', 'online', "
            "'received', FALSE, FALSE, FALSE, FALSE, 2, '2026-02-01 01:00:00', '2026-02-01 01:00:00', :m)")
    eng = create_store_engine(db_url)
    try:
        with eng.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "0006")
            conn.execute(text(case), {"i": 1, "k": "rc:MC-1", "m": "2026-02-03 01:00:00"})
            conn.execute(text(case), {"i": 3, "k": "rc:MC-3", "m": None})
            conn.execute(text("INSERT INTO case_links (dossier_id, case_id, link_kind) VALUES "
                              "(1, 1, 'own'), (2, 1, 'code'), (3, 3, 'own'), (4, 3, 'code')"))
            conn.execute(text("INSERT INTO reconcile_queue (dossier_id) VALUES (2)"))  # already queued
            command.upgrade(_alembic_config(conn), "head")
        with read_connection(eng) as conn:
            queued = conn.execute(select(reconcile_queue.c.dossier_id).order_by(reconcile_queue.c.dossier_id))
            assert list(queued.scalars()) == [1, 2]  # the case with a clock, each record once
    finally:
        eng.dispose()


def test_a_stored_or_changed_record_is_queued_for_reconciliation_once(engine: Engine) -> None:
    from sync_agent.store.tables import reconcile_queue

    with write_transaction(engine) as conn:
        save_records(conn, "one_stop", [rec("A"), rec("B")], TZ, 1, NOW)
        save_records(conn, "one_stop", [rec("A", Status.IN_PROGRESS, updated_hour=9)], TZ, 1, NOW)
        save_records(conn, "one_stop", [rec("B")], TZ, 1, NOW)  # unchanged: nothing to reconcile
    with read_connection(engine) as conn:
        queued = conn.execute(select(dossiers.c.source_id).join_from(
            reconcile_queue, dossiers, dossiers.c.id == reconcile_queue.c.dossier_id).order_by(dossiers.c.source_id))
        assert list(queued.scalars()) == ["A", "B"]


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/data/agent.db")
    try:
        with write_transaction(engine) as conn:
            save_records(conn, "one_stop", [rec("MC-1")], TZ, None, NOW)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
    finally:
        engine.dispose()
    assert modes["agent.db"] == 0o600 and modes["agent.db-wal"] == 0o600  # names of citizens inside


def test_an_existing_sqlite_store_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    open_engine(f"sqlite:///{path}").dispose()
    path.chmod(0o640)
    open_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_value_written_once_keeps_the_first_writer_s_when_two_write_at_once(engine: Engine) -> None:
    """The day's digest window: the daemon's first send and a person's, at the same moment, must
    end up with one window (an upsert let the later one replace it under the earlier's feet)."""
    from sync_agent.store.state import write_state_once

    now = dt.datetime(2026, 11, 29, 0, 30, tzinfo=dt.UTC)
    got: dict[str, str] = {}
    first_wrote = threading.Event()

    def first() -> None:
        with write_transaction(engine) as conn:
            got["first"] = write_state_once(conn, "digest_window:alerts:2026-11-29", "07:30", now)
            first_wrote.set()
            time.sleep(0.5)  # still not committed while the second one writes

    def second() -> None:
        assert first_wrote.wait(10)
        with write_transaction(engine) as conn:
            got["second"] = write_state_once(conn, "digest_window:alerts:2026-11-29", "08:30", now)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert got == {"first": "07:30", "second": "07:30"}


def stored(engine: Engine, record: DossierRecord) -> dict[str, object]:
    with write_transaction(engine) as conn:
        save_records(conn, record.source, [record], TZ, None, NOW)
    with read_connection(engine) as conn:
        return dict(conn.execute(select(dossiers).where(dossiers.c.source_id == record.source_id)).one()._mapping)


def test_an_id_number_in_a_name_a_source_sends_is_never_stored_in_clear(engine: Engine) -> None:
    """A source's free text may carry an ID number; these columns reach emails and webhooks."""
    row = stored(engine, rec("H-1", procedure_name="Đăng ký thường trú (079123456789)",
                             field_name="Cư trú 123456789", applicant_name="Nguyễn Văn An 079123456789"))
    assert row["procedure_name"] == "Đăng ký thường trú ([id-redacted])"
    assert row["field_name"] == "Cư trú [id-redacted]"
    assert row["applicant_name"] == "Nguyễn Văn An [id-redacted]"


def test_the_applicant_s_name_repeated_in_the_procedure_name_is_masked_there(engine: Engine) -> None:
    """The applicant's own column keeps the name (masked where it is shown); a copy of it in the
    procedure's name would be shown in clear."""
    row = stored(engine, rec("H-2", applicant_name="Nguyễn Văn An",
                             procedure_name="Đăng ký khai sinh cho con của Nguyễn Văn An"))
    assert row["procedure_name"] == "Đăng ký khai sinh cho con của N. V. An"
    assert row["applicant_name"] == "Nguyễn Văn An"


def test_an_upgrade_masks_the_id_numbers_and_names_stored_by_an_earlier_release(db_url: str) -> None:
    from sqlalchemy import update

    from sync_agent.reconcile import reconcile
    from sync_agent.store.engine import create_store_engine
    from sync_agent.store.tables import cases

    store_at(db_url, "0008")
    eng = create_store_engine(db_url)
    try:
        with write_transaction(eng) as conn:
            save_records(conn, "one_stop", [rec(f"H-{n}", reception_code=f"H-{n}") for n in (1, 2, 3)],
                         TZ, None, NOW)
        reconcile(eng, TZ, now=NOW)
        dirty = {"procedure_name": "Khai sinh cho con của Nguyễn Văn An (079123456789)",
                 "field_name": "Hộ tịch 123456789", "applicant_name": "Nguyễn Văn An"}
        with write_transaction(eng) as conn:  # as the release before stored them
            for table in (dossiers, cases):
                conn.execute(update(table).where(table.c.reception_code == "H-1").values(**dirty))
                # what no SQL filter finds: full-width digits, a name in capitals with two spaces
                conn.execute(update(table).where(table.c.reception_code == "H-3").values(
                    procedure_name="Khai sinh cho con của NGUYỄN  VĂN AN",
                    field_name="Hộ tịch ０７９１２３４５６７８９", applicant_name="Nguyễn Văn An"))
            # its quarantine reasons: an ID cut to 11 digits, then masked; one after a "\n" as repr writes it
            save_quarantined(conn, "residence", [
                QuarantinedRecord(source="residence", raw={"id": "CT-1"}, source_id="CT-1",
                                  reason=f"field status: unknown code '{'A' * 44} 07970323777..."),
                QuarantinedRecord(source="residence", raw={"id": "CT-2"}, source_id="CT-2",
                                  reason="field received_at: 'ngày\\n079123456789\\u200b123456789' is not a date"),
                QuarantinedRecord(source="residence", raw={"id": "CT-3"}, source_id="CT-3",
                                  reason="field received_at: '2026-13-45' is not a date"),
                QuarantinedRecord(source="residence", raw={"id": "CT-4"}, source_id="CT-4",  # cut to 7 digits
                                  reason=f"field status: unknown code '{'A' * 48} 0797032..."),
                QuarantinedRecord(source="residence", raw={"id": "CT-5"}, source_id="CT-5",
                                  reason="field status: unknown code 'x\\U000e0001079123456789'"),
                QuarantinedRecord(source="residence", raw={"id": "CT-6"}, source_id="CT-6",  # not cut: kept
                                  reason="field received_at: 'năm 2026...' is not a date"),
            ], None, NOW)
    finally:
        eng.dispose()
    eng = open_engine(db_url)
    try:
        with read_connection(eng) as conn:
            for table in (dossiers, cases):
                rows = {r.reception_code: r for r in conn.execute(select(table))}
                assert rows["H-1"].procedure_name == "Khai sinh cho con của N. V. An ([id-redacted])"
                assert rows["H-1"].field_name == "Hộ tịch [id-redacted]"
                assert rows["H-1"].applicant_name == "Nguyễn Văn An"
                assert rows["H-2"].procedure_name is None
                assert (rows["H-3"].procedure_name, rows["H-3"].field_name) == (
                    "Khai sinh cho con của N. V. An", "Hộ tịch [id-redacted]")
            reasons = {r.source_id: r.reason for r in conn.execute(select(quarantine))}
            assert reasons == {
                "CT-1": f"field status: unknown code '{'A' * 44} [id-redacted]...",
                "CT-2": "field received_at: 'ngày\\n[id-redacted]\\u200b[id-redacted]' is not a date",
                "CT-3": "field received_at: '2026-13-45' is not a date",
                "CT-4": f"field status: unknown code '{'A' * 48} [id-redacted]...",
                "CT-5": "field status: unknown code 'x\\U000e0001[id-redacted]'",
                "CT-6": "field received_at: 'năm 2026...' is not a date"}
    finally:
        eng.dispose()


@pytest.mark.parametrize("written", ["NGUYỄN VĂN AN", "Nguyễn  Văn An", "nguyễn văn an"])
def test_the_applicant_s_name_is_masked_there_however_its_case_and_spaces_are_written(engine: Engine,
                                                                                      written: str) -> None:
    import unicodedata

    row = stored(engine, rec("H-3", applicant_name="Nguyễn Văn An",
                             procedure_name=f"Đăng ký khai sinh cho con của {written}"))
    assert row["procedure_name"] == "Đăng ký khai sinh cho con của N. V. An"
    decomposed = unicodedata.normalize("NFD", "Nguyễn Văn An")  # as some systems send it
    row = stored(engine, rec("H-4", applicant_name="Nguyễn Văn An", procedure_name=f"Khai sinh: {decomposed}"))
    assert row["procedure_name"] == "Khai sinh: N. V. An"
