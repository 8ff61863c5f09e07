"""speed

Reserved for issue 29, speed and crash safety: the tables and columns it adds (nothing yet).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:00:00
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import db.models  # noqa: F401


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # -- issue 29 pages and crash safety (helper 29b): begin ----------------------------------------------
    op.create_table('pending_registrations',
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=False),
    sa.Column('training_run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('model_name', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mlflow_run_id')
    )
    op.create_index('ix_prediction_feedback_model_request', 'prediction_feedback', ['model', 'request_id'],
                    unique=False)
    # -- issue 29 pages and crash safety (helper 29b): end ------------------------------------------------


def downgrade() -> None:
    # -- issue 29 pages and crash safety (helper 29b): begin ----------------------------------------------
    op.drop_index('ix_prediction_feedback_model_request', table_name='prediction_feedback')
    op.drop_table('pending_registrations')
    # -- issue 29 pages and crash safety (helper 29b): end ------------------------------------------------
