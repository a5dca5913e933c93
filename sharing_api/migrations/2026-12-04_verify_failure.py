"""Failed verifications per client and claim, so that a client cannot learn a value by guessing it.

A verification answers yes or no; a client that may not read a value (an ID number shown masked, a
birth date not granted) could otherwise try candidates until one says yes. Each failed verification
leaves a row here (the client and a digest of the document, and of the name and birth date, it
claimed); once a claim has failed `POPEX_SHARING_VERIFY_FAILURES_PER_DAY` times in a day, the client's
further verifications of it are refused (sharing_api/guessing.py). The server's role only reads and
appends, as with the audit log.

Revision ID: 0104_verify_failure
Revises: 0103_sharing_role
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0104_verify_failure"
down_revision: str | Sequence[str] | None = "0103_sharing_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "popex_sharing"


def upgrade() -> None:
    op.create_table(
        "verify_failure",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("client", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("failed_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verify_failure")),
    )
    op.create_index("ix_verify_failure_client_subject", "verify_failure", ["client", "subject", "failed_at"])
    op.execute(f"GRANT SELECT, INSERT ON verify_failure TO {ROLE}")


def downgrade() -> None:
    op.drop_index("ix_verify_failure_client_subject", table_name="verify_failure")
    op.drop_table("verify_failure")
