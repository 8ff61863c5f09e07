"""accounts

Browser sessions that survive a reload (an HttpOnly cookie holds a random id; its hash is a row here),
API tokens that belong to a user and expire, and failed-login counters per client address.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:30:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', db.models.UTCDateTime(), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_hash')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index('ix_sessions_user', ['user_id'], unique=False)
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_failed_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('last_failed_at', db.models.UTCDateTime(), nullable=False),
    sa.Column('blocked_until', db.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', db.models.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key('fk_api_tokens_owner_id_users', 'users', ['owner_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_tokens_owner_id_users', type_='foreignkey')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('owner_id')
    op.drop_table('login_throttle')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_user')
    op.drop_table('sessions')
