"""Sharing service: API clients with hashed keys and policies; index for a person's access history.

Revision ID: 0101_sharing_clients
Revises:
Create Date: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0101_sharing_clients"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("sharing_api",)
depends_on: str | Sequence[str] | None = "0001_unified_schema"


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_expires_at", sa.DateTime(), nullable=True),
        sa.Column("key_rotated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_api_client_status")),
        sa.ForeignKeyConstraint(
            ["department_code"], ["department.code"], name=op.f("fk_api_client_department_code_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_client")),
        sa.UniqueConstraint("code", name=op.f("uq_api_client_code")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_client_key_hash")),
    )
    op.create_index(
        "ix_audit_log_detail",
        "audit_log",
        ["detail"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"detail": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_detail", table_name="audit_log")
    op.drop_table("api_client")
