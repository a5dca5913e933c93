"""Exchange: the departments' push credentials.

Revision ID: 0501_exchange
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0501_exchange"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("exchange",)
depends_on: str | Sequence[str] | None = "0001_unified_schema"


def upgrade() -> None:
    op.create_table(
        "push_credential",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["department.code"],
            name=op.f("fk_push_credential_department_code_department"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_credential")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_push_credential_key_hash")),
    )
    op.create_index(op.f("ix_push_credential_department_code"), "push_credential", ["department_code"])


def downgrade() -> None:
    op.drop_index(op.f("ix_push_credential_department_code"), table_name="push_credential")
    op.drop_table("push_credential")
