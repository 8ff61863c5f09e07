"""batch scoring

Reserved for issue 25, batch scoring and explanations: the tables and columns it adds (nothing yet).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 19:00:00
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import db.models  # noqa: F401


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
