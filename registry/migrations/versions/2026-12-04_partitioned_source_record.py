"""source_record range-partitioned by year on a new recorded_at (issue 19 item 3).

The largest bulk table (about 250 M rows for a 7.5 M-person city over ten years) had no column
saying when a row was written. It gets `recorded_at timestamp NOT NULL DEFAULT now()` — the
transaction's start, so every row a parse writes for a batch (one transaction) has the same value —
and existing rows take their batch's `received_at`. Keys include it, as PostgreSQL requires: pk
(id, recorded_at) (was id) and uq_source_record_batch_row (batch_id, row_no, recorded_at) (was
batch_id, row_no); `popex db check` counts an id or a batch's row number held twice
(registry/consistency.py). review_item's foreign key to source_record is dropped (a foreign key to
a partitioned table needs its whole key in the referring table); the same check counts a review item
whose record is missing, as it does for link.

The table is rebuilt as 0012 rebuilt the history tables: renamed, a partitioned one created like it
with a partition per year from the oldest batch through the next 92 days and a default partition,
the rows copied, the sequence, grants and indexes carried over, the old one dropped. Later years are
created ahead by the daily run (registry/partitions.py, docs/PARTITIONS.md).

Revision ID: 0015_partitioned_source_record
Revises: 0014_audit_clock
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0015_partitioned_source_record"
down_revision: str | Sequence[str] | None = "0014_audit_clock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = "92 days"
INDEXES = (
    "CREATE INDEX ix_source_record_id_no ON source_record (id_no) WHERE id_no IS NOT NULL",
    "CREATE INDEX ix_source_record_source_key ON source_record (source, record_key)",
)
REVIEW_FK = "fk_review_item_source_record_id_source_record"
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


def _swap(create: str, copy: str, key: str) -> None:
    """Rename source_record away, create the new one, copy the rows, carry the rest over."""
    op.execute("ALTER TABLE source_record RENAME TO source_record_old")
    op.execute(create)
    op.execute(copy)
    op.execute("ALTER SEQUENCE source_record_id_seq OWNED BY source_record.id")
    op.execute(COPY_GRANTS.format(old="source_record_old", new="source_record"))
    op.execute("DROP TABLE source_record_old")
    op.execute(f"ALTER TABLE source_record ADD CONSTRAINT pk_source_record PRIMARY KEY (id{key})")
    op.execute(
        f"ALTER TABLE source_record ADD CONSTRAINT uq_source_record_batch_row UNIQUE (batch_id, row_no{key})"
    )
    for statement in INDEXES:
        op.execute(statement)
    op.execute("ANALYZE source_record")


def upgrade() -> None:
    bind = op.get_bind()
    op.execute(f"ALTER TABLE review_item DROP CONSTRAINT {REVIEW_FK}")
    first = bind.scalar(
        text("SELECT date_trunc('year', least(min(received_at), localtimestamp))::date FROM batch")
    )
    last = bind.scalar(text(f"SELECT (localtimestamp + interval '{AHEAD}')::date"))
    partitions = [
        f"CREATE TABLE source_record_y{year} PARTITION OF source_record "
        f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
        for year in range(first.year, last.year + 1)
    ]
    _swap(
        "CREATE TABLE source_record (LIKE source_record_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE, recorded_at timestamp NOT NULL DEFAULT now()) PARTITION BY RANGE (recorded_at);"
        + ";".join([*partitions, "CREATE TABLE source_record_default PARTITION OF source_record DEFAULT"]),
        # A row without its batch (popex db check counts those) keeps today's time.
        "INSERT INTO source_record SELECT r.*, coalesce(b.received_at, localtimestamp) "
        "FROM source_record_old r LEFT JOIN batch b ON b.id = r.batch_id",
        ", recorded_at",
    )


def downgrade() -> None:
    _swap(
        "CREATE TABLE source_record (LIKE source_record_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE)",
        "INSERT INTO source_record SELECT r.* FROM source_record_old r",
        "",
    )
    op.execute("ALTER TABLE source_record DROP COLUMN recorded_at")
    op.execute(
        f"ALTER TABLE review_item ADD CONSTRAINT {REVIEW_FK} FOREIGN KEY (source_record_id) REFERENCES source_record(id)"
    )
