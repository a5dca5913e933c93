"""The roll-up counts the sharing requests that failed on the server's side (audit outcome `error`).

A request the service could not answer (a fault of its own, the database unavailable) left no audit
record, so the monitor never saw it: the sharing service now audits it with outcome `error`, and
the roll-up counts those per hour and client like the refusals. Rows rolled up before hold 0: no
record had that outcome.

Revision ID: 0403_audit_hourly_failed
Revises: 0402_audit_hourly
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0403_audit_hourly_failed"
down_revision: str | Sequence[str] | None = "0402_audit_hourly"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_hourly", sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("audit_hourly", "failed")
