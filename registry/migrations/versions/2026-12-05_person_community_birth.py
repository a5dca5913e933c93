"""An index for the community + birth date + sex blocking rule, which had none of its own.

A probe record found its community candidates through ix_person_birth_name, reading every person born
on its birth date and keeping those of its community and sex: about 200 persons per record at 7.5 M
persons, every day. With this index it reads the few it wants. (community_code and birth_date are
already indexed, so a person's update keeps the updates in place it had: only a change of sex is new.)

Revision ID: 0016_person_community_birth
Revises: 0015_partitioned_source_record
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_person_community_birth"
down_revision: str | Sequence[str] | None = "0015_partitioned_source_record"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_person_community_birth", "person", ["community_code", "birth_date", "sex"])


def downgrade() -> None:
    op.drop_index("ix_person_community_birth", table_name="person")
