"""The store's tables (SQLAlchemy Core). Alembic migrations create them; tests compare the two.

Instants are ``UTCDateTime``. The local calendar dates that the counting rules compare
(``received_on``, ``due_on``, ``ended_on``) are stored beside them, computed in the ward's time
zone when the record is written, so that period counting is plain, portable SQL on dates.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from sync_agent.store.types import BigId, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# --- sync ------------------------------------------------------------------------------------

dossiers = Table(
    "dossiers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("reception_code", String(128)),
    Column("procedure_code", String(64), nullable=False),
    Column("procedure_name", Text),
    Column("field_code", String(64)),
    Column("field_name", Text),
    Column("applicant_name", Text),
    Column("applicant_key", String(64)),
    Column("channel", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("received_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("rejected_at", UTCDateTime),
    Column("withdrawn_at", UTCDateTime),
    Column("received_on", Date),
    Column("due_on", Date),
    Column("ended_on", Date),
    Column("digitised", Boolean, nullable=False, server_default=false()),
    Column("data_reused", Boolean, nullable=False, server_default=false()),
    Column("fee_required", Boolean, nullable=False, server_default=false()),
    Column("paid_online", Boolean, nullable=False, server_default=false()),
    Column("source_updated_at", UTCDateTime, nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("last_run_id", Integer),
    UniqueConstraint("source", "source_id"),
    Index(None, "reception_code"),
    Index(None, "applicant_key", "procedure_code"),
    Index(None, "source", "source_updated_at"),
)

# What reconciliation knows about a record lives beside it, in narrow tables, never in the record's
# own (wide) row: marking, linking and clearing a mark then write a few bytes, not the row with its
# raw payload, and a full rebuild of a million records does not rewrite the store.

#: records stored or changed since reconciliation last took them on (the sync adds, a run takes)
reconcile_queue = Table(
    "reconcile_queue",
    metadata,
    Column("dossier_id", BigId, primary_key=True, autoincrement=False),
)

#: each reconciled record's case (the smallest dossier id among the case's records) and how it got there
case_links = Table(
    "case_links",
    metadata,
    Column("dossier_id", BigId, primary_key=True, autoincrement=False),
    Column("case_id", BigId, nullable=False),
    Column("link_kind", String(16), nullable=False),  # own | code | inferred
    Index(None, "case_id"),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("cursor", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),  # running | success | failed | interrupted
    Column("pages", Integer, nullable=False, server_default="0"),
    Column("fetched", Integer, nullable=False, server_default="0"),
    Column("inserted", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("unchanged", Integer, nullable=False, server_default="0"),
    Column("quarantined", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("cursor_before", UTCDateTime),
    Column("cursor_after", UTCDateTime),
    Column("window_start", UTCDateTime),
    Column("window_end", UTCDateTime),
    Index(None, "source", "started_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("source_id", String(128)),
    Column("reason", Text, nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("source_updated_at", UTCDateTime),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("times_seen", Integer, nullable=False, server_default="1"),
    Column("first_run_id", Integer),
    Column("last_run_id", Integer),
    # when a later, valid version of the same source record was stored
    Column("superseded_at", UTCDateTime),
    # when an operator looked at it and left it (``quarantine ack``), and what they noted
    Column("acknowledged_at", UTCDateTime),
    Column("ack_note", Text),
    UniqueConstraint("source", "payload_hash"),
    Index(None, "source", "source_id"),
)

# --- reconciliation --------------------------------------------------------------------------

cases = Table(
    "cases",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # "rc:<reception code>" for a case with a reception code, "src:<source>:<source id>" else
    Column("case_key", String(300), nullable=False),
    Column("reception_code", String(128)),
    Column("has_one_stop", Boolean, nullable=False),
    Column("reception_source", String(64), nullable=False),  # source of the reception facts
    Column("state_source", String(64), nullable=False),  # source of status/due/end
    Column("procedure_code", String(64), nullable=False),
    Column("procedure_name", Text),
    Column("field_code", String(64)),
    Column("field_name", Text),
    Column("applicant_name", Text),
    Column("applicant_key", String(64)),
    Column("channel", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("received_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("received_on", Date),
    Column("due_on", Date),
    Column("ended_on", Date),
    Column("digitised", Boolean, nullable=False),
    Column("data_reused", Boolean, nullable=False),
    Column("fee_required", Boolean, nullable=False),
    Column("paid_online", Boolean, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("inferred", Boolean, nullable=False, server_default=false()),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # when the conditions of the time-dependent flags began (NULL: they do not hold)
    Column("unknown_code_since", UTCDateTime),
    Column("mismatch_since", UTCDateTime),
    Column("quality_issue", Text),
    Index(None, "received_on"),
    Index(None, "unknown_code_since"),
    Index(None, "mismatch_since"),
    Index(None, "ended_on"),
    Index(None, "reception_code"),
    # an index rather than a constraint, so that the first full reconciliation may build it once
    # the table is filled (see ``reconcile._Run.indexed_after_first_fill``)
    Index(None, "case_key", unique=True),
)

flags = Table(
    "flags",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    # what the flag is about, stable across rebuilds: the case key, or "<source>:<source id>"
    Column("subject_key", String(300), nullable=False),
    Column("case_id", BigId),
    Column("dossier_id", BigId),
    Column("state", String(16), nullable=False),  # open | cleared
    Column("details", Text),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime),
    Column("acknowledged_at", UTCDateTime),
    Column("ack_note", Text),
    UniqueConstraint("kind", "subject_key"),
    Index(None, "state", "kind"),
)

flag_events = Table(
    "flag_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("flag_id", BigId, ForeignKey("flags.id"), nullable=False),
    Column("event", String(16), nullable=False),  # raised | cleared | acknowledged
    Column("at", UTCDateTime, nullable=False),
    Column("note", Text),
    Index(None, "flag_id"),
)

agent_state = Table(
    "agent_state",
    metadata,
    # small named values: last reconciliation, last digest, ... (one row each)
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- outgoing messages -------------------------------------------------------------------------

deliveries = Table(
    "deliveries",
    metadata,
    # One row per message that must go out at most once: the period report's email, a day's
    # alert digest, each webhook. "preparing" while the message is written, "sending" just
    # before the SMTP/HTTP call and "sent" after, so a crash in between is noticed and never
    # silently repeated.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),  # e.g. "report:2026-02", "alerts:2026-11-27"
    Column("channel", String(200), nullable=False),  # "email", "webhook:<url>"
    Column("message_id", String(300), nullable=False),
    Column("status", String(16), nullable=False),  # preparing | sending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("recipients", Text),
    Column("subject", Text),
    Column("payload", Text),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    UniqueConstraint("key", "channel"),
)
