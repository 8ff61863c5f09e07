"""evidence

Issue 28: the model inventory (model_profiles: owner account, intended and out-of-scope use, tags), periodic
reviews (model_reviews) and signed test reports of every gate evaluation (test_reports).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_profiles',
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('intended_use', sa.Text(), nullable=False),
    sa.Column('out_of_scope_use', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', db.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('model')
    )
    op.create_table('model_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('reviewer', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('risk_tier', sa.String(length=16), nullable=False),
    sa.Column('next_due', db.models.UTCDateTime(), nullable=True),
    sa.Column('ts', db.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_model_reviews_model', 'model_reviews', ['model', 'id'], unique=False)
    op.create_table('test_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('context', sa.String(length=32), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('report_sha256', sa.String(length=64), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_test_reports_version', 'test_reports', ['model', 'version', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_test_reports_version', table_name='test_reports')
    op.drop_table('test_reports')
    op.drop_index('ix_model_reviews_model', table_name='model_reviews')
    op.drop_table('model_reviews')
    op.drop_table('model_profiles')
