"""queue the records of every case with a status-mismatch clock for recomputation

From this revision a status mismatch counts from when the records began to disagree (the ended
record's end, the open record's reception), no longer from their latest update. Cases computed
before keep the old instant until one of their records changes, which could raise a flag up to a
day late; queueing their records makes the next reconciliation recompute them. Data only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 15:55:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        INSERT INTO reconcile_queue (dossier_id)
        SELECT l.dossier_id FROM case_links l JOIN cases c ON c.id = l.case_id
        WHERE c.mismatch_since IS NOT NULL
        ON CONFLICT DO NOTHING""")


def downgrade() -> None:
    pass  # nothing to undo: a queued record is only recomputed
