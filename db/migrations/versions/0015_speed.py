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
    pass


def downgrade() -> None:
    pass
