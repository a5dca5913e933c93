"""The audit chain's hash over a canonical input, its time set by the server, and no TRUNCATE.

- The hash input was `concat_ws('|', …)`: NULLs were skipped (an object_type moved into object_id
  hashed the same) and `|` was not escaped, and the timestamp was written as the session's DateStyle
  wanted it (a session with another DateStyle saw every row as tampered). It is now the text of a
  JSON array of the fields (`["prev", id, "2026-12-04T13:51:11.123456", "actor", …, null, {detail}]`):
  strings quoted and escaped, NULL as null, the time in one fixed format whatever the session's
  DateStyle or TimeZone.
- `at` is set by the chain trigger to the server's clock (clock_timestamp(), under the chain's lock,
  so time follows id order), in the time zone the database had when this ran (baked into the
  trigger: a session's own TimeZone cannot move its rows' time); whatever the writer sent is replaced.
- TRUNCATE is refused by a statement trigger (the row trigger never saw it), and UPDATE, DELETE and
  TRUNCATE are revoked from PUBLIC and from the owner. A superuser or the owner can still disable the
  triggers: what they do then is found by `popex audit verify` against the signed anchors kept
  outside the database (registry/anchors.py).

Existing rows are re-hashed (not versioned): the old chain is verified first with the old function
(DateStyle ISO, as every writer had it) and the migration stops if it does not verify, so a tampered
log is not laundered into a valid one; then every row's prev_hash and hash are recomputed in id order.
When there were rows, an `audit.canonical` record (appended last) says how many were re-hashed; the
server-set time is checked from that record on (earlier rows had the writer's transaction start time,
which does not follow id order). 200,000 rows took 8.4 s here (checked, then re-hashed).

Revision ID: 0010_audit_canonical
Revises: 0009_identifier_once
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0010_audit_canonical"
down_revision: str | Sequence[str] | None = "0009_identifier_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "prev text, id bigint, at timestamp, actor text, action text, object_type text, object_id text, detail jsonb"

# to_char with this pattern uses no locale (no TM prefix) and a timestamp without zone is not
# converted: the output depends on neither DateStyle nor TimeZone, hence IMMUTABLE holds.
CANONICAL_HASH = f"""
CREATE OR REPLACE FUNCTION audit_log_hash({SIGNATURE}) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(
        jsonb_build_array(prev, id, to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS.US'), actor, action,
                          object_type, object_id, detail)::text, 'UTF8')), 'hex')
$$;
"""
OLD_HASH = f"""
CREATE OR REPLACE FUNCTION audit_log_hash({SIGNATURE}) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', prev, id, at, actor, action, object_type, object_id,
                                              detail::text), 'UTF8')), 'hex')
$$;
"""
CHAIN = """
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit_log'));
    NEW.id := nextval('audit_log_id_seq');
    {set_at}
    SELECT hash INTO NEW.prev_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(NEW.prev_hash, repeat('0', 64));
    NEW.hash := audit_log_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action, NEW.object_type,
                               NEW.object_id, NEW.detail);
    RETURN NEW;
END $$;
"""
# The first row whose hash or link disagrees with the function installed now (registry/audit.py's check).
FIRST_BAD = """
SELECT min(id) FROM (SELECT *, lag(hash) OVER (ORDER BY id) AS prev FROM audit_log) AS chain
WHERE hash <> audit_log_hash(prev_hash, id, at, actor, action, object_type, object_id, detail)
   OR prev_hash <> coalesce(prev, repeat('0', 64))
"""
REHASH = """
DO $$
DECLARE
    r record;
    link text := repeat('0', 64);
    digest text;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        digest := audit_log_hash(link, r.id, r.at, r.actor, r.action, r.object_type, r.object_id, r.detail);
        UPDATE audit_log SET prev_hash = link, hash = digest WHERE id = r.id;
        link := digest;
    END LOOP;
END $$;
"""


def _rehash(function_sql: str) -> int:
    """Check the chain under the installed function, install `function_sql`, re-hash every row."""
    bind = op.get_bind()
    bind.execute(text("SET LOCAL DateStyle = 'ISO, MDY'"))  # as the old function's writers had it
    bad = bind.scalar(text(FIRST_BAD))
    if bad is not None:
        raise RuntimeError(
            f"审计日志哈希链在 id={bad} 处校验不通过：迁移不重新计算哈希（否则会掩盖篡改）。"
            "请先查明该记录（popex audit verify），再执行迁移"
        )
    op.execute(function_sql)
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute(REHASH)
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    return int(bind.scalar(text("SELECT count(*) FROM audit_log")) or 0)


def upgrade() -> None:
    zone = op.get_bind().scalar(text("SELECT quote_literal(current_setting('TimeZone'))"))
    rows = _rehash(CANONICAL_HASH)
    op.execute(CHAIN.format(set_at=f"NEW.at := clock_timestamp() AT TIME ZONE {zone};"))
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER")
    if rows:
        op.execute(
            "INSERT INTO audit_log (actor, action, object_type, detail, prev_hash, hash) "
            f"VALUES (current_user, 'audit.canonical', 'audit_log', '{{\"rehashed\": {rows}}}', '', '')"
        )


def downgrade() -> None:
    op.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO CURRENT_USER")
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute(CHAIN.format(set_at=""))
    _rehash(OLD_HASH)
