"""own models

Bring your own model: ``model_imports`` records where an imported version came from (file, format, sha256,
who), and whether a retrain can refit it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 19:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('training_run_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=255), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('estimator', sa.String(length=512), nullable=False),
    sa.Column('refittable', sa.Boolean(), nullable=False),
    sa.Column('trusted_types', sa.JSON(), nullable=False),
    sa.Column('claimed_metrics', sa.JSON(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('refit_of', sa.Integer(), nullable=True),
    sa.Column('imported_by', sa.String(length=128), nullable=False),
    sa.Column('imported_at', db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('training_run_id')
    )
    op.create_index('ix_model_imports_model', 'model_imports', ['model_name', 'model_version'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_model_imports_model', table_name='model_imports')
    op.drop_table('model_imports')
