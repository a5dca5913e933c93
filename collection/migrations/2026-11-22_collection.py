"""Community collection: officers, login failures, submissions and their rows, daily clearance.

Revision ID: 0301_collection
Revises:
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0301_collection"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("collection",)
depends_on: str | Sequence[str] | None = "0001_unified_schema"

TABLES = (
    "collection_row",
    "collection_submission",
    "collection_officer",
    "collection_clearance",
    "collection_login_failure",
)


def upgrade() -> None:
    """Create the collection tables."""
    op.create_table(
        "collection_login_failure",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("officer_no", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_login_failure")),
    )
    op.create_index(
        "ix_collection_login_failure_key",
        "collection_login_failure",
        ["officer_no", "ip", "at"],
        unique=False,
    )
    op.create_table(
        "collection_clearance",
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("cutoff_at", sa.DateTime(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("corrected", sa.Integer(), nullable=False),
        sa.Column("still_open", sa.Integer(), nullable=False),
        sa.Column("cleared", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_code"], ["area.code"], name=op.f("fk_collection_clearance_community_code_area")
        ),
        sa.PrimaryKeyConstraint("community_code", "work_date", name=op.f("pk_collection_clearance")),
    )
    op.create_table(
        "collection_officer",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("officer_no", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_code"], ["area.code"], name=op.f("fk_collection_officer_community_code_area")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_officer")),
        sa.UniqueConstraint("officer_no", name=op.f("uq_collection_officer_officer_no")),
    )
    op.create_index(
        op.f("ix_collection_officer_community_code"), "collection_officer", ["community_code"], unique=False
    )
    op.create_table(
        "collection_submission",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("officer_id", sa.BigInteger(), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("file_name", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('form', 'upload', 'correction')", name=op.f("ck_collection_submission_kind")
        ),
        sa.ForeignKeyConstraint(
            ["community_code"], ["area.code"], name=op.f("fk_collection_submission_community_code_area")
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["collection_officer.id"],
            name=op.f("fk_collection_submission_officer_id_collection_officer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_submission")),
    )
    op.create_index(
        "ix_collection_submission_day", "collection_submission", ["community_code", "work_date"], unique=False
    )
    op.create_index(
        op.f("ix_collection_submission_officer_id"), "collection_submission", ["officer_id"], unique=False
    )
    op.create_table(
        "collection_row",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("submission_id", sa.BigInteger(), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("row_no", sa.Integer(), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("replaces_id", sa.BigInteger(), nullable=True),
        sa.Column("person_no", sa.String(length=12), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("validated_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'corrected')",
            name=op.f("ck_collection_row_status"),
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_collection_row_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["replaces_id"], ["collection_row.id"], name=op.f("fk_collection_row_replaces_id_collection_row")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["collection_submission.id"],
            name=op.f("fk_collection_row_submission_id_collection_submission"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_row")),
        sa.UniqueConstraint("replaces_id", name=op.f("uq_collection_row_replaces_id")),
    )
    op.create_index(op.f("ix_collection_row_batch_id"), "collection_row", ["batch_id"], unique=False)
    op.create_index(
        "ix_collection_row_day", "collection_row", ["community_code", "work_date", "status"], unique=False
    )
    op.create_index(
        op.f("ix_collection_row_submission_id"), "collection_row", ["submission_id"], unique=False
    )


def downgrade() -> None:
    """Drop the collection tables (their indexes go with them)."""
    for table in TABLES:
        op.drop_table(table)
