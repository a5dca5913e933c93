"""Monitoring: the alert table.

Revision ID: 0401_monitor
Revises:
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0401_monitor"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("monitor",)
depends_on: str | Sequence[str] | None = "0001_unified_schema"


def upgrade() -> None:
    op.create_table(
        "monitor_alert",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("link", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("as_of_date", sa.Date(), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("notified_state", sa.String(length=8), nullable=True),
        sa.Column("notify_error", sa.String(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'resolved')", name=op.f("ck_monitor_alert_state")),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_monitor_alert_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alert")),
    )
    op.create_index(
        "ux_monitor_alert_open_key",
        "monitor_alert",
        ["key"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_monitor_alert_state_raised", "monitor_alert", ["state", "raised_at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_alert_state_raised", table_name="monitor_alert")
    op.drop_index("ux_monitor_alert_open_key", table_name="monitor_alert")
    op.drop_table("monitor_alert")
