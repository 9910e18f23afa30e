"""runs' errors keep a failed statement's first line, not its parameters

Before, a run failed by a database error kept SQLAlchemy's whole message: the statement and every
parameter of the page (applicants' names, raw payloads), and PostgreSQL's ``Failing row
contains`` line. ``runs`` and ``status`` showed it, and the report's email carried the last
one. New runs keep only the driver's first line; this cuts the ones stored before to theirs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: what SQLAlchemy adds to a failed statement's error on the lines after the driver's own
_ADDED = ("\n[SQL: ", "\n[parameters: ", "\nDETAIL:  ")
#: what a cut error ends with, so an operator knows why it is short
CUT = " [the statement and its values are no longer kept]"


def cut(error: str) -> str:
    """``error`` down to its first line, when a failed statement's lines follow it."""
    if not any(part in error for part in _ADDED):
        return error
    return error.split("\n", 1)[0][:1900] + CUT


def upgrade() -> None:
    conn = op.get_bind()
    runs = sa.table("sync_runs", sa.column("id", sa.BigInteger), sa.column("error", sa.Text))
    rows = conn.execute(sa.select(runs.c.id, runs.c.error).where(
        sa.or_(*(runs.c.error.contains(part.strip("\n")) for part in _ADDED)))).all()
    for run_id, error in rows:
        shorter = cut(error)
        if shorter != error:
            conn.execute(runs.update().where(runs.c.id == run_id).values(error=shorter))


def downgrade() -> None:
    pass  # what was cut is gone
