"""Open the store: engine settings per database, migrations, and write transactions.

SQLite is tuned as the issue trackers of every sync tool taught: WAL so readers never block the
writer, a busy timeout instead of "database is locked", ``BEGIN IMMEDIATE`` for writes so two
writers queue instead of deadlocking on lock upgrade, and ``synchronous=FULL`` so a power cut
after a commit loses nothing.

Connections are pooled on both databases (SQLAlchemy's default pools). A sync commits once per
page; opening a SQLite connection for each would repeat the pragmas and, as the last connection
to a WAL database closes, checkpoint the WAL into the database and delete it, every page: two
more fsyncs per page than the commit itself needs. Locks never rely on a connection closing
(see ``sync_agent.locks``); ``Engine.dispose()`` closes the pooled ones.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sync_agent.errors import ConfigError, WorkFailed, disk_full, first_line

if TYPE_CHECKING:
    from alembic.config import Config

    from sync_agent.locks import StoreLock

MIGRATIONS = Path(__file__).with_name("migrations")
#: the newest migration's revision (a test keeps it equal to the head of ``MIGRATIONS``)
HEAD_REVISION = "0010"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL advisory lock held while migrating (any fixed number no other lock of the agent uses)
_MIGRATE_LOCK_KEY = 0x5A6E_0001
#: the lock the daemon holds while it runs (``sync_agent.daemon`` takes it)
DAEMON_LOCK = "daemon"

log = structlog.get_logger("sync_agent.store")


#: libpq's options for every PostgreSQL session of the store (see ``create_store_engine``)
PG_CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                   "keepalives_count": 3, "tcp_user_timeout": 20_000}


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the per-database settings above; ``url`` as in ``agent.database_url``.

    A failed statement's error does not list its parameters: they are a page's records
    (applicants' names, payloads), and the error goes into the log's traceback.
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        _tune_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # a dead link to the server (a cable, a VM moved) fails a statement in seconds rather than
    # in the kernel's ~15 minutes: the daemon must still stop within its budget on SIGTERM. Only
    # data the server never acknowledges counts, so a long query is not cut. The URL may say
    # otherwise (``?keepalives_idle=...``).
    wanted = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}
    kwargs["connect_args"] = {**wanted, **kwargs.get("connect_args", {})}
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _create_private(path: Path) -> None:
    """Create a new SQLite file readable by its owner only: it holds citizens' names and
    dossiers. SQLite gives its ``-wal`` and ``-shm`` files the database file's mode; an
    existing file keeps the mode its owner chose."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _enter_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, waiting as a busy timeout would: on a new file, another
    process switching it at the same moment makes the switch fail at once ("database is
    locked"), without the busy handler."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how a transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _enter_wal(cur)
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` on SQLite, an ordinary one on PostgreSQL."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        yield conn


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """One read transaction on one snapshot of the store.

    What it reads belongs together (a report's figures and the list of the dossiers behind
    them): SQLite's transaction already reads one snapshot, PostgreSQL's default (read
    committed) takes a new one per statement, so there it runs at repeatable read, which for a
    transaction that only reads never fails.
    """
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, conn.begin():
        yield conn


def _alembic_config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; runs at every start), and log it.

    A store already at ``HEAD_REVISION`` is told by one query, without Alembic: importing it
    took a quarter of every command's start, for a check of a few milliseconds. Refused, with
    ``ConfigError`` naming ``agent.database_url``: a store a newer release upgraded (going back
    to an older release), and an upgrade while another process holds the store's daemon lock (an
    older release's daemon: the upgrade would change the schema under it, and it could not start
    again); in neither case is anything written. The upgrade holds the daemon lock itself.
    """
    stored = stored_revisions(engine)
    if stored == {HEAD_REVISION}:
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if stored is not None and stored - known:
        raise ConfigError("agent.database_url", (
            f"the store was upgraded by a newer release of sync-agent (schema revision "
            f"{', '.join(sorted(stored - known))}; this release knows up to {HEAD_REVISION}): run that "
            "release, or restore the backup taken before the upgrade"))
    guard = _hold_the_daemon_lock(engine, stored) if stored is not None else None
    try:
        with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                # processes starting together on a new database: one migrates, the others wait and
                # then find the schema current (SQLite: BEGIN IMMEDIATE orders them the same way)
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK_KEY})")
            # read again under the lock: another process may have done it while this one waited
            before = ({str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
                      if inspect(conn).has_table("alembic_version") else set())
            command.upgrade(_alembic_config(conn), "head")
    finally:
        if guard is not None:
            guard.release()
    if before != {HEAD_REVISION}:  # from_revision None: a new store
        log.info("store_migrated", from_revision=", ".join(sorted(before)) or None, to_revision=HEAD_REVISION,
                 pid=os.getpid())


#: how long an upgrade waits for the daemon lock (another command may be upgrading the store)
UPGRADE_LOCK_WAIT = 10.0


def _hold_the_daemon_lock(engine: Engine, stored: set[str]) -> StoreLock | None:
    """The daemon lock, held while the schema is upgraded: a daemon of the older release holds
    it while it runs (in another container too: the lock is the file lock or the advisory lock
    itself, not what a lock file says), and the upgrade must not change the schema under it.
    ``None`` when this process is the daemon, or another process upgraded the store meanwhile."""
    from sync_agent.locks import holder, holds, try_lock

    if holds(engine, DAEMON_LOCK):
        return None
    deadline = time.monotonic() + UPGRADE_LOCK_WAIT
    while (lock := try_lock(engine, DAEMON_LOCK)) is None:
        if stored_revisions(engine) == {HEAD_REVISION}:
            return None
        if time.monotonic() >= deadline:
            who = holder(engine, DAEMON_LOCK)
            named = f" ({who})" if who is not None else ""
            raise ConfigError("agent.database_url", (
                f"the store is at schema revision {', '.join(sorted(stored))} and this release needs "
                f"{HEAD_REVISION}, but another process{named} holds its daemon lock: a sync-agent daemon of "
                "the older release (stop it, then run this release again: it upgrades the store at its "
                "start), or another command upgrading it (try again in a moment)"))
        time.sleep(0.25)
    return lock


def stored_revisions(engine: Engine) -> set[str] | None:
    """The revisions Alembic recorded in the store, or ``None`` when it has none (a new store)."""
    with engine.connect() as conn:
        try:
            return {str(row[0]) for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
        except DBAPIError:  # no version table; the connection's transaction is rolled back on exit
            return None


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return set(current) == set(script.get_heads())


def open_engine(url: str, migrate_schema: bool = True) -> Engine:
    """Open (and migrate) the store, or raise ``ConfigError`` naming ``agent.database_url``
    (``WorkFailed`` when its disk is full or failing: nothing in the configuration to mend)."""
    _refuse_root_on_a_service_store(url)
    try:
        engine = create_store_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        if migrate_schema:
            migrate(engine)
    except (SQLAlchemyError, OSError) as exc:
        reason = first_line(exc)
        shown = make_url(url).render_as_string(hide_password=True)
        if disk_full(exc) or "disk i/o error" in reason.lower():  # the machine's, not the configuration's
            raise WorkFailed(f"cannot open the store {shown}: {reason} (is its disk full or failing?)") from None
        raise ConfigError("agent.database_url", f"cannot open database {shown}: {reason}") from None
    return engine


def _refuse_root_on_a_service_store(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        refuse_root_on_service_file(Path(parsed.database), "agent.database_url", "the store")


def refuse_root_on_service_file(path: Path, key: str, what: str) -> None:
    """Refuse root a file (or, not made yet, a folder) that belongs to another user: the
    service's. Files root made there (the store's lock files, SQLite's -wal and -shm, a new store
    or log) would be root's, and the daemon, running as that user, could not open them: every
    sync would fail until someone deleted them. ``ConfigError`` naming ``key``, with the way round."""
    if os.geteuid() != 0:
        return
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:  # folders made on the way too
        existing = existing.parent
    try:
        owner = existing.stat().st_uid
    except OSError:
        return
    if owner == 0:
        return
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    where = path if existing == path.absolute() else existing
    raise ConfigError(key, f"{what} {path}: {where} belongs to the user {name}; run commands as that user "
                           "(the service's: see deploy/sync-agent-cli), not as root: files root makes there "
                           "would lock it out")
