"""quarantined records can be acknowledged with a note

A record with no source id, or one its source never sends again, is never superseded: without
an acknowledgement it was shown as "to check" in every status and report for good.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 14:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync_agent.store.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', sync_agent.store.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('ack_note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_column('ack_note')
        batch_op.drop_column('acknowledged_at')
