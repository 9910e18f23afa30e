"""initial store

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 17:52:37.804750
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync_agent.store.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agent_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_agent_state'))
    )
    op.create_table('cases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('case_key', sa.String(length=300), nullable=False),
    sa.Column('reception_code', sa.String(length=128), nullable=True),
    sa.Column('has_one_stop', sa.Boolean(), nullable=False),
    sa.Column('reception_source', sa.String(length=64), nullable=False),
    sa.Column('state_source', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_name', sa.Text(), nullable=True),
    sa.Column('field_code', sa.String(length=64), nullable=True),
    sa.Column('field_name', sa.Text(), nullable=True),
    sa.Column('applicant_name', sa.Text(), nullable=True),
    sa.Column('applicant_key', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('submitted_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('received_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('due_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('ended_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('digitised', sa.Boolean(), nullable=False),
    sa.Column('data_reused', sa.Boolean(), nullable=False),
    sa.Column('fee_required', sa.Boolean(), nullable=False),
    sa.Column('paid_online', sa.Boolean(), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('inferred', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('first_seen_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('case_key', name=op.f('uq_cases_case_key'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_ended_on'), ['ended_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_received_on'), ['received_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_reception_code'), ['reception_code'], unique=False)

    op.create_table('dossiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('reception_code', sa.String(length=128), nullable=True),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_name', sa.Text(), nullable=True),
    sa.Column('field_code', sa.String(length=64), nullable=True),
    sa.Column('field_name', sa.Text(), nullable=True),
    sa.Column('applicant_name', sa.Text(), nullable=True),
    sa.Column('applicant_key', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('submitted_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('received_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('due_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('completed_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('rejected_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('withdrawn_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('digitised', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('data_reused', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('fee_required', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('paid_online', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('source_updated_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('raw_payload', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link_kind', sa.String(length=16), nullable=True),
    sa.Column('needs_reconcile', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dossiers')),
    sa.UniqueConstraint('source', 'source_id', name=op.f('uq_dossiers_source_source_id'))
    )
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dossiers_applicant_key_procedure_code'), ['applicant_key', 'procedure_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossiers_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossiers_needs_reconcile'), ['needs_reconcile'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossiers_reception_code'), ['reception_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossiers_source_source_updated_at'), ['source', 'source_updated_at'], unique=False)

    op.create_table('flags',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject_key', sa.String(length=300), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('dossier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('details', sa.Text(), nullable=True),
    sa.Column('raised_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('cleared_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('ack_note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags')),
    sa.UniqueConstraint('kind', 'subject_key', name=op.f('uq_flags_kind_subject_key'))
    )
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flags_state_kind'), ['state', 'kind'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw_payload', sa.Text(), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('source_updated_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('first_seen_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('times_seen', sa.Integer(), server_default='1', nullable=False),
    sa.Column('first_run_id', sa.Integer(), nullable=True),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('superseded_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    sa.UniqueConstraint('source', 'payload_hash', name=op.f('uq_quarantine_source_payload_hash'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_source_source_id'), ['source', 'source_id'], unique=False)

    op.create_table('sync_cursors',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('cursor', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_sync_cursors'))
    )
    op.create_table('sync_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('started_at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pages', sa.Integer(), server_default='0', nullable=False),
    sa.Column('fetched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('inserted', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unchanged', sa.Integer(), server_default='0', nullable=False),
    sa.Column('quarantined', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cursor_before', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('cursor_after', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('window_start', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.Column('window_end', sync_agent.store.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_source_started_at'), ['source', 'started_at'], unique=False)

    op.create_table('flag_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('flag_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('at', sync_agent.store.types.UTCDateTime(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['flag_id'], ['flags.id'], name=op.f('fk_flag_events_flag_id_flags')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flag_events'))
    )
    with op.batch_alter_table('flag_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flag_events_flag_id'), ['flag_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('flag_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flag_events_flag_id'))

    op.drop_table('flag_events')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_runs_source_started_at'))

    op.drop_table('sync_runs')
    op.drop_table('sync_cursors')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_source_source_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flags_state_kind'))

    op.drop_table('flags')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dossiers_source_source_updated_at'))
        batch_op.drop_index(batch_op.f('ix_dossiers_reception_code'))
        batch_op.drop_index(batch_op.f('ix_dossiers_needs_reconcile'))
        batch_op.drop_index(batch_op.f('ix_dossiers_case_id'))
        batch_op.drop_index(batch_op.f('ix_dossiers_applicant_key_procedure_code'))

    op.drop_table('dossiers')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_reception_code'))
        batch_op.drop_index(batch_op.f('ix_cases_received_on'))
        batch_op.drop_index(batch_op.f('ix_cases_ended_on'))

    op.drop_table('cases')
    op.drop_table('agent_state')
