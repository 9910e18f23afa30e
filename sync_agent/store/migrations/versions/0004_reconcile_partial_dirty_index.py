"""reconcile without dossier case keys; partial needs_reconcile index

Reconciliation now derives a case's id from its records, so ``dossiers.case_key`` is no longer
written. The ``needs_reconcile`` index only needs the marked rows: as a partial index, clearing a
mark is one index deletion instead of a move, and the index is as small as the backlog.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 19:11:09.503555
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dossiers_case_key'))
        batch_op.drop_index(batch_op.f('ix_dossiers_needs_reconcile'))
        batch_op.drop_column('case_key')
    # outside the batch: a recreated SQLite table would lose the WHERE clause
    op.create_index(op.f('ix_dossiers_needs_reconcile'), 'dossiers', ['needs_reconcile'], unique=False,
                    sqlite_where=sa.text('needs_reconcile'), postgresql_where=sa.text('needs_reconcile'))


def downgrade() -> None:
    op.drop_index(op.f('ix_dossiers_needs_reconcile'), table_name='dossiers')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_key', sa.VARCHAR(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_dossiers_case_key'), ['case_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossiers_needs_reconcile'), ['needs_reconcile'], unique=False)
