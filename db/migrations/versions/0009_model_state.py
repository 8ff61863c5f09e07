"""model state

The DB owns where each model alias points now (``current_aliases``, beside the ``alias_history`` it is
the head of); MLflow's alias becomes a projection of it. Filled from each alias's newest history row,
taken as already projected (until now every move set MLflow's alias in the same unit).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 17:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('current_aliases',
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('move_id', sa.Integer(), nullable=False),
    sa.Column('since', db.models.UTCDateTime(), nullable=False),
    sa.Column('projected', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['move_id'], ['alias_history.id'], ),
    sa.PrimaryKeyConstraint('model', 'alias')
    )
    op.execute(
        "INSERT INTO current_aliases (model, alias, version, move_id, since, projected) "
        "SELECT h.model, h.alias, h.to_version, h.id, h.ts, h.to_version FROM alias_history h "
        "WHERE h.id = (SELECT max(n.id) FROM alias_history n WHERE n.model = h.model AND n.alias = h.alias)")


def downgrade() -> None:
    op.drop_table('current_aliases')
