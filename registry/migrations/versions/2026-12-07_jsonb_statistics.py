"""No planner statistics for the JSON columns whose statistics no plan uses: a record's raw row,
reasons and extra fields, a person's provenance.

ANALYZE reads each sampled row's value of every column it keeps statistics for; these JSON values are
the widest of their rows, and the statistics it built from them served no plan: the columns are only
selected, cast to text or read by key (`extra->>'registered_area_code'` in the statistics), and such an
expression has no statistics of its own whatever the column's. After every large batch the pipeline
analyzes what it wrote (exchange/flows.py), so this was paid once per batch and again by autovacuum. On
the 100,000-person city (BENCHMARKS.md, twelfth session) ANALYZE of source_record took 0.79-0.93 s
with them and 0.49 s without, of person 0.26-0.29 s against 0.17 s. A column's target of 0 leaves it
out of ANALYZE. Set on the partitioned table it reaches every partition there is; the partitions made
later take the table's targets (registry/partitions.py).

Revision ID: 0021_jsonb_statistics
Revises: 0020_source_record_indexes
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021_jsonb_statistics"
down_revision: str | Sequence[str] | None = "0020_source_record_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"source_record": ("raw", "reasons", "extra"), "person": ("provenance",)}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} SET STATISTICS 0" for c in columns))


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        op.execute(
            f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} SET STATISTICS -1" for c in columns)
        )
