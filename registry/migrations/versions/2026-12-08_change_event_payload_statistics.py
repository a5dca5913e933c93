"""No planner statistics for a change event's payload (as 0021 did for the other JSON columns).

After a large batch the publish step analyzes change_event (exchange/flows.py), and while the initial
load grows it, the whole partitioned table: its own sample and the written partition's. The payload, a
person's shown fields as JSON, is the widest column, and half of that ANALYZE's time went to it: on
the 100,000-person city (BENCHMARKS.md, sixteenth session) 485-510 ms with it, 267 ms without. No plan
used what it gave: the payload is selected or read by key, and its only filter (`payload ? 'scope'`,
true of every event) goes with a look-up by person, which the person's index answers either way.

Revision ID: 0023_change_event_payload_stats
Revises: 0022_audit_hash_stable
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023_change_event_payload_stats"
down_revision: str | Sequence[str] | None = "0022_audit_hash_stable"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE change_event ALTER COLUMN payload SET STATISTICS 0")


def downgrade() -> None:
    op.execute("ALTER TABLE change_event ALTER COLUMN payload SET STATISTICS -1")
