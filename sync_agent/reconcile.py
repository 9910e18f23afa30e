"""Reconciliation: the records of one dossier in several systems become one case; flags follow.

Counting records instead of dossiers is the first way the monthly figures go wrong (a birth
registered at the Centre is in ``one_stop`` and in ``civil_status``). Everything here is
set-based SQL that runs unchanged on SQLite and PostgreSQL; Python only sees the (small) set of
flags that change.

Incremental by default: the sync marks every inserted or changed record ``needs_reconcile``; a
run claims those rows atomically (``UPDATE … RETURNING``), so a record a sync changes while
reconciliation runs stays marked for the next run. Only the cases those records belonged to or
now belong to are recomputed. ``full=True`` recomputes everything and gives the same result.

Rules (domain.md, "Cases" and "Flags"):
- A ``one_stop`` record's case key is ``rc:<its reception code>`` (its dossier code); a ministry record citing a
  reception code joins ``rc:<that code>``. A ministry record without a code joins the
  ``one_stop`` record with the same applicant key and procedure code received within 2 days
  (closest reception time first, then the smallest code), marked ``inferred``; otherwise it is
  its own case ``src:<source>:<source id>``. A record has exactly one case key, so it never
  belongs to two cases.
- Reception facts (channel, submission and reception times, procedure, field, applicant) come
  from the ``one_stop`` record when the case has one (else from its earliest received record);
  status, due date and end from the record updated most recently at its source (ties:
  ``one_stop``, then source name); the four attributes are true when any record says so. An
  end before reception counts as the reception (and is a data-quality flag).
- Flags, one per kind and case: ``bypassed_reception`` (no ``one_stop`` record),
  ``unknown_reception_code`` (a cited code no ``one_stop`` record has, first seen more than a
  day ago), ``status_mismatch`` (``one_stop`` and a ministry record disagree on whether the
  dossier has ended, and the later of their updates is more than a day old),
  ``data_quality`` (completion before reception; a counted dossier without a due date). A flag
  clears by itself when its condition stops holding and is re-opened (with a fresh
  acknowledgement state; the old note stays in its history) if it comes back.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.sql.elements import TextClause

from sync_agent.store.engine import write_transaction
from sync_agent.store.records import dialect_insert
from sync_agent.store.tables import agent_state, flag_events, flags
from sync_agent.store.types import UTCDateTime

log = structlog.get_logger("sync_agent.reconcile")

#: the source whose records are the Centre's reception register
RECEPTION_SOURCE = "one_stop"
INFERRED_WITHIN_DAYS = 2
FLAG_DELAY = dt.timedelta(days=1)

BYPASSED = "bypassed_reception"
UNKNOWN_CODE = "unknown_reception_code"
STATUS_MISMATCH = "status_mismatch"
DATA_QUALITY = "data_quality"
FLAG_KINDS = (BYPASSED, UNKNOWN_CODE, STATUS_MISMATCH, DATA_QUALITY)

_ENDED = "('resolved', 'delivered', 'rejected', 'withdrawn')"
_NOT_COUNTED = "('submitted', 'not_accepted')"


@dataclass(frozen=True)
class ReconcileResult:
    full: bool
    records_claimed: int
    cases_touched: int
    cases_total: int
    flags_raised: int
    flags_cleared: int
    duration: float

    def __str__(self) -> str:
        kind = "full rebuild" if self.full else "incremental"
        return (f"reconcile ({kind}): {self.records_claimed} records, {self.cases_touched} cases recomputed, "
                f"{self.cases_total} cases in all; flags raised {self.flags_raised}, "
                f"cleared {self.flags_cleared} ({self.duration:.2f}s)")


def _days_apart(conn: Connection, a: str, b: str) -> str:
    if conn.dialect.name == "postgresql":
        return f"ABS(EXTRACT(EPOCH FROM ({a} - {b}))) / 86400.0"
    return f"ABS(julianday({a}) - julianday({b}))"


def _temp_table(conn: Connection, name: str, columns: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP"))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS temp.{name}"))
        conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns})"))


def _drop_temp(conn: Connection, *names: str) -> None:
    if conn.dialect.name != "postgresql":
        for name in names:
            conn.execute(text(f"DROP TABLE IF EXISTS temp.{name}"))


def _sql(statement: str, **types: Any) -> TextClause:
    clause = text(statement)
    if types:
        clause = clause.bindparams(*(bindparam(k, type_=v) for k, v in types.items()))
    return clause


def reconcile(engine: Engine, tz: ZoneInfo, *, full: bool = False, now: dt.datetime | None = None) -> ReconcileResult:
    """Bring cases and flags up to date with the stored records (see the module docstring)."""
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    with write_transaction(engine) as conn:
        claimed = _claim(conn, full)
        touched = _relink(conn, full)
        _recompute_cases(conn, now)
        raised, cleared = _sync_flags(conn, full, now)
        total = int(conn.execute(text("SELECT COUNT(*) FROM cases")).scalar_one())
        _remember(conn, now, full)
        _drop_temp(conn, "rc_work", "rc_key", "rc_aff", "rc_pick", "rc_agg", "rc_scope")
    result = ReconcileResult(full=full, records_claimed=claimed, cases_touched=touched, cases_total=total,
                             flags_raised=raised, flags_cleared=cleared,
                             duration=time.monotonic() - started)
    log.info("reconcile_finished", full=full, records=claimed, cases_touched=touched, cases=total,
             flags_raised=raised, flags_cleared=cleared, duration=round(result.duration, 3))
    return result


def _claim(conn: Connection, full: bool) -> int:
    """Collect the records to relink into ``rc_work`` and clear their marks atomically."""
    _temp_table(conn, "rc_work", "id BIGINT PRIMARY KEY")
    if full:
        conn.execute(text("UPDATE dossiers SET needs_reconcile = FALSE WHERE needs_reconcile"))
        conn.execute(text("INSERT INTO rc_work (id) SELECT id FROM dossiers"))
    else:
        ids = conn.execute(text(
            "UPDATE dossiers SET needs_reconcile = FALSE WHERE needs_reconcile RETURNING id")).scalars().all()
        if ids:
            conn.execute(text("INSERT INTO rc_work (id) VALUES (:id)"), [{"id": i} for i in ids])
        # A one_stop record that arrives or changes may be the inferred partner of ministry
        # records without a code: they must be relinked too.
        conn.execute(_sql("""
            INSERT INTO rc_work (id)
            SELECT DISTINCT d.id FROM dossiers d
            JOIN dossiers o ON o.applicant_key = d.applicant_key AND o.procedure_code = d.procedure_code
            JOIN rc_work w ON w.id = o.id
            WHERE o.source = :reception AND d.source <> :reception AND d.reception_code IS NULL
              AND NOT EXISTS (SELECT 1 FROM rc_work x WHERE x.id = d.id)
        """), {"reception": RECEPTION_SOURCE})
    return int(conn.execute(text("SELECT COUNT(*) FROM rc_work")).scalar_one())


def _relink(conn: Connection, full: bool) -> int:
    """New case keys of the work records; returns the number of affected cases."""
    _temp_table(conn, "rc_key", "id BIGINT PRIMARY KEY, case_key VARCHAR(300) NOT NULL, link_kind VARCHAR(16)")
    p = {"reception": RECEPTION_SOURCE, "within": INFERRED_WITHIN_DAYS}
    conn.execute(_sql("""
        INSERT INTO rc_key (id, case_key, link_kind)
        SELECT d.id,
               'rc:' || CASE WHEN d.source = :reception THEN COALESCE(d.reception_code, d.source_id)
                             ELSE d.reception_code END,
               CASE WHEN d.source = :reception THEN 'own' ELSE 'code' END
        FROM dossiers d JOIN rc_work w ON w.id = d.id
        WHERE d.source = :reception OR d.reception_code IS NOT NULL
    """), p)
    apart = _days_apart(conn, "o.received_at", "d.received_at")
    conn.execute(_sql(f"""
        INSERT INTO rc_key (id, case_key, link_kind)
        SELECT id, case_key, 'inferred' FROM (
            SELECT d.id AS id, 'rc:' || COALESCE(o.reception_code, o.source_id) AS case_key,
                   ROW_NUMBER() OVER (PARTITION BY d.id ORDER BY {apart},
                                      COALESCE(o.reception_code, o.source_id)) AS rn
            FROM dossiers d
            JOIN rc_work w ON w.id = d.id
            JOIN dossiers o ON o.source = :reception AND o.applicant_key = d.applicant_key
                           AND o.procedure_code = d.procedure_code AND o.received_at IS NOT NULL
            WHERE d.source <> :reception AND d.reception_code IS NULL AND d.applicant_key IS NOT NULL
              AND d.received_at IS NOT NULL AND {apart} <= :within
        ) picked WHERE rn = 1
    """), p)
    conn.execute(text("""
        INSERT INTO rc_key (id, case_key, link_kind)
        SELECT d.id, 'src:' || d.source || ':' || d.source_id, 'own'
        FROM dossiers d JOIN rc_work w ON w.id = d.id
        WHERE NOT EXISTS (SELECT 1 FROM rc_key k WHERE k.id = d.id)
    """))
    _temp_table(conn, "rc_aff", "case_key VARCHAR(300) PRIMARY KEY")
    conn.execute(text("""
        INSERT INTO rc_aff (case_key)
        SELECT case_key FROM rc_key
        UNION
        SELECT d.case_key FROM dossiers d JOIN rc_work w ON w.id = d.id WHERE d.case_key IS NOT NULL
    """))
    if full:  # cases left over from records that no longer exist
        conn.execute(text("""
            INSERT INTO rc_aff (case_key)
            SELECT c.case_key FROM cases c WHERE NOT EXISTS (SELECT 1 FROM rc_aff a WHERE a.case_key = c.case_key)
        """))
    conn.execute(text("""
        UPDATE dossiers SET case_key = rc_key.case_key, link_kind = rc_key.link_kind
        FROM rc_key WHERE rc_key.id = dossiers.id
    """))
    return int(conn.execute(text("SELECT COUNT(*) FROM rc_aff")).scalar_one())


_CASE_COLUMNS = (
    "case_key", "reception_code", "has_one_stop", "reception_source", "state_source", "procedure_code",
    "procedure_name", "field_code", "field_name", "applicant_name", "applicant_key", "channel", "status",
    "submitted_at", "received_at", "due_at", "ended_at", "received_on", "due_on", "ended_on", "digitised",
    "data_reused", "fee_required", "paid_online", "record_count", "inferred", "first_seen_at", "updated_at",
    "unknown_code_since", "mismatch_since", "quality_issue",
)


def _recompute_cases(conn: Connection, now: dt.datetime) -> None:
    """Rebuild the affected cases from their records in one INSERT … SELECT … ON CONFLICT."""
    conn.execute(text("""
        DELETE FROM cases WHERE case_key IN (SELECT case_key FROM rc_aff)
          AND NOT EXISTS (SELECT 1 FROM dossiers d WHERE d.case_key = cases.case_key)
    """))
    ended_at = ("CASE WHEN s.status IN ('resolved', 'delivered') THEN s.completed_at "
                "WHEN s.status = 'rejected' THEN s.rejected_at WHEN s.status = 'withdrawn' THEN s.withdrawn_at END")
    ended_flag = f"CASE WHEN status IN {_ENDED} THEN 1 ELSE 0 END"
    updates = ", ".join(f"{c} = excluded.{c}" for c in _CASE_COLUMNS if c != "case_key")
    # The two representative records of each case (reception facts, state) and the aggregates,
    # each into an indexed temporary table: joining a windowed CTE to itself would be quadratic.
    _temp_table(conn, "rc_pick", "case_key VARCHAR(300) PRIMARY KEY, r_id BIGINT NOT NULL, s_id BIGINT NOT NULL")
    conn.execute(_sql("""
        INSERT INTO rc_pick (case_key, r_id, s_id)
        SELECT case_key, MAX(CASE WHEN r_rank = 1 THEN id END), MAX(CASE WHEN s_rank = 1 THEN id END)
        FROM (
            SELECT d.id, d.case_key,
                   ROW_NUMBER() OVER (PARTITION BY d.case_key ORDER BY
                       CASE WHEN d.source = :reception THEN 0 ELSE 1 END,
                       CASE WHEN d.received_at IS NULL THEN 1 ELSE 0 END, d.received_at,
                       d.source, d.source_id) AS r_rank,
                   ROW_NUMBER() OVER (PARTITION BY d.case_key ORDER BY d.source_updated_at DESC,
                       CASE WHEN d.source = :reception THEN 0 ELSE 1 END, d.source, d.source_id) AS s_rank
            FROM dossiers d JOIN rc_aff a ON a.case_key = d.case_key
        ) ranked
        GROUP BY case_key
    """), {"reception": RECEPTION_SOURCE})
    _temp_table(conn, "rc_agg", "case_key VARCHAR(300) PRIMARY KEY, n INTEGER, digitised INTEGER, "
                "data_reused INTEGER, fee_required INTEGER, paid_online INTEGER, has_os INTEGER, inferred INTEGER, "
                "first_seen_at TIMESTAMP, last_update TIMESTAMP, os_ended INTEGER, min_ended INTEGER, "
                "max_ended INTEGER, cited_since TIMESTAMP")
    conn.execute(_sql(f"""
        INSERT INTO rc_agg
        SELECT d.case_key,
               COUNT(*),
               MAX(CASE WHEN d.digitised THEN 1 ELSE 0 END),
               MAX(CASE WHEN d.data_reused THEN 1 ELSE 0 END),
               MAX(CASE WHEN d.fee_required THEN 1 ELSE 0 END),
               MAX(CASE WHEN d.paid_online THEN 1 ELSE 0 END),
               MAX(CASE WHEN d.source = :reception THEN 1 ELSE 0 END),
               MAX(CASE WHEN d.link_kind = 'inferred' THEN 1 ELSE 0 END),
               MIN(d.first_seen_at),
               MAX(d.source_updated_at),
               MAX(CASE WHEN d.source = :reception THEN {ended_flag} END),
               MIN(CASE WHEN d.source <> :reception THEN {ended_flag} END),
               MAX(CASE WHEN d.source <> :reception THEN {ended_flag} END),
               MIN(CASE WHEN d.source <> :reception AND d.reception_code IS NOT NULL THEN d.first_seen_at END)
        FROM dossiers d JOIN rc_aff a ON a.case_key = d.case_key
        GROUP BY d.case_key
    """), {"reception": RECEPTION_SOURCE})
    conn.execute(_sql(f"""
        INSERT INTO cases ({", ".join(_CASE_COLUMNS)})
        SELECT a.case_key,
               CASE WHEN a.case_key LIKE 'rc:%' THEN SUBSTR(a.case_key, 4) END,
               a.has_os = 1, r.source, s.source, r.procedure_code, r.procedure_name, r.field_code,
               r.field_name, r.applicant_name, r.applicant_key, r.channel, s.status,
               r.submitted_at, r.received_at, s.due_at,
               CASE WHEN r.received_at IS NOT NULL AND ({ended_at}) < r.received_at
                    THEN r.received_at ELSE {ended_at} END,
               r.received_on, s.due_on,
               CASE WHEN r.received_on IS NOT NULL AND s.ended_on < r.received_on
                    THEN r.received_on ELSE s.ended_on END,
               a.digitised = 1, a.data_reused = 1, a.fee_required = 1, a.paid_online = 1,
               a.n, a.inferred = 1, a.first_seen_at, :now,
               CASE WHEN a.has_os = 0 AND a.case_key LIKE 'rc:%' THEN a.cited_since END,
               CASE WHEN a.has_os = 1 AND a.min_ended IS NOT NULL
                         AND (a.min_ended <> a.os_ended OR a.max_ended <> a.os_ended)
                    THEN a.last_update END,
               CASE WHEN s.ended_on IS NOT NULL AND r.received_on IS NOT NULL AND s.ended_on < r.received_on
                    THEN 'completion_before_reception'
                    WHEN s.status NOT IN {_NOT_COUNTED} AND s.due_on IS NULL THEN 'no_due_date'
               END
        FROM rc_agg a
        JOIN rc_pick p ON p.case_key = a.case_key
        JOIN dossiers r ON r.id = p.r_id
        JOIN dossiers s ON s.id = p.s_id
        WHERE TRUE
        ON CONFLICT (case_key) DO UPDATE SET {updates}
    """, now=UTCDateTime()), {"now": now})
    conn.execute(text("""
        UPDATE dossiers SET case_id = cases.id
        FROM cases WHERE cases.case_key = dossiers.case_key
          AND dossiers.case_key IN (SELECT case_key FROM rc_aff)
          AND (dossiers.case_id IS NULL OR dossiers.case_id <> cases.id)
    """))


def _sync_flags(conn: Connection, full: bool, now: dt.datetime) -> tuple[int, int]:
    """Raise, clear and re-open flags for the affected cases and for those that came due."""
    due = now - FLAG_DELAY
    _temp_table(conn, "rc_scope", "case_key VARCHAR(300) PRIMARY KEY")
    conn.execute(_sql("""
        INSERT INTO rc_scope (case_key)
        SELECT case_key FROM rc_aff
        UNION SELECT case_key FROM cases WHERE unknown_code_since <= :due OR mismatch_since <= :due
    """, due=UTCDateTime()), {"due": due})
    if full:
        conn.execute(text("""
            INSERT INTO rc_scope (case_key) SELECT DISTINCT subject_key FROM flags
            WHERE NOT EXISTS (SELECT 1 FROM rc_scope s WHERE s.case_key = flags.subject_key)
        """))
    rows = conn.execute(_sql("""
        SELECT c.id, c.case_key, c.has_one_stop, c.reception_code, c.unknown_code_since, c.mismatch_since,
               c.quality_issue
        FROM cases c JOIN rc_scope s ON s.case_key = c.case_key
        WHERE c.has_one_stop = FALSE OR c.quality_issue IS NOT NULL
           OR c.unknown_code_since <= :due OR c.mismatch_since <= :due
    """, due=UTCDateTime()).columns(unknown_code_since=UTCDateTime(), mismatch_since=UTCDateTime()),
        {"due": due}).all()
    want: dict[tuple[str, str], tuple[int, str | None]] = {}
    for r in rows:
        if not r.has_one_stop:
            want[(BYPASSED, r.case_key)] = (r.id, None)
        if r.unknown_code_since is not None and r.unknown_code_since <= due:
            want[(UNKNOWN_CODE, r.case_key)] = (r.id, json.dumps({"reception_code": r.reception_code}))
        if r.mismatch_since is not None and r.mismatch_since <= due:
            want[(STATUS_MISMATCH, r.case_key)] = (r.id, None)
        if r.quality_issue:
            want[(DATA_QUALITY, r.case_key)] = (r.id, json.dumps({"issue": r.quality_issue}))
    have = {(f.kind, f.subject_key): f for f in conn.execute(text("""
        SELECT f.id, f.kind, f.subject_key, f.state, f.case_id, f.details
        FROM flags f JOIN rc_scope s ON s.case_key = f.subject_key
    """))}
    raised = cleared = 0
    events: list[dict[str, Any]] = []
    new_keys = [k for k in want if k not in have]
    if new_keys:
        conn.execute(flags.insert(), [
            {"kind": kind, "subject_key": key, "case_id": want[(kind, key)][0], "dossier_id": None,
             "state": "open", "details": want[(kind, key)][1], "raised_at": now}
            for kind, key in new_keys])
        raised += len(new_keys)
        ids = _flag_ids(conn, new_keys)
        events += [{"flag_id": i, "event": "raised", "at": now, "note": None} for i in ids]
    for (kind, key), f in have.items():
        wanted = want.get((kind, key))
        if wanted is not None and f.state != "open":
            conn.execute(flags.update().where(flags.c.id == f.id).values(
                state="open", raised_at=now, cleared_at=None, acknowledged_at=None, ack_note=None,
                case_id=wanted[0], details=wanted[1]))
            events.append({"flag_id": f.id, "event": "raised", "at": now, "note": None})
            raised += 1
        elif wanted is not None and (f.case_id != wanted[0] or f.details != wanted[1]):
            conn.execute(flags.update().where(flags.c.id == f.id).values(case_id=wanted[0], details=wanted[1]))
        elif wanted is None and f.state == "open":
            conn.execute(flags.update().where(flags.c.id == f.id).values(state="cleared", cleared_at=now))
            events.append({"flag_id": f.id, "event": "cleared", "at": now, "note": None})
            cleared += 1
    if events:
        conn.execute(flag_events.insert(), events)
    return raised, cleared


def _flag_ids(conn: Connection, keys: list[tuple[str, str]]) -> list[int]:
    ids: list[int] = []
    for i in range(0, len(keys), 400):
        chunk = keys[i : i + 400]
        for kind in {k for k, _ in chunk}:
            subjects = [s for k, s in chunk if k == kind]
            ids += conn.execute(flags.select().with_only_columns(flags.c.id).where(
                flags.c.kind == kind, flags.c.subject_key.in_(subjects))).scalars().all()
    return ids


def _remember(conn: Connection, now: dt.datetime, full: bool) -> None:
    stmt = dialect_insert(conn, agent_state).values(
        name="last_reconcile", value=json.dumps({"at": now.isoformat(), "full": full}), updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"value": stmt.excluded.value, "updated_at": now}))
