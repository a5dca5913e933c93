"""Room on each person page for updates in place (HOT): a new phone or address rewrites no index.

Revision ID: 0004_person_fillfactor
Revises: 0003_bulk_without_fk
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_person_fillfactor"
down_revision: str | Sequence[str] | None = "0003_bulk_without_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE person SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE person RESET (fillfactor)")
