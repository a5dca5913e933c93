"""A BRIN index on audit_log.at: the monitor's counts by time range stop scanning the whole log.

The log only grows (the sharing service adds a record per request), and rows arrive in time order, so
a block-range index answers "records between start and end" by reading only those blocks, at a few
kilobytes of index per million rows and next to nothing per insert.

Revision ID: 0006_audit_at_brin
Revises: 0005_audit_id_under_lock
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_audit_at_brin"
down_revision: str | Sequence[str] | None = "0005_audit_id_under_lock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False, postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
