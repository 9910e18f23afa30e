"""case keys and flag conditions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 18:51:56.923684
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync_agent.store.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unknown_code_since', sync_agent.store.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('mismatch_since', sync_agent.store.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('quality_issue', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_mismatch_since'), ['mismatch_since'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_unknown_code_since'), ['unknown_code_since'], unique=False)

    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_key', sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_dossiers_case_key'), ['case_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dossiers_case_key'))
        batch_op.drop_column('case_key')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_unknown_code_since'))
        batch_op.drop_index(batch_op.f('ix_cases_mismatch_since'))
        batch_op.drop_column('quality_issue')
        batch_op.drop_column('mismatch_since')
        batch_op.drop_column('unknown_code_since')
