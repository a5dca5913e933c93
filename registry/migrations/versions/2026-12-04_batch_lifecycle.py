"""The batch's whole life as states: counted (the decision statistics include it) and completed (its
receipts are written), and failed_step, the step a failed batch failed in (a rerun resumes it).

Published batches stay published: the next run counts them (the decision platform's applied-batch
table skips one already counted) and writes their receipts. A batch failed before this revision
(nothing set the state) gets the step its rows show it had not finished.

Revision ID: 0008_batch_lifecycle
Revises: 0007_drop_feed_deadline
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_batch_lifecycle"
down_revision: str | Sequence[str] | None = "0007_drop_feed_deadline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = (
    "received",
    "rejected",
    "parsed",
    "gated",
    "quarantined",
    "resolved",
    "merged",
    "published",
    "failed",
)
STATES = (*OLD_STATES, "counted", "completed")
STEPS = ("parse", "gate", "resolve", "merge", "publish", "statistics", "receipt")


def upgrade() -> None:
    op.drop_constraint(op.f("ck_batch_state"), "batch", type_="check")
    op.create_check_constraint(op.f("ck_batch_state"), "batch", f"state IN {STATES!r}")
    op.add_column("batch", sa.Column("failed_step", sa.String(length=16), nullable=True))
    op.execute(
        """
        UPDATE batch b SET failed_step = CASE
            WHEN EXISTS (SELECT 1 FROM change_event e WHERE e.batch_id = b.id) THEN 'statistics'
            WHEN EXISTS (SELECT 1 FROM person_version v WHERE v.batch_id = b.id) THEN 'publish'
            WHEN EXISTS (SELECT 1 FROM link l WHERE l.batch_id = b.id) THEN 'merge'
            WHEN CAST(b.gate_result ->> 'success' AS boolean) THEN 'resolve'
            WHEN EXISTS (SELECT 1 FROM source_record r WHERE r.batch_id = b.id) THEN 'gate'
            ELSE 'parse' END
        WHERE b.state = 'failed'
        """
    )
    op.create_check_constraint(op.f("ck_batch_failed_step"), "batch", f"failed_step IN {STEPS!r}")
    op.create_check_constraint(
        op.f("ck_batch_failed_has_step"), "batch", "(state = 'failed') = (failed_step IS NOT NULL)"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_batch_failed_has_step"), "batch", type_="check")
    op.drop_constraint(op.f("ck_batch_failed_step"), "batch", type_="check")
    op.drop_column("batch", "failed_step")
    op.execute("UPDATE batch SET state = 'published' WHERE state IN ('counted', 'completed')")
    op.drop_constraint(op.f("ck_batch_state"), "batch", type_="check")
    op.create_check_constraint(op.f("ck_batch_state"), "batch", f"state IN {OLD_STATES!r}")
