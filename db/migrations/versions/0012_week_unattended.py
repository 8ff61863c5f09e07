"""week unattended

Issue 26, a week unattended: a dataset version can be deprecated (never picked by default), a failed job
keeps its traceback apart from its one-line reason (admins only), an alert names the subject its cooldown
is about.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 19:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deprecated_at', db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deprecated_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('deprecation_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traceback', sa.Text(), nullable=True))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('subject')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('traceback')
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_column('deprecation_reason')
        batch_op.drop_column('deprecated_by')
        batch_op.drop_column('deprecated_at')
