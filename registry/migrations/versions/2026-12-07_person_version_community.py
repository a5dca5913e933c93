"""An index of the versions by community, for the lineage of an area.

The lineage of an area (decision.service.lineage) starts from the persons with a version in the area
dated by its date. Without an index that was a scan of every version of every year: after ten yearly
partitions of the 100,000-person city, 0.42 s of a community's lineage. With this index it reads the
area's range (varchar_pattern_ops: LIKE '330106001%' is a range whatever the database's collation), and
the person and date come from the index itself. Built once per partition; an initial load builds it
after the load (base.bulk.indexes_deferred), as the table's other indexes.

Revision ID: 0019_person_version_community
Revises: 0018_person_fillfactor
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_person_version_community"
down_revision: str | Sequence[str] | None = "0018_person_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_person_version_community",
        "person_version",
        ["community_code"],
        postgresql_ops={"community_code": "varchar_pattern_ops"},
        postgresql_include=["person_id", "valid_from"],
    )


def downgrade() -> None:
    op.drop_index("ix_person_version_community", table_name="person_version")
