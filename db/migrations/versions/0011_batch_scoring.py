"""batch scoring

Issue 25, batch scoring and explanations: one row per batch scoring run (batch_runs). The scored rows themselves go
to the prediction log's Parquet tier (their batch id is their request id), so the log's tables do not change.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 19:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('out', sa.Text(), nullable=False),
    sa.Column('id_column', sa.String(length=255), nullable=True),
    sa.Column('explain', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('output_sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('schedule', sa.String(length=255), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('started_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', db.models.UTCDateTime(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_batch_runs_model', 'batch_runs', ['model', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_batch_runs_model', table_name='batch_runs')
    op.drop_table('batch_runs')
