"""Reconciliation: the records of one dossier in several systems become one case; flags follow.

Counting records instead of dossiers is the first way the monthly figures go wrong (a birth
registered at the Centre is in ``one_stop`` and in ``civil_status``). Everything here is
set-based SQL on SQLite and PostgreSQL (a handful of statements per run, whatever the store's
size); Python only drives the statements and loops over *rounds* (closure, matching), never over
records.

Incremental by default. The sync puts every inserted or changed record in ``reconcile_queue``
(an upsert that touches the row even when it is there already). A run claims the queue first
thing in its own write transaction (PostgreSQL: ``DELETE … RETURNING``, which waits for a sync
that re-queued one of the rows until it commits, so the run then reads that sync's version; a
sync that re-queues a record after the claim waits for the run and queues it again for the next
one: marks are only ever cleared by the claim; SQLite: ``BEGIN IMMEDIATE`` keeps writers out),
widens them to everything their links can depend on (``_Run.close``), and recomputes exactly
those cases. ``full=True`` recomputes every case and writes only what differs, keeping syncs out
meanwhile (PostgreSQL: ``LOCK TABLE dossiers IN SHARE ROW EXCLUSIVE MODE``; readers go on); both
give the same cases and flags (hypothesis tests check it). One run at a time per store
(PostgreSQL: a transaction advisory lock). A run never writes to ``dossiers``: links live in
``case_links``, marks in ``reconcile_queue`` (narrow rows, cheap to write in bulk).

Linking rules (domain.md, "Cases"):

- A ``one_stop`` record is the case ``rc:<its code>`` (its ``reception_code``, else its
  ``source_id``: both are MaHoSo). A ministry record citing a code joins ``rc:<that code>``, whether
  or not a ``one_stop`` record has it (then the case has no ``one_stop`` record).
- A ministry record without a code may be *inferred* to belong to a ``one_stop`` record with the
  same ``applicant_key`` and ``procedure_code`` received within 2 days (both ``received_at`` set).
  A ``one_stop`` record is not a candidate for a source that already cites its code (that
  system's copy of the dossier is known). Matching is one-to-one per source and greedy by
  closeness, in rounds: each unmatched record proposes to its closest candidate (then smallest
  code), each ``one_stop`` record accepts the closest proposer of each source (then smallest
  source id); those matched leave, and the rest try again with what is left. So twins
  registered together pair up one-to-one, and no ministry record silently shares a reception
  record with another of its own system. The outcome depends only on the records, never on the
  order they arrived in.
- Anything else is its own case ``src:<source>:<source id>``. A record has one case key, so it
  never belongs to two cases. ``case_links.link_kind``: ``own`` (a ``one_stop`` record, or a
  record alone), ``code`` (cites the code), ``inferred``. A case's ``id`` is the smallest
  dossier id among its records: a deterministic function of the store, so a full rebuild
  reproduces it (ids are not comparable across stores; case keys are).

Case values: reception facts (channel, submission and reception times) and the procedure, field
and applicant come from the *reception record*: the ``one_stop`` record when there is one, else
the earliest received record (then source, source id). Status, due date and end come from the
*state record*: the one updated most recently at its source (ties: ``one_stop``, then source
name, then source id; update times are compared to the microsecond).
``digitised``, ``data_reused``, ``fee_required``, ``paid_online``: true when any record says so.
An end before reception counts as the reception (and is a data-quality flag).

Flags (one per kind and case, keyed by the case key; domain.md "Flags"):

- ``bypassed_reception``: the case has no ``one_stop`` record (as domain.md and the report count
  it, so a cited code no ``one_stop`` record has is also ``unknown_reception_code`` after a day).
- ``unknown_reception_code``: the case's code is cited by ministry records but no ``one_stop``
  record has it, and the first citing record was first seen by the agent more than a day ago.
- ``status_mismatch``: the ``one_stop`` record and a ministry record disagree on whether the
  dossier has ended, and have for more than a day by the sources' own clocks: the disagreement
  began at the later of the ended record's end (its update time if it has none) and the open
  record's reception (submission, else update time); the earliest such pair counts. These are
  facts of the records, not of when they last changed, so an update that leaves the two still
  disagreeing (a new due date, a note, ``resolved`` becoming ``delivered``) neither restarts the
  clock nor clears the flag; a record that is re-opened after it ended counts from its first
  reception.
- ``data_quality``: completion before reception, a counted dossier with no due date, with no
  reception time, an ended status with no end time, a due date before reception.

A flag clears by itself when its condition stops holding. If it comes back later the same flag
row is re-opened with ``raised_at`` set to that moment and the acknowledgement reset: it is a new
occurrence the Centre must look at again (the old note stays in ``flag_events``). Every raise,
clear and acknowledgement is an event (``flag_events``). Conditions that become true only
because time passes are caught without any record changing: each case keeps the instant its
condition began (``unknown_code_since``, ``mismatch_since``, indexed), and every run also
recomputes the cases whose instant plus one day fell between the previous run's ``now`` (in
``agent_state``, ``last_reconcile``) and this one's. Details are JSON: ``{"reception_code": …}``,
``{"one_stop": <status>, "<source>": <status>}`` (the ministry record that has disagreed
longest), ``{"issue": "<issue>[, <issue>…]"}`` (every data-quality issue, in ``QUALITY_ISSUES``
order).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, Engine, Table, bindparam, text
from sqlalchemy.sql.elements import TextClause

from sync_agent.model import RECEPTION_SOURCE
from sync_agent.store.engine import write_transaction
from sync_agent.store.state import read_state, write_state
from sync_agent.store.tables import case_links, cases
from sync_agent.store.types import UTCDateTime

log = structlog.get_logger("sync_agent.reconcile")

#: a ministry record without a code may belong to a one_stop record received this close to it
INFERRED_WITHIN = dt.timedelta(days=2)
#: how long a time-dependent flag condition must hold before the flag is raised: an unknown code
#: is flagged "one day after it was first seen" (at the day), a status mismatch once the records
#: disagree "for more than one day" (after it), as domain.md words them
FLAG_DELAY = dt.timedelta(days=1)

BYPASSED = "bypassed_reception"
UNKNOWN_CODE = "unknown_reception_code"
STATUS_MISMATCH = "status_mismatch"
DATA_QUALITY = "data_quality"
FLAG_KINDS = (BYPASSED, UNKNOWN_CODE, STATUS_MISMATCH, DATA_QUALITY)

#: data-quality issues, in the order they are listed in a flag's details
QUALITY_ISSUES = (
    "completion_before_reception",  # the end time is before the reception time
    "no_due_date",  # a counted dossier without a due date
    "no_reception_time",  # a counted dossier without a reception time: no period can count it
    "no_end_time",  # an ended status without the matching end time
    "due_before_reception",  # the due date is before the reception date
)

#: an incremental run with at least this many queued records, half the store or more, runs as a
#: full rebuild instead: the same cases and flags, without widening the queue record by record
#: (a first sync of a big history is the usual case)
WIDEN_MIN_RECORDS = 10_000

#: ``agent_state`` row remembering the last run (its ``now`` bounds the next time window)
STATE_NAME = "last_reconcile"

_ENDED = "('resolved', 'delivered', 'rejected', 'withdrawn')"
_NOT_COUNTED = "('submitted', 'not_accepted')"
_ID_WIDTH = 10**18  # added to an id, makes it 19 digits wide (see ``_Run.pick``)
_LOCK_KEY = 0x5EC0_0C11  # pg_advisory_xact_lock: one reconciliation at a time per store

#: the columns of ``cases`` a run computes (``updated_at`` is set when any of them changes)
CASE_COLUMNS = (
    "id", "case_key", "reception_code", "has_one_stop", "reception_source", "state_source",
    "procedure_code", "procedure_name", "field_code", "field_name", "applicant_name", "applicant_key",
    "channel", "status", "submitted_at", "received_at", "due_at", "ended_at", "received_on", "due_on",
    "ended_on", "digitised", "data_reused", "fee_required", "paid_online", "record_count", "inferred",
    "first_seen_at", "unknown_code_since", "mismatch_since", "quality_issue",
)

#: the columns of ``cases`` that follow the state record and the flag conditions (see ``write_cases``)
STATE_COLUMNS = ("state_source", "status", "due_at", "ended_at", "due_on", "ended_on", "mismatch_since",
                 "quality_issue")

# Temporary tables, created per run (PostgreSQL drops them at commit, SQLite when we say so).
# ``{pk}``: SQLite's rowid alias (no separate index), PostgreSQL's BIGINT key.
_TEMP = {
    "rc_rec": "id {pk}, round INTEGER NOT NULL",
    "rc_code": "code VARCHAR(128) PRIMARY KEY, round INTEGER NOT NULL",
    "rc_grp": "applicant_key VARCHAR(64) NOT NULL, procedure_code VARCHAR(64) NOT NULL, round INTEGER NOT NULL, "
              "PRIMARY KEY (applicant_key, procedure_code)",
    "rc_oldc": "id {pk}, round INTEGER NOT NULL",
    "rc_old": "id {pk}, case_key VARCHAR(300) NOT NULL",
    "rc_cand": "mid BIGINT NOT NULL, msrc VARCHAR(64) NOT NULL, msid VARCHAR(128) NOT NULL, oid BIGINT NOT NULL, "
               "ocode VARCHAR(128) NOT NULL, osid VARCHAR(128) NOT NULL, gap BIGINT NOT NULL",
    "rc_match": "mid {pk}, msrc VARCHAR(64) NOT NULL, oid BIGINT NOT NULL, ocode VARCHAR(128) NOT NULL",
    "rc_link": "id {pk}, case_key VARCHAR(300) NOT NULL, link_kind VARCHAR(16) NOT NULL",
    "rc_size": "id {pk}, case_key VARCHAR(300) NOT NULL, n INTEGER NOT NULL",
    "rc_agg": "case_key VARCHAR(300) PRIMARY KEY, id BIGINT NOT NULL, r_id BIGINT NOT NULL, s_id BIGINT NOT NULL, "
              "n INTEGER NOT NULL, "
              "digitised INTEGER NOT NULL, data_reused INTEGER NOT NULL, fee_required INTEGER NOT NULL, "
              "paid_online INTEGER NOT NULL, has_os INTEGER NOT NULL, inferred INTEGER NOT NULL, "
              "first_seen_at TIMESTAMP NOT NULL, cited_since TIMESTAMP, open_first VARCHAR(300), "
              "ended_first VARCHAR(300)",
    "rc_state": "id {pk}, source VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL, due_at TIMESTAMP, due_on DATE, "
                "completed_at TIMESTAMP, rejected_at TIMESTAMP, withdrawn_at TIMESTAMP, ended_on DATE",
    "rc_case": "id {pk}, case_key VARCHAR(300) NOT NULL, reception_code VARCHAR(128), "
               "has_one_stop BOOLEAN NOT NULL, reception_source VARCHAR(64) NOT NULL, "
               "state_source VARCHAR(64) NOT NULL, procedure_code VARCHAR(64) NOT NULL, procedure_name TEXT, "
               "field_code VARCHAR(64), field_name TEXT, applicant_name TEXT, applicant_key VARCHAR(64), "
               "channel VARCHAR(16) NOT NULL, status VARCHAR(32) NOT NULL, submitted_at TIMESTAMP, "
               "received_at TIMESTAMP, due_at TIMESTAMP, ended_at TIMESTAMP, received_on DATE, due_on DATE, "
               "ended_on DATE, digitised BOOLEAN NOT NULL, data_reused BOOLEAN NOT NULL, "
               "fee_required BOOLEAN NOT NULL, paid_online BOOLEAN NOT NULL, record_count INTEGER NOT NULL, "
               "inferred BOOLEAN NOT NULL, first_seen_at TIMESTAMP NOT NULL, unknown_code_since TIMESTAMP, "
               "mismatch_since TIMESTAMP, quality_issue TEXT, r_id BIGINT NOT NULL, mismatch_details TEXT",
    "rc_fact": "kind VARCHAR(32) NOT NULL, subject_key VARCHAR(300) NOT NULL, action VARCHAR(8) NOT NULL, "
               "flag_id BIGINT, case_id BIGINT, dossier_id BIGINT, details TEXT, PRIMARY KEY (kind, subject_key)",
}


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What one run did; ``str()`` is the line the CLI prints."""

    full: bool
    records_claimed: int  # records whose links were recomputed (full: all)
    cases_touched: int  # cases recomputed, plus those that disappeared
    cases_total: int
    flags_raised: int  # new or re-opened
    flags_cleared: int
    duration: float  # seconds

    def __str__(self) -> str:
        kind = "full rebuild" if self.full else "incremental"
        return (f"reconcile ({kind}): {self.records_claimed} records, {self.cases_touched} cases recomputed, "
                f"{self.cases_total} cases in all; flags raised {self.flags_raised}, "
                f"cleared {self.flags_cleared} ({self.duration:.2f}s)")

    def as_json(self) -> dict[str, Any]:
        return {"full": self.full, "records": self.records_claimed, "cases_touched": self.cases_touched,
                "cases_total": self.cases_total, "flags_raised": self.flags_raised,
                "flags_cleared": self.flags_cleared, "duration": round(self.duration, 3)}


def reconcile(engine: Engine, tz: ZoneInfo, *, full: bool = False, now: dt.datetime | None = None) -> ReconcileResult:
    """Bring cases and flags up to date with the stored records (see the module docstring).

    ``tz`` is the ward's time zone; the local dates compared here were already computed in it
    when the records were stored, so it is only part of the signature for callers' symmetry.
    """
    started = time.perf_counter()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        # read once this run holds the store (SQLite: BEGIN IMMEDIATE waited for the write lock):
        # a flag dated before a digest's end is then committed before that digest's own
        # reconciliation, and so before it reads the store
        now = now or dt.datetime.now(dt.UTC)
        if not full:
            queued = int(conn.execute(text("SELECT COUNT(*) FROM reconcile_queue")).scalar() or 0)
            # ids are never reused and records never deleted: the largest id is the store's size
            stored = int(conn.execute(text("SELECT MAX(id) FROM dossiers")).scalar() or 0)
            if queued >= WIDEN_MIN_RECORDS and 2 * queued >= stored:
                log.info("reconcile_widened_to_full", queued=queued, stored=stored)
                full = True
        counts = _Run(conn, now, full).execute()
    result = ReconcileResult(**counts, duration=time.perf_counter() - started)
    log.info("reconcile_finished", **result.as_json())
    return result


class _Run:
    """One reconciliation inside one write transaction."""

    def __init__(self, conn: Connection, now: dt.datetime, full: bool) -> None:
        self.conn = conn
        self.now = now
        self.full = full
        self.pg = conn.dialect.name == "postgresql"
        #: a full run on an empty ``cases`` (the first build of a store): set in ``execute``
        self.first = False
        self.params: dict[str, Any] = {"os": RECEPTION_SOURCE, "now": now, "due": now - FLAG_DELAY,
                                       "within": INFERRED_WITHIN // dt.timedelta(microseconds=1)}

    # --- helpers ----------------------------------------------------------------------------------

    def sql(self, statement: str, **extra: Any) -> int:
        """Run one statement with the run's parameters; returns the affected row count."""
        return int(self.conn.execute(_clause(statement), {**self.params, **extra}).rowcount or 0)

    def scalar(self, statement: str, **extra: Any) -> Any:
        return self.conn.execute(_clause(statement), {**self.params, **extra}).scalar()

    def temp(self, *names: str) -> None:
        pk = "BIGINT PRIMARY KEY" if self.pg else "INTEGER PRIMARY KEY"
        for name in names:
            columns = _TEMP[name].format(pk=pk)
            if self.pg:
                self.conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP")
            else:
                self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
                self.conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns})")

    @contextmanager
    def indexed_after_first_fill(self, table: Table) -> Iterator[None]:
        """The first full build of a big store on SQLite: ``table`` is empty, so its secondary
        indexes are dropped while it is filled and built afterwards, about twice as fast as
        keeping them up to date row by row. A unique one too: what fills it comes from grouping
        by that key, and building the index would still refuse a duplicate."""
        first = self.full and not self.pg and not self.scalar(f"SELECT EXISTS (SELECT 1 FROM {table.name})")
        rebuild = list(table.indexes) if first else []
        for index in rebuild:
            index.drop(self.conn)
        yield
        for index in rebuild:
            index.create(self.conn)

    def analyze(self, *names: str) -> None:
        """PostgreSQL keeps no statistics on temporary tables unless asked, and samples a store
        table only when autovacuum comes round: a full run's big ones need them now."""
        if self.pg and self.full:
            for name in names:
                self.conn.exec_driver_sql(f"ANALYZE {name}")

    def epoch_us(self, col: str) -> str:
        """Microseconds since 1970 (instants are stored as naive UTC; on SQLite as the text
        'YYYY-MM-DD HH:MM:SS.ffffff')."""
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM {col}) * 1000000 AS BIGINT)"
        # the seconds from the text without its fraction, which strftime() would round to milliseconds
        return (f"(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000"
                f" + CAST(substr({col}, 21, 6) AS INTEGER))")

    def differs(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.pg else f"{a} IS NOT {b}"

    def sortable(self, col: str) -> str:
        """An instant as fixed-width text that sorts like the instant ('~' for none: last)."""
        if self.pg:
            return f"COALESCE(to_char({col}, 'YYYY-MM-DD HH24:MI:SS.US'), '~')"
        return f"COALESCE({col}, '~')"  # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff'

    def newest_first(self, col: str) -> str:
        """A non-null instant as fixed-width text that sorts the *latest* first."""
        if self.pg:
            # 18 digits for any year from 1 to 9999 (an instant before 1970 has negative micros)
            return f"CAST(500000000000000000 - {self.epoch_us(col)} AS TEXT)"
        # SQLite keeps an instant as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC). julianday() is the
        # cheapest parse it has, but holds whole milliseconds: it reads the seconds (exact once
        # rounded), the microseconds are added from the text. 18 digits, any year from 1 to 9999.
        seconds = f"CAST(ROUND((2500000 - julianday(substr({col}, 1, 19))) * 86400) AS INTEGER)"
        return f"(500000000000000000 + {seconds} * 1000000 - CAST(substr({col}, 21, 6) AS INTEGER))"

    def pick(self, key: str) -> str:
        """The dossier id of the row with the smallest ``key`` in the group (one aggregate, no sort).

        ``key`` must order rows like a tuple: parts separated by chr(31), which sorts below every
        printable character. The id rides along at the end, fixed width, and is cut off again.
        """
        if self.pg:
            return (f"CAST(RIGHT(MIN((({key}) || chr(31) || LPAD(CAST(d.id AS TEXT), 19, '0')) COLLATE \"C\"), 19) "
                    f"AS BIGINT)")
        return f"CAST(SUBSTR(MIN(({key}) || char(31) || (d.id + {_ID_WIDTH})), -19) AS INTEGER) - {_ID_WIDTH}"

    def text_min(self, expr: str) -> str:
        return f"MIN(({expr}) COLLATE \"C\")" if self.pg else f"MIN({expr})"

    # --- the run ----------------------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        last = _last_run_at(self.conn)
        steps: dict[str, float] = {}
        mark = time.perf_counter()

        def step(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            steps[name] = round(now - mark, 4)
            mark = now

        self.temp(*_TEMP)
        self.first = self.full and not self.scalar("SELECT EXISTS (SELECT 1 FROM cases)")
        claimed = self.claim(last)
        step("claim")
        if not self.full:
            self.close()
            step("close")
        self.old_cases()
        self.infer()
        step("infer")
        records = self.link()
        step("link")
        with self.indexed_after_first_fill(cases):
            self.compute_cases(records)
            step("compute_cases")
            self.write_links()
            step("write_links")
            touched = self.write_cases()
            step("write_cases")
        raised, cleared = self.write_flags()
        step("write_flags")
        # a full run rewrites the store's reconciliation at once (a first sync's history): until
        # autovacuum samples it, PostgreSQL plans the readers blind (a digest took 100 s on 15,000
        # cases in a trial, 0.1 s once analysed)
        self.analyze("dossiers", "case_links", "cases", "flags")
        step("analyze")
        total = int(self.scalar("SELECT COUNT(*) FROM cases"))
        _remember(self.conn, self.now, self.full)
        if not self.pg:
            for name in _TEMP:
                self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
        step("finish")
        log.debug("reconcile_steps", claimed=claimed, **steps)
        return {"full": self.full, "records_claimed": records, "cases_touched": touched, "cases_total": total,
                "flags_raised": raised, "flags_cleared": cleared}

    def claim(self, last: dt.datetime | None) -> int:
        """Clear the marks of the records this run takes on; incremental: seed ``rc_rec``.

        Also seeds the cases whose time-dependent condition came due since the last run: time
        passing is a change too.
        """
        if self.full:
            # A full rebuild keeps syncs out while it runs (SQLite: BEGIN IMMEDIATE already does;
            # PostgreSQL: a lock that conflicts with their writes, readers go on) and takes on
            # every record, so the whole queue is cleared.
            if self.pg:
                self.conn.exec_driver_sql("LOCK TABLE dossiers IN SHARE ROW EXCLUSIVE MODE")
            return self.sql("DELETE FROM reconcile_queue")
        if self.pg:
            claimed = self.sql("""
                WITH claimed AS (DELETE FROM reconcile_queue RETURNING dossier_id)
                INSERT INTO rc_rec (id, round) SELECT dossier_id, 0 FROM claimed""")
        else:
            claimed = self.sql("INSERT INTO rc_rec (id, round) SELECT dossier_id, 0 FROM reconcile_queue")
            self.sql("DELETE FROM reconcile_queue")
        # the cases whose time-dependent flag came due since the last run (see ``FLAG_DELAY``)
        windows = {"unknown_code_since": ("c.{col} > :since AND c.{col} <= :due", "c.{col} <= :due"),
                   "mismatch_since": ("c.{col} >= :since AND c.{col} < :due", "c.{col} < :due")}
        for col, (since_last, ever) in windows.items():
            window = ever if last is None else since_last
            self.sql(f"""
                INSERT INTO rc_rec (id, round)
                SELECT k.dossier_id, 0 FROM cases c CROSS JOIN case_links k
                WHERE {window.format(col=col)} AND k.case_id = c.id
                  AND NOT EXISTS (SELECT 1 FROM rc_rec r WHERE r.id = k.dossier_id)""",
                     since=None if last is None else last - FLAG_DELAY)
        return claimed

    # ``CROSS JOIN`` below: SQLite keeps the written join order (small temporary table first,
    # then the store through an index); PostgreSQL plans it like any inner join. Without
    # statistics SQLite would otherwise scan the store and probe the temporary table.
    # ``source || ''`` keeps SQLite off the (source, source_updated_at) index where another
    # index is the right one.

    def close(self) -> None:
        """Widen ``rc_rec`` until every record whose link or case can depend on it is in.

        A record's case depends on (1) the other records of its old case, (2) the records
        sharing its code, (3) for inference, the ``one_stop`` and code-less ministry records
        with the same applicant and procedure. Closing under the three relations, in rounds from
        the newest additions, converges in two or three rounds on real data.
        """
        os_ = "d.source || '' = :os"
        code = f"CASE WHEN {os_} THEN COALESCE(d.reception_code, d.source_id) ELSE d.reception_code END"
        fresh = "NOT EXISTS (SELECT 1 FROM rc_rec x WHERE x.id = d.id)"
        k = 0
        while True:
            self.sql("""
                INSERT INTO rc_oldc (id, round)
                SELECT DISTINCT k.case_id, :k FROM rc_rec r CROSS JOIN case_links k
                WHERE r.round = :k AND k.dossier_id = r.id
                  AND NOT EXISTS (SELECT 1 FROM rc_oldc o WHERE o.id = k.case_id)""", k=k)
            self.sql(f"""
                INSERT INTO rc_code (code, round)
                SELECT DISTINCT {code}, :k FROM rc_rec r CROSS JOIN dossiers d
                WHERE r.round = :k AND d.id = r.id AND {code} IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM rc_code c WHERE c.code = {code})""", k=k)
            self.sql(f"""
                INSERT INTO rc_grp (applicant_key, procedure_code, round)
                SELECT DISTINCT d.applicant_key, d.procedure_code, :k FROM rc_rec r CROSS JOIN dossiers d
                WHERE r.round = :k AND d.id = r.id AND d.applicant_key IS NOT NULL
                  AND ({os_} OR d.reception_code IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM rc_grp g WHERE g.applicant_key = d.applicant_key
                                                          AND g.procedure_code = d.procedure_code)""", k=k)
            new = self.sql("""
                INSERT INTO rc_rec (id, round)
                SELECT DISTINCT l.dossier_id, :k + 1 FROM rc_oldc o CROSS JOIN case_links l
                WHERE o.round = :k AND l.case_id = o.id
                  AND NOT EXISTS (SELECT 1 FROM rc_rec x WHERE x.id = l.dossier_id)""", k=k)
            new += self.sql(f"""
                INSERT INTO rc_rec (id, round)
                SELECT DISTINCT d.id, :k + 1 FROM rc_code c CROSS JOIN dossiers d
                WHERE c.round = :k AND d.reception_code = c.code AND {fresh}""", k=k)
            new += self.sql(f"""
                INSERT INTO rc_rec (id, round)
                SELECT DISTINCT d.id, :k + 1 FROM rc_code c CROSS JOIN dossiers d
                WHERE c.round = :k AND d.source = :os AND d.source_id = c.code AND d.reception_code IS NULL
                  AND {fresh}""", k=k)
            new += self.sql(f"""
                INSERT INTO rc_rec (id, round)
                SELECT DISTINCT d.id, :k + 1 FROM rc_grp g CROSS JOIN dossiers d
                WHERE g.round = :k AND d.applicant_key = g.applicant_key AND d.procedure_code = g.procedure_code
                  AND ({os_} OR d.reception_code IS NULL) AND {fresh}""", k=k)
            k += 1
            if not new:
                break
        log.debug("reconcile_closure", rounds=k)

    def old_cases(self) -> None:
        """The cases the relinked records belonged to: each is rebuilt or disappears (a full
        run: all of ``cases``, read there; a copy in key order took seconds at a million)."""
        if not self.full:
            self.sql("""
                INSERT INTO rc_old (id, case_key)
                SELECT c.id, c.case_key FROM rc_oldc o CROSS JOIN cases c WHERE c.id = o.id""")

    def infer(self) -> None:
        """Pair code-less ministry records with ``one_stop`` records (rules in the module docstring)."""
        scope = "dossiers m" if self.full else "rc_rec r CROSS JOIN dossiers m"
        where = "" if self.full else "m.id = r.id AND"
        ocode = "COALESCE(o.reception_code, o.source_id)"
        gap = f"ABS({self.epoch_us('m.received_at')} - {self.epoch_us('o.received_at')})"
        self.sql(f"""
            INSERT INTO rc_cand (mid, msrc, msid, oid, ocode, osid, gap)
            SELECT m.id, m.source, m.source_id, o.id, {ocode}, o.source_id, {gap}
            FROM {scope} CROSS JOIN dossiers o
            WHERE {where} m.reception_code IS NULL AND m.source || '' <> :os AND m.applicant_key IS NOT NULL
              AND m.received_at IS NOT NULL
              AND o.applicant_key = m.applicant_key AND o.procedure_code = m.procedure_code
              AND o.source || '' = :os AND o.received_at IS NOT NULL AND {gap} <= :within
              AND NOT EXISTS (SELECT 1 FROM dossiers c WHERE c.reception_code = {ocode} AND c.source || '' = m.source)
        """)
        self.conn.exec_driver_sql("CREATE INDEX rc_match_o ON rc_match (oid, msrc)")
        while self.sql("""
            INSERT INTO rc_match (mid, msrc, oid, ocode)
            SELECT mid, msrc, oid, ocode FROM (
                SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.oid, p.msrc ORDER BY p.gap, p.msid) AS accepted
                FROM (
                    SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.mid ORDER BY c.gap, c.ocode, c.osid) AS proposal
                    FROM rc_cand c
                    WHERE NOT EXISTS (SELECT 1 FROM rc_match x WHERE x.mid = c.mid)
                      AND NOT EXISTS (SELECT 1 FROM rc_match x WHERE x.oid = c.oid AND x.msrc = c.msrc)
                ) p WHERE p.proposal = 1
            ) w WHERE w.accepted = 1
        """):
            pass

    def link(self) -> int:
        """Every relinked record's case key and link kind."""
        scope = "dossiers d" if self.full else "rc_rec r CROSS JOIN dossiers d"
        where = "" if self.full else "WHERE d.id = r.id"
        n = self.sql(f"""
            INSERT INTO rc_link (id, case_key, link_kind)
                SELECT d.id,
                       CASE WHEN d.source = :os THEN 'rc:' || COALESCE(d.reception_code, d.source_id)
                            WHEN d.reception_code IS NOT NULL THEN 'rc:' || d.reception_code
                            WHEN mt.ocode IS NOT NULL THEN 'rc:' || mt.ocode
                            ELSE 'src:' || d.source || ':' || d.source_id END AS case_key,
                       CASE WHEN d.source = :os THEN 'own' WHEN d.reception_code IS NOT NULL THEN 'code'
                            WHEN mt.ocode IS NOT NULL THEN 'inferred' ELSE 'own' END AS link_kind
                FROM {scope} LEFT JOIN rc_match mt ON mt.mid = d.id
                {where}
        """)
        self.analyze("rc_link")
        return n

    def write_links(self) -> None:
        """Each relinked record's case id (the case's smallest dossier id) and link kind.

        Every relinked record is in ``rc_link``, and a record is never removed from the store, so
        an upsert writing only what differs is all it takes.
        """
        changed = (f"{self.differs('case_links.case_id', 'excluded.case_id')} "
                   f"OR {self.differs('case_links.link_kind', 'excluded.link_kind')}")
        # (the SELECT must have a WHERE: it is how SQLite's parser tells ON CONFLICT from a join's ON)
        with self.indexed_after_first_fill(case_links):
            self.sql(f"""
                INSERT INTO case_links (dossier_id, case_id, link_kind)
                SELECT l.id, a.id, l.link_kind FROM rc_link l CROSS JOIN rc_size a
                WHERE a.case_key = l.case_key ORDER BY l.id
                ON CONFLICT (dossier_id) DO UPDATE SET case_id = excluded.case_id, link_kind = excluded.link_kind
                WHERE {changed}""")

    def compute_cases(self, records: int) -> None:
        """Every affected case's values, computed from its ``records`` relinked records, into
        ``rc_case``.

        First each case's size and id, from the links alone (``rc_size``). A case of several
        records gets one aggregate over them (``rc_agg``); its reception and state records are
        picked with ``pick`` and read by id. A case of one record, the most common
        kind (a dossier handled within the one-stop system, a household business that bypassed
        it), needs no aggregate: that record is both, and its row is written straight from it.
        """
        # Kept in case id order, and indexed by key afterwards: the cases of one record are then
        # read, with their records, in id order (at a million records, reading them in key order
        # jumped about the store and took four times as long), and the index answers a case's id
        # and size from a key by itself.
        cases = self.sql("""
            INSERT INTO rc_size (id, case_key, n)
            SELECT MIN(id), case_key, COUNT(*) FROM rc_link GROUP BY case_key ORDER BY 1""")
        self.conn.exec_driver_sql("CREATE INDEX rc_size_key ON rc_size (case_key, n)")
        self.analyze("rc_size")
        if cases < records:  # else every case has one record (a first sync of one system)
            self.several_records()
        self.one_record()
        self.analyze("rc_case")

    def several_records(self) -> None:
        """``rc_case`` rows of the cases of several records."""
        os_ = "d.source = :os"
        is_os = f"CASE WHEN {os_} THEN '0' ELSE '1' END"
        reception_key = (f"{is_os} || {self.sortable('d.received_at')} || d.source || chr(31) || d.source_id"
                         .replace("chr(31)", "chr(31)" if self.pg else "char(31)"))
        state_key = (f"{self.newest_first('d.source_updated_at')} || {is_os} || d.source || chr(31) || d.source_id"
                     .replace("chr(31)", "chr(31)" if self.pg else "char(31)"))
        ministry = f"NOT ({os_})"
        ended = f"d.status IN {_ENDED}"
        flag = "MAX(CASE WHEN d.{0} THEN 1 ELSE 0 END)" if self.pg else "MAX(d.{0})"  # SQLite: 0 or 1
        # rc_link holds every record of every affected case; both it and dossiers are read in id
        # order (sequentially), then sorted by case: cheaper than reaching a case's records, which
        # different syncs stored far apart, through the case_id index.
        source = ("rc_link l CROSS JOIN dossiers d WHERE d.id = l.id "
                  "AND EXISTS (SELECT 1 FROM rc_size z WHERE z.case_key = l.case_key AND z.n > 1)")
        # the ministry record that has disagreed longest: since when it says what it says (its end
        # if ended, else its reception; fixed width), and who it is
        who = "d.source || '=' || d.status"
        open_first = f"{self.sortable(_open_since('d'))} || {who}"
        ended_first = f"{self.sortable(_ended_since('d'))} || {who}"
        self.sql(f"""
            INSERT INTO rc_agg (case_key, id, r_id, s_id, n, digitised, data_reused, fee_required, paid_online, has_os,
                                inferred, first_seen_at, cited_since, open_first, ended_first)
            SELECT l.case_key, MIN(d.id), {self.pick(reception_key)}, {self.pick(state_key)}, COUNT(*),
                   {flag.format('digitised')}, {flag.format('data_reused')}, {flag.format('fee_required')},
                   {flag.format('paid_online')}, MAX(CASE WHEN {os_} THEN 1 ELSE 0 END),
                   MAX(CASE WHEN l.link_kind = 'inferred' THEN 1 ELSE 0 END), MIN(d.first_seen_at),
                   MIN(CASE WHEN {ministry} AND d.reception_code IS NOT NULL THEN d.first_seen_at END),
                   {self.text_min(f"CASE WHEN {ministry} AND NOT ({ended}) THEN {open_first} END")},
                   {self.text_min(f"CASE WHEN {ministry} AND {ended} THEN {ended_first} END")}
            FROM {source}
            GROUP BY l.case_key
        """)
        # the state records' values
        self.sql("""
            INSERT INTO rc_state (id, source, status, due_at, due_on, completed_at, rejected_at, withdrawn_at, ended_on)
            SELECT a.id, s.source, s.status, s.due_at, s.due_on, s.completed_at, s.rejected_at, s.withdrawn_at,
                   s.ended_on
            FROM rc_agg a CROSS JOIN dossiers s WHERE s.id = a.s_id""")
        # the one_stop record against the ministry records that disagree with it: since when
        # (the later of the two records' own since, for the earliest such ministry record) and with whom
        r_ended = f"r.status IN {_ENDED}"
        other = f"CASE WHEN r.source <> :os THEN NULL WHEN {r_ended} THEN a.open_first ELSE a.ended_first END"
        other_since = (f"CAST(SUBSTR({other}, 1, 26) AS TIMESTAMP)" if self.pg else f"SUBSTR({other}, 1, 26)")
        r_since = f"CASE WHEN {r_ended} THEN {_ended_since('r')} ELSE {_open_since('r')} END"
        since = (f"CASE WHEN ({other}) IS NULL THEN NULL "
                 f"WHEN {other_since} >= {r_since} THEN {other_since} ELSE {r_since} END")
        with_ = f"SUBSTR({other}, 27)"
        several = {
            "id": "a.id", "has_one_stop": "a.has_os = 1", "digitised": "a.digitised = 1",
            "data_reused": "a.data_reused = 1", "fee_required": "a.fee_required = 1",
            "paid_online": "a.paid_online = 1", "record_count": "a.n", "inferred": "a.inferred = 1",
            "first_seen_at": "a.first_seen_at", "cited_since": "a.cited_since", "mismatch_since": since,
            "mismatch_details": (f"CASE WHEN ({with_}) IS NOT NULL THEN '{{\"' || r.source || '\": \"' || r.status "
                                 f"|| '\", \"' || REPLACE({with_}, '=', '\": \"') || '\"}}' END"),
        }
        self.sql(f"""
            INSERT INTO rc_case ({", ".join(CASE_COLUMNS)}, r_id, mismatch_details)
            SELECT {self.case_values(several)}
            FROM rc_agg a CROSS JOIN dossiers r CROSS JOIN rc_state s
            WHERE r.id = a.r_id AND s.id = a.id
        """)

    def one_record(self) -> None:
        """``rc_case`` rows of the cases of one record: no other record to disagree with it, and
        not inferred (a record inferred to belong to a one_stop record shares its case: ``close``
        brings that record in).

        On a first build they go straight into ``cases`` instead: there is nothing there to
        compare them with, and at a first sync of one system they are every case, so the copy
        through ``rc_case`` would write and read them once more for nothing (``write_flags``
        reads them from ``cases``).
        """
        flag_of = "r.{0}" if self.pg else "r.{0} = 1"
        alone = {
            "id": "a.id", "has_one_stop": "r.source = :os", "digitised": flag_of.format("digitised"),
            "data_reused": flag_of.format("data_reused"), "fee_required": flag_of.format("fee_required"),
            "paid_online": flag_of.format("paid_online"), "record_count": "1",
            "inferred": "FALSE", "first_seen_at": "r.first_seen_at",
            "cited_since": "CASE WHEN r.source <> :os AND r.reception_code IS NOT NULL THEN r.first_seen_at END",
            "mismatch_since": "NULL", "mismatch_details": "NULL",
        }
        into, extra = ("cases", "updated_at") if self.first else ("rc_case", "r_id, mismatch_details")
        self.sql(f"""
            INSERT INTO {into} ({", ".join(CASE_COLUMNS)}, {extra})
            SELECT {self.case_values(alone, s="r", first=self.first)}
            FROM rc_size a CROSS JOIN dossiers r
            WHERE a.n = 1 AND r.id = a.id
        """)

    def case_values(self, of_case: Mapping[str, str], s: str = "s", first: bool = False) -> str:
        """The ``rc_case`` row of a case whose reception record is ``r`` and state record ``s`` (a
        ``dossiers`` or ``rc_state`` row; ``s="r"`` when one record is both), ``a`` giving its key,
        and ``of_case`` the values that depend on how many records it has; ``first``: the
        ``cases`` row instead (its ``updated_at`` last, no ``r_id`` or ``mismatch_details``)."""
        end = _end(s)
        tail = ":now" if first else f"r.id, {of_case['mismatch_details']}"
        counted = f"{s}.status NOT IN {_NOT_COUNTED}"
        issues = {
            "completion_before_reception": f"({end}) < r.received_at",
            "no_due_date": f"{counted} AND {s}.due_at IS NULL",
            "no_reception_time": f"{counted} AND r.received_at IS NULL",
            "no_end_time": f"{s}.status IN {_ENDED} AND ({end}) IS NULL",
            "due_before_reception": f"{s}.due_on < r.received_on",
        }
        assert tuple(issues) == QUALITY_ISSUES
        listed = " || ".join(f"CASE WHEN {cond} THEN ', {name}' ELSE '' END" for name, cond in issues.items())
        return f"""{of_case["id"]}, a.case_key, CASE WHEN a.case_key LIKE 'rc:%' THEN SUBSTR(a.case_key, 4) END,
                   {of_case["has_one_stop"]}, r.source, {s}.source, r.procedure_code, r.procedure_name, r.field_code,
                   r.field_name, r.applicant_name, r.applicant_key, r.channel, {s}.status,
                   r.submitted_at, r.received_at, {s}.due_at,
                   CASE WHEN ({end}) < r.received_at THEN r.received_at ELSE {end} END,
                   r.received_on, {s}.due_on,
                   CASE WHEN {s}.ended_on < r.received_on THEN r.received_on ELSE {s}.ended_on END,
                   {of_case["digitised"]}, {of_case["data_reused"]}, {of_case["fee_required"]},
                   {of_case["paid_online"]}, {of_case["record_count"]}, {of_case["inferred"]},
                   {of_case["first_seen_at"]},
                   CASE WHEN NOT ({of_case["has_one_stop"]}) AND (r.reception_code IS NOT NULL)
                        THEN {of_case["cited_since"]} END,
                   {of_case["mismatch_since"]},
                   NULLIF(SUBSTR({listed}, 3), ''),
                   {tail}"""

    def write_cases(self) -> int:
        """Make ``cases`` equal ``rc_case`` over the affected cases, writing only what differs."""
        if self.first:  # ``cases`` holds only this run's cases of one record (``one_record``)
            return int(self.scalar("SELECT COUNT(*) FROM cases")) + self.sql(f"""
                INSERT INTO cases ({", ".join(CASE_COLUMNS)}, updated_at)
                SELECT {", ".join(f"n.{c}" for c in CASE_COLUMNS)}, :now FROM rc_case n""")
        if self.full:
            removed = self.sql("""
                DELETE FROM cases
                WHERE NOT EXISTS (SELECT 1 FROM rc_case n WHERE n.id = cases.id AND n.case_key = cases.case_key)""")
        else:
            removed = self.sql("""
                DELETE FROM cases WHERE id IN (
                    SELECT o.id FROM rc_old o
                    WHERE NOT EXISTS (SELECT 1 FROM rc_case n WHERE n.id = o.id AND n.case_key = o.case_key))""")
        columns = [c for c in CASE_COLUMNS if c not in ("id", "case_key")]
        other = [c for c in columns if c not in STATE_COLUMNS]
        only = "AND cases.id IN (SELECT id FROM rc_case)"

        def differ(cols: Sequence[str]) -> str:
            return " OR ".join(self.differs(f"cases.{c}", f"n.{c}") for c in cols)

        if self.full:  # mostly nothing differs: one comparing pass
            self.sql(f"""
                UPDATE cases SET {", ".join(f"{c} = n.{c}" for c in columns)}, updated_at = :now
                FROM rc_case n WHERE cases.id = n.id AND ({differ(columns)})""")
        else:
            # Most changes are a dossier moving on (status, due date, end): those rows get only
            # the state columns, so SQLite rewrites two of the five secondary indexes, not all.
            self.sql(f"""
                UPDATE cases SET {", ".join(f"{c} = n.{c}" for c in STATE_COLUMNS)}, updated_at = :now
                FROM rc_case n WHERE cases.id = n.id {only}
                  AND ({differ(STATE_COLUMNS)}) AND NOT ({differ(other)})""")
            self.sql(f"""
                UPDATE cases SET {", ".join(f"{c} = n.{c}" for c in columns)}, updated_at = :now
                FROM rc_case n WHERE cases.id = n.id {only} AND ({differ(other)})""")
        self.sql(f"""
            INSERT INTO cases ({", ".join(CASE_COLUMNS)}, updated_at)
            SELECT {", ".join(f"n.{c}" for c in CASE_COLUMNS)}, :now FROM rc_case n
            WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = n.id)""")
        return removed + int(self.scalar("SELECT COUNT(*) FROM rc_case"))

    def write_flags(self) -> tuple[int, int]:
        """Raise, refresh, clear and re-open the flags of the affected cases; log each event."""
        quality = "'{\"issue\": \"' || n.quality_issue || '\"}'"
        new_cases = "rc_case n"
        if self.first:  # the cases of one record are in ``cases`` only (``one_record``)
            read = "id, case_key, has_one_stop, reception_code, unknown_code_since, mismatch_since, quality_issue"
            new_cases = (f"(SELECT {read}, r_id, mismatch_details FROM rc_case UNION ALL "
                         f"SELECT {read}, id, NULL FROM cases WHERE record_count = 1) n")
        code = "'{\"reception_code\": \"' || REPLACE(REPLACE(n.reception_code, '\\', '\\\\'), '\"', '\\\"') || '\"}'"
        wanted = f"""
            SELECT '{BYPASSED}' AS kind, n.case_key AS subject_key, n.id AS case_id, NULL AS dossier_id,
                   NULL AS details FROM {new_cases} WHERE n.has_one_stop = FALSE
            UNION ALL
            SELECT '{UNKNOWN_CODE}', n.case_key, n.id, n.r_id, {code} FROM {new_cases}
            WHERE n.unknown_code_since <= :due
            UNION ALL
            SELECT '{STATUS_MISMATCH}', n.case_key, n.id, NULL, n.mismatch_details FROM {new_cases}
            WHERE n.mismatch_since < :due
            UNION ALL
            SELECT '{DATA_QUALITY}', n.case_key, n.id, NULL, {quality} FROM {new_cases}
            WHERE n.quality_issue IS NOT NULL"""
        self.sql(f"""
            INSERT INTO rc_fact (kind, subject_key, action, flag_id, case_id, dossier_id, details)
            SELECT w.kind, w.subject_key,
                   CASE WHEN f.id IS NULL THEN 'new' WHEN f.state <> 'open' THEN 'reopen' ELSE 'keep' END,
                   f.id, w.case_id, w.dossier_id, w.details
            FROM ({wanted}) w LEFT JOIN flags f ON f.kind = w.kind AND f.subject_key = w.subject_key""")
        kinds = ", ".join(f"'{k}'" for k in FLAG_KINDS)
        if self.full:
            scope = "flags f WHERE f.state = 'open'"
        else:
            scope = (f"(SELECT case_key FROM rc_case UNION SELECT case_key FROM rc_old) s CROSS JOIN flags f "
                     f"WHERE f.kind IN ({kinds}) AND f.subject_key = s.case_key AND f.state || '' = 'open'")
        self.sql(f"""
            INSERT INTO rc_fact (kind, subject_key, action, flag_id)
            SELECT f.kind, f.subject_key, 'clear', f.id FROM {scope}
              AND NOT EXISTS (SELECT 1 FROM rc_fact a WHERE a.kind = f.kind AND a.subject_key = f.subject_key)""")
        self.sql("""
            INSERT INTO flags (kind, subject_key, case_id, dossier_id, state, details, raised_at)
            SELECT kind, subject_key, case_id, dossier_id, 'open', details, :now FROM rc_fact WHERE action = 'new'""")
        self.sql("""
            UPDATE rc_fact SET flag_id = (SELECT f.id FROM flags f WHERE f.kind = rc_fact.kind
                                                                     AND f.subject_key = rc_fact.subject_key)
            WHERE action = 'new'""")
        ids = "flags.id IN (SELECT flag_id FROM rc_fact WHERE action = '{0}')"
        self.sql(f"""
            UPDATE flags SET state = 'open', raised_at = :now, cleared_at = NULL, acknowledged_at = NULL,
                             ack_note = NULL, case_id = a.case_id, dossier_id = a.dossier_id, details = a.details
            FROM rc_fact a WHERE a.flag_id = flags.id AND a.action = 'reopen' AND {ids.format('reopen')}""")
        refreshed = " OR ".join(self.differs(f"flags.{c}", f"a.{c}") for c in ("case_id", "dossier_id", "details"))
        self.sql(f"""
            UPDATE flags SET case_id = a.case_id, dossier_id = a.dossier_id, details = a.details
            FROM rc_fact a WHERE a.flag_id = flags.id AND a.action = 'keep' AND {ids.format('keep')}
              AND ({refreshed})""")
        self.sql(f"""
            UPDATE flags SET state = 'cleared', cleared_at = :now
            WHERE {ids.format('clear')}""")
        self.sql("""
            INSERT INTO flag_events (flag_id, event, at)
            SELECT flag_id, CASE WHEN action = 'clear' THEN 'cleared' ELSE 'raised' END, :now
            FROM rc_fact WHERE action IN ('new', 'reopen', 'clear')
            ORDER BY flag_id""")
        counts: Mapping[str, int] = dict(self.conn.execute(
            text("SELECT action, COUNT(*) FROM rc_fact GROUP BY action")).all())
        return counts.get("new", 0) + counts.get("reopen", 0), counts.get("clear", 0)


def _end(d: str) -> str:
    """The end time of record (or state) ``d`` by its status; none while it is open."""
    return (f"CASE WHEN {d}.status IN ('resolved', 'delivered') THEN {d}.completed_at "
            f"WHEN {d}.status = 'rejected' THEN {d}.rejected_at "
            f"WHEN {d}.status = 'withdrawn' THEN {d}.withdrawn_at END")


def _ended_since(d: str) -> str:
    """Since when ended record ``d`` has said so: its end, else its update time."""
    return f"COALESCE({_end(d)}, {d}.source_updated_at)"


def _open_since(d: str) -> str:
    """Since when open record ``d`` has said so: its reception, else submission, else update time."""
    return f"COALESCE({d}.received_at, {d}.submitted_at, {d}.source_updated_at)"


def _clause(statement: str) -> TextClause:
    clause = text(statement)
    typed = [bindparam(k, type_=UTCDateTime()) for k in ("now", "due", "since") if f":{k}" in statement]
    return clause.bindparams(*typed) if typed else clause


def _last_run_at(conn: Connection) -> dt.datetime | None:
    value = read_state(conn, STATE_NAME)
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(json.loads(value)["at"])
    except (ValueError, KeyError, TypeError):
        return None


def _remember(conn: Connection, now: dt.datetime, full: bool) -> None:
    write_state(conn, STATE_NAME, json.dumps({"at": now.isoformat(), "full": full}), now)


def last_reconciled_at(conn: Connection) -> dt.datetime | None:
    """When reconciliation last ran (its ``now``), for ``status``; ``None`` before the first run."""
    return _last_run_at(conn)
