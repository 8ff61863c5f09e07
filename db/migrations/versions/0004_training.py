"""training

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Training runs: what was trained on which dataset version, its metrics, plots and reference
statistics for drift monitoring, and where MLflow keeps the run and the model version.
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('dataset_version_id', sa.Integer(), nullable=True),
    sa.Column('dataset_name', sa.String(length=64), nullable=False),
    sa.Column('dataset_version', sa.Integer(), nullable=False),
    sa.Column('dataset_sha256', sa.String(length=64), nullable=False),
    sa.Column('model_name', sa.String(length=255), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
    sa.Column('mlflow_experiment_id', sa.String(length=64), nullable=True),
    sa.Column('model_uri', sa.String(length=255), nullable=True),
    sa.Column('model_kind', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('sensitive', sa.String(length=255), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('primary_metric', sa.String(length=32), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('baseline', sa.JSON(), nullable=True),
    sa.Column('fairness', sa.JSON(), nullable=True),
    sa.Column('plots', sa.JSON(), nullable=True),
    sa.Column('reference', sa.JSON(), nullable=True),
    sa.Column('search', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('started_at', db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index('ix_training_runs_dataset', ['dataset_name', 'id'], unique=False)
        batch_op.create_index('ix_training_runs_job', ['job_id'], unique=False)
        batch_op.create_index('ix_training_runs_kind', ['model_kind', 'id'], unique=False)
        batch_op.create_index('ix_training_runs_mlflow_run', ['mlflow_run_id'], unique=False)
        batch_op.create_index('ix_training_runs_model', ['model_name', 'model_version'], unique=False)
        batch_op.create_index('ix_training_runs_status', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_training_runs_status')
        batch_op.drop_index('ix_training_runs_model')
        batch_op.drop_index('ix_training_runs_mlflow_run')
        batch_op.drop_index('ix_training_runs_kind')
        batch_op.drop_index('ix_training_runs_job')
        batch_op.drop_index('ix_training_runs_dataset')

    op.drop_table('training_runs')
