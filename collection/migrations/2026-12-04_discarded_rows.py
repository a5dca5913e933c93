"""Discarded rows: an officer may drop a row (a duplicate, somebody of another community) with a reason;
the day's clearance counts them.

Revision ID: 0302_discarded_rows
Revises: 0301_collection
Create Date: 2026-12-04 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0302_discarded_rows"
down_revision: str | Sequence[str] | None = "0301_collection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('pending', 'accepted', 'rejected', 'corrected')"
NEW = "status IN ('pending', 'accepted', 'rejected', 'corrected', 'discarded')"


def upgrade() -> None:
    """Allow status 'discarded' with its reason; clearance counts discarded rows."""
    op.drop_constraint(op.f("ck_collection_row_status"), "collection_row", type_="check")
    op.create_check_constraint(op.f("ck_collection_row_status"), "collection_row", NEW)
    op.add_column("collection_row", sa.Column("discard_reason", sa.String(length=200), nullable=True))
    op.add_column(
        "collection_clearance", sa.Column("discarded", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    """Discarded rows become rejected ones again (still open), the columns go."""
    op.drop_column("collection_clearance", "discarded")
    op.execute("UPDATE collection_row SET status = 'rejected', closed_at = NULL WHERE status = 'discarded'")
    op.drop_column("collection_row", "discard_reason")
    op.drop_constraint(op.f("ck_collection_row_status"), "collection_row", type_="check")
    op.create_check_constraint(op.f("ck_collection_row_status"), "collection_row", OLD)
