"""A file's content is a duplicate only of the same source's earlier file (was: of any source's).

With one hash for the whole exchange, a department pushing bytes another department had sent was told
that department's batch id, and its own file was never processed.

Revision ID: 0011_batch_sha256_per_source
Revises: 0010_audit_canonical
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_batch_sha256_per_source"
down_revision: str | Sequence[str] | None = "0010_audit_canonical"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_batch_sha256", "batch", type_="unique")
    op.create_unique_constraint("uq_batch_source_sha256", "batch", ["source", "sha256"])


def downgrade() -> None:
    op.drop_constraint("uq_batch_source_sha256", "batch", type_="unique")
    op.create_unique_constraint("uq_batch_sha256", "batch", ["sha256"])
