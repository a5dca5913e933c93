"""source_record without its two secondary indexes, which no query used.

`ix_source_record_id_no` (id_no) and `ix_source_record_source_key` (source, record_key) were kept up
to date by every parse, and no statement of the platform looks records up by either: a record is
reached through its batch (uq_source_record_batch_row) or its id (the key), from link or review. In a
whole bench run `pg_stat_user_indexes` counted 0 scans of the first and 3 of the second (the statistics
refresh's `batch_id = :b AND source = 'gaj_ld'`, where it was ANDed with the batch's own index; without
it the same statement took 75-80 ms against 56-114 ms). Without them the COPY of a parse took 25-45 %
less (BENCHMARKS.md, eleventh session), and a 7.5 M-person city's ten years of records (about 250 M
rows) do not carry two more B-trees. Dropped on the partitioned table, they go from every partition.

Revision ID: 0020_source_record_indexes
Revises: 0019_person_version_community
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_source_record_indexes"
down_revision: str | Sequence[str] | None = "0019_person_version_community"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_source_record_source_key", table_name="source_record")
    op.drop_index("ix_source_record_id_no", table_name="source_record")


def downgrade() -> None:
    op.create_index(
        "ix_source_record_id_no", "source_record", ["id_no"], postgresql_where="id_no IS NOT NULL"
    )
    op.create_index("ix_source_record_source_key", "source_record", ["source", "record_key"])
