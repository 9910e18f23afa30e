"""the cases' unique key as a unique index instead of a constraint

The same uniqueness, but an index can be dropped while the first full reconciliation fills the
table and built once afterwards. Kept up to date row by row, in case id order, the key's B-tree
took most of that fill's time at a million cases.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 04:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_cases_case_key'), type_='unique')
        batch_op.create_index(batch_op.f('ix_cases_case_key'), ['case_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_case_key'))
        batch_op.create_unique_constraint(batch_op.f('uq_cases_case_key'), ['case_key'])
