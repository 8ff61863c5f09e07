"""own models

Reserved for issue 24, bring your own model: the tables and columns it adds (nothing yet).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 19:00:00
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import db.models  # noqa: F401


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
