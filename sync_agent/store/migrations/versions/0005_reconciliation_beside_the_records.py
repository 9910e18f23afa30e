"""reconciliation state beside the records: case_links and reconcile_queue

A record's case, link kind and "needs reconciling" mark leave the ``dossiers`` row for two narrow
tables. Writing them no longer rewrites the record's wide row (its raw payload included): a full
rebuild of a million records wrote the whole store once for the links and once for the marks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 22:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'reconcile_queue',
        sa.Column('dossier_id', _BIG_ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint('dossier_id', name=op.f('pk_reconcile_queue')),
    )
    op.create_table(
        'case_links',
        sa.Column('dossier_id', _BIG_ID, autoincrement=False, nullable=False),
        sa.Column('case_id', _BIG_ID, nullable=False),
        sa.Column('link_kind', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('dossier_id', name=op.f('pk_case_links')),
    )
    op.execute("INSERT INTO reconcile_queue (dossier_id) SELECT id FROM dossiers WHERE needs_reconcile")
    op.execute("INSERT INTO case_links (dossier_id, case_id, link_kind) "
               "SELECT id, case_id, COALESCE(link_kind, 'own') FROM dossiers WHERE case_id IS NOT NULL")
    op.create_index(op.f('ix_case_links_case_id'), 'case_links', ['case_id'], unique=False)
    op.drop_index(op.f('ix_dossiers_needs_reconcile'), table_name='dossiers')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dossiers_case_id'))
        batch_op.drop_column('needs_reconcile')
        batch_op.drop_column('link_kind')
        batch_op.drop_column('case_id')


def downgrade() -> None:
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_id', _BIG_ID, nullable=True))
        batch_op.add_column(sa.Column('link_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('needs_reconcile', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f('ix_dossiers_case_id'), ['case_id'], unique=False)
    op.execute("UPDATE dossiers SET case_id = (SELECT k.case_id FROM case_links k WHERE k.dossier_id = dossiers.id), "
               "link_kind = (SELECT k.link_kind FROM case_links k WHERE k.dossier_id = dossiers.id)")
    op.execute("UPDATE dossiers SET needs_reconcile = TRUE "
               "WHERE id IN (SELECT dossier_id FROM reconcile_queue)")
    op.create_index(op.f('ix_dossiers_needs_reconcile'), 'dossiers', ['needs_reconcile'], unique=False,
                    sqlite_where=sa.text('needs_reconcile'), postgresql_where=sa.text('needs_reconcile'))
    op.drop_index(op.f('ix_case_links_case_id'), table_name='case_links')
    op.drop_table('case_links')
    op.drop_table('reconcile_queue')
