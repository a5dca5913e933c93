"""A person's access history indexed by the person numbers alone, written without a pending list.

The GIN index on the whole audit detail took about ten entries per audit record (every key and value
of the detail), and its pending list, merged into the index by whichever insert found it full, held
the audit chain's lock for that merge: a pause for every request waiting on an audit commit. The
access history only asks which records list a person number, so the index now holds just those (one
entry per person touched), written straight into the index (fastupdate off).

Revision ID: 0102_audit_person_index
Revises: 0101_sharing_clients
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0102_audit_person_index"
down_revision: str | Sequence[str] | None = "0101_sharing_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_audit_log_person_nos ON audit_log "
        "USING gin ((detail -> 'person_nos') jsonb_path_ops) WITH (fastupdate = off)"
    )
    op.drop_index("ix_audit_log_detail", table_name="audit_log")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_audit_log_detail ON audit_log USING gin (detail jsonb_path_ops)")
    op.drop_index("ix_audit_log_person_nos", table_name="audit_log")
