"""audit_log range-partitioned by month on logged_on; the chain trigger finds the head in the month written.

- The partition column is a new `logged_on date`, the day the writing transaction began in the zone
  the chain trigger keeps `at` in (the zone baked into the trigger by 0010): not `at` and not `id`,
  which the chain trigger sets after PostgreSQL has chosen the row's partition (it refuses a BEFORE
  ROW trigger that would move the row to another one: a record written across a month's last
  midnight would fail). The trigger refuses a record that brings another day, so a writer cannot
  place a record in an old partition that retention detaches sooner. Existing rows get `at`'s date.
- The primary key becomes (id, logged_on); ids are still drawn only by the trigger under the chain's
  lock, and `popex db check` counts an id held twice.
- The trigger found the chain's head with `ORDER BY id DESC LIMIT 1`, which on a partitioned table
  reads every partition's index under the chain's lock (120 after ten years). It now looks in the
  month being written only (runtime pruning: one index), and in the whole log only when that month
  has no record yet. That is exact because a record's month is the month it is written in: the
  trigger refuses a record whose transaction began in an earlier month (SQLSTATE 40001, retry), and
  records are written in id order under the chain's lock on a clock that goes forward. The trigger
  function runs with seq scans, bitmap scans and sorts off: its plan is made once per connection,
  maybe while the month is empty, and a scan-and-sort plan made then was kept as the month grew (the
  lookup benchmark fell to 250-380 requests/s in 3 of 5 runs). (A one-row head table was tried too:
  each record's UPDATE leaves a version no vacuum may remove while an older transaction is open, and
  with the server's other long transactions 10,000 records took 5, 13, then 27 s.)
- Every index, trigger and grant of the old table is carried over as it was (the sharing branch's
  index, writer trigger and popex_sharing's SELECT, INSERT included, whichever order the branches
  ran in), UPDATE, DELETE and TRUNCATE stay revoked from PUBLIC and the owner, and each partition gets
  the same revocation and its own TRUNCATE trigger (a statement trigger on the parent does not see a
  partition truncated directly). The rows are copied unchanged: ids, times and hashes, so the chain
  and the anchors verify as before.

Revision ID: 0013_partitioned_audit_log
Revises: 0012_partitioned_history
Create Date: 2026-12-04
"""

import re
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0013_partitioned_audit_log"
down_revision: str | Sequence[str] | None = "0012_partitioned_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = "92 days"
GUARD = """
REVOKE UPDATE, DELETE, TRUNCATE ON {name} FROM PUBLIC, CURRENT_USER;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {name} FOR EACH STATEMENT
    EXECUTE FUNCTION audit_log_append_only();
"""
CHAIN = """
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    head text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit_log'));
    NEW.id := nextval('audit_log_id_seq');
    NEW.at := clock_timestamp() AT TIME ZONE {zone};
    {find_head}
    NEW.prev_hash := coalesce(NEW.prev_hash, repeat('0', 64));
    NEW.hash := audit_log_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action, NEW.object_type,
                               NEW.object_id, NEW.detail);
    RETURN NEW;
END $$;
"""
OLD_HEAD = "SELECT hash INTO NEW.prev_hash FROM audit_log ORDER BY id DESC LIMIT 1;"
# The record's day is its transaction's; its month, the month it is written in (see above).
HEAD = """IF NEW.logged_on IS DISTINCT FROM CAST(now() AT TIME ZONE {zone} AS date) THEN
        RAISE EXCEPTION '审计记录的记录日期只能是写入当天（%）', CAST(now() AT TIME ZONE {zone} AS date)
            USING ERRCODE = 'check_violation';
    END IF;
    month_start := CAST(date_trunc('month', NEW.at) AS date);
    IF NEW.logged_on < month_start THEN
        RAISE EXCEPTION '事务开始于上个月，审计记录须在本月开始的事务中写入，请重试'
            USING ERRCODE = 'serialization_failure';
    END IF;
    SELECT hash INTO head FROM audit_log
     WHERE logged_on >= month_start AND logged_on < CAST(month_start + interval '1 month' AS date)
     ORDER BY id DESC LIMIT 1;
    IF head IS NULL THEN  -- the month's first record, or its records in the default partition
        SELECT hash INTO head FROM audit_log ORDER BY id DESC LIMIT 1;
    END IF;
    NEW.prev_hash := head;"""
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
COLUMNS = "id, at, actor, action, object_type, object_id, detail, prev_hash, hash"


def _zone() -> str:
    """The zone the chain trigger keeps `at` in (0010 baked it in), as an SQL literal."""
    source = op.get_bind().scalar(text("SELECT pg_get_functiondef('audit_log_chain'::regproc)"))
    found = re.search(r"AT TIME ZONE ('(?:[^']|'')*')", source or "")
    if found is None:
        raise RuntimeError("audit_log_chain() has no time zone: 0010_audit_canonical not applied?")
    return found.group(1)


def _carried() -> tuple[list[str], list[str]]:
    """The old table's index and trigger definitions (its primary key apart), to replay on the new."""
    bind = op.get_bind()
    indexes = bind.scalars(
        text(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = 'audit_log'::regclass "
            "AND NOT i.indisprimary ORDER BY i.indexrelid"
        )
    ).all()
    triggers = bind.scalars(
        text(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
            "AND NOT tgisinternal AND tgparentid = 0 ORDER BY tgname"
        )
    ).all()
    return list(indexes), list(triggers)


def _swap(create: str, copy: str, key: str) -> None:
    """Rename audit_log away, run `create` (making the new audit_log), copy the rows with `copy`,
    carry indexes, triggers, grants and the sequence over, drop the old table, add the key."""
    indexes, triggers = _carried()
    op.execute("ALTER TABLE audit_log RENAME TO audit_log_old")
    op.execute(create)
    op.execute(copy)
    op.execute("ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id")
    op.execute(COPY_GRANTS.format(old="audit_log_old", new="audit_log"))
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER")
    op.execute("DROP TABLE audit_log_old")
    op.execute(f"ALTER TABLE audit_log ADD CONSTRAINT pk_audit_log PRIMARY KEY ({key})")
    for statement in (*indexes, *triggers):
        op.execute(statement)
    op.execute("ANALYZE audit_log")


def upgrade() -> None:
    zone = _zone()
    bind = op.get_bind()
    first = bind.scalar(
        text("SELECT date_trunc('month', least(min(at), localtimestamp))::date FROM audit_log")
    )
    last = bind.scalar(text(f"SELECT (localtimestamp + interval '{AHEAD}')::date"))
    months = []
    while first <= last:
        months.append(first)
        first = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    partitions = [
        f"CREATE TABLE audit_log_m{m:%Y%m} PARTITION OF audit_log FOR VALUES FROM ('{m}') TO "
        f"('{m.replace(year=m.year + m.month // 12, month=m.month % 12 + 1)}')"
        for m in months
    ]
    _swap(
        "CREATE TABLE audit_log (LIKE audit_log_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE, "
        f"logged_on date NOT NULL DEFAULT CAST(now() AT TIME ZONE {zone} AS date)) PARTITION BY RANGE (logged_on);"
        + ";".join([*partitions, "CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT"]),
        f"INSERT INTO audit_log ({COLUMNS}, logged_on) SELECT {COLUMNS}, CAST(at AS date) FROM audit_log_old",
        "id, logged_on",
    )
    for m in months:
        op.execute(GUARD.format(name=f"audit_log_m{m:%Y%m}"))
    op.execute(GUARD.format(name="audit_log_default"))
    op.execute(CHAIN.format(zone=zone, find_head=HEAD.format(zone=zone)))
    # Its plan is made once per connection, maybe while the month is still empty: only the backward
    # index scan (runtime-pruned to the month's partition) stays right as the month grows.
    op.execute("ALTER FUNCTION audit_log_chain() SET enable_seqscan = off")
    op.execute("ALTER FUNCTION audit_log_chain() SET enable_bitmapscan = off")
    op.execute("ALTER FUNCTION audit_log_chain() SET enable_sort = off")


def downgrade() -> None:
    zone = _zone()
    op.execute(CHAIN.format(zone=zone, find_head=OLD_HEAD))
    op.execute("ALTER FUNCTION audit_log_chain() RESET ALL")
    _swap(
        "CREATE TABLE audit_log (LIKE audit_log_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        f"INSERT INTO audit_log ({COLUMNS}) SELECT {COLUMNS} FROM audit_log_old",
        "id",
    )
    op.execute("ALTER TABLE audit_log DROP COLUMN logged_on")
