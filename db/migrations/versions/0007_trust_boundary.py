"""trust boundary

Who asked for each logged prediction (feedback is bound to it), and accounts that must choose a new
password at their next login (the generated admin password is shown once).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prediction_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by', sa.String(length=128), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
    with op.batch_alter_table('prediction_log', schema=None) as batch_op:
        batch_op.drop_column('requested_by')
