"""Bulk tables without foreign keys: checked by registry/consistency.py instead of per inserted row.

Revision ID: 0003_bulk_without_fk
Revises: 0002_delivery
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_bulk_without_fk"
down_revision: str | Sequence[str] | None = "0002_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint, column, referred table, referred column)
DROPPED = [
    ("source_record", "fk_source_record_batch_id_batch", "batch_id", "batch", "id"),
    ("person_identifier", "fk_person_identifier_person_id_person", "person_id", "person", "id"),
    ("link", "fk_link_batch_id_batch", "batch_id", "batch", "id"),
    ("link", "fk_link_person_id_person", "person_id", "person", "id"),
    ("link", "fk_link_source_record_id_source_record", "source_record_id", "source_record", "id"),
    ("person_version", "fk_person_version_batch_id_batch", "batch_id", "batch", "id"),
    ("person_version", "fk_person_version_person_id_person", "person_id", "person", "id"),
    ("change_event", "fk_change_event_batch_id_batch", "batch_id", "batch", "id"),
    ("change_event", "fk_change_event_person_id_person", "person_id", "person", "id"),
    ("change_event", "fk_change_event_version_id_person_version", "version_id", "person_version", "id"),
]


def upgrade() -> None:
    for table, name, *_ in DROPPED:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    for table, name, column, referred, referred_column in DROPPED:
        op.create_foreign_key(name, table, referred, [column], [referred_column])
