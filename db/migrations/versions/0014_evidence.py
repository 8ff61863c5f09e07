"""evidence

Reserved for issue 28, inventory, reviews and signed test reports: the tables and columns it adds (nothing yet).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:00:00
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import db.models  # noqa: F401


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
