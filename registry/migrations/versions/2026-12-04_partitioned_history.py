"""person_version and change_event range-partitioned by year on recorded_at (issue 19 item 3).

PostgreSQL requires a partitioned table's primary and unique keys to include the partition column, so
the keys become pk (id, recorded_at) and change_event's uq (version_id, event_type, recorded_at). Ids
still come from the tables' sequences only; what the narrower keys no longer refuse across years
(an id, or a version's event of one type, twice) is counted by `popex db check` (registry/consistency.py),
and change events are written only under their writers' lock by code that writes a batch's events once
(registry/events.py). No foreign key refers to either table (0003) and none is added.

Each table is rebuilt: the old one renamed, a partitioned one created like it with a partition per
year from its oldest row through the next 92 days and a default partition, the rows copied, the
sequence, grants (popex_sharing's SELECT on change_event) and indexes carried over, the old one
dropped. Later years are created ahead by the daily run (registry/partitions.py, docs/PARTITIONS.md).

Revision ID: 0012_partitioned_history
Revises: 0011_batch_sha256_per_source
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0012_partitioned_history"
down_revision: str | Sequence[str] | None = "0011_batch_sha256_per_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = "92 days"
# table: (primary key, unique constraints {name: columns}, indexes {name: columns}) — as before 0012.
TABLES = {
    "person_version": (
        "id",
        {},
        {
            "ix_person_version_batch_id": "batch_id",
            "ix_person_version_person": "person_id, recorded_at",
            "ix_person_version_valid": "valid_from, recorded_at",
        },
    ),
    "change_event": (
        "id",
        {"uq_change_event_version_type": "version_id, event_type"},
        {
            "ix_change_event_batch_id": "batch_id",
            "ix_change_event_person_id": "person_id",
            "ix_change_event_type": "event_type, id",
        },
    ),
}

# Every privilege granted on `old` to a role other than its owner, granted again on `new`.
COPY_GRANTS = """
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.privilege_type,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who
             FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = '{old}'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON {new} TO %s', g.privilege_type, g.who);
    END LOOP;
END $$;
"""


def _rebuild(table: str, partitioned: bool) -> None:
    """Copy `table` into a new one, range-partitioned by year on recorded_at or plain, keys to match."""
    pk, uniques, indexes = TABLES[table]
    old = f"{table}_old"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    like = f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
    if partitioned:
        op.execute(f"{like} PARTITION BY RANGE (recorded_at)")
        first = op.get_bind().scalar(
            text(f"SELECT date_trunc('year', least(min(recorded_at), localtimestamp))::date FROM {old}")
        )
        last = op.get_bind().scalar(text(f"SELECT (localtimestamp + interval '{AHEAD}')::date"))
        for year in range(first.year, last.year + 1):
            op.execute(
                f"CREATE TABLE {table}_y{year} PARTITION OF {table} "
                f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
            )
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    else:
        op.execute(like)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute(COPY_GRANTS.format(old=old, new=table))
    op.execute(f"DROP TABLE {old}")
    key = ", recorded_at" if partitioned else ""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({pk}{key})")
    for name, columns in uniques.items():
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({columns}{key})")
    for name, columns in indexes.items():
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute(f"ANALYZE {table}")


def upgrade() -> None:
    for table in TABLES:
        _rebuild(table, partitioned=True)


def downgrade() -> None:
    for table in TABLES:
        _rebuild(table, partitioned=False)
