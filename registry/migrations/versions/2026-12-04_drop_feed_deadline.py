"""Drop feed.deadline: written from the feed specs on every sync and never read.

The deadline a feed's daily file is due at lives in its spec (schemas/feeds/*.yaml, `schedule`), which
the monitor's timeliness reads; the copy in the database only could drift from it.

Revision ID: 0007_drop_feed_deadline
Revises: 0006_audit_at_brin
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_drop_feed_deadline"
down_revision: str | Sequence[str] | None = "0006_audit_at_brin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("feed", "deadline")


def downgrade() -> None:
    op.add_column("feed", sa.Column("deadline", sa.String(length=5), nullable=True))
