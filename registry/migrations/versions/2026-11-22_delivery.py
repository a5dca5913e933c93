"""Deliveries: every arrival of a file, duplicates included (timeliness is measured on them).

Revision ID: 0002_delivery
Revises: 0001_unified_schema
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_delivery"
down_revision: str | Sequence[str] | None = "0001_unified_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_delivery_batch_id_batch")),
        sa.ForeignKeyConstraint(["source"], ["feed.source"], name=op.f("fk_delivery_source_feed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
    )
    op.create_index(op.f("ix_delivery_batch_id"), "delivery", ["batch_id"], unique=False)
    op.create_index("ix_delivery_source_date", "delivery", ["source", "as_of_date"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_source_date", table_name="delivery")
    op.drop_index(op.f("ix_delivery_batch_id"), table_name="delivery")
    op.drop_table("delivery")
