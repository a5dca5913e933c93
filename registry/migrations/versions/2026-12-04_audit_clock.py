"""An audit record's day is the day it is written, not the day its transaction began.

0013 gave `logged_on` (the partition column) the transaction's start date and refused, with SQLSTATE
40001, a record whose transaction had begun in an earlier month: a step running across a month's
last midnight (a large initial load started at 23:00 on the 30th) failed at its first audit record
and had to be rerun. The day is now taken from the clock when the row is formed, which is also what
`at` is taken from (under the chain's lock, a moment later):

- `logged_on` defaults to the clock's date; the trigger accepts any day from the statement's start to
  `at`'s (a writer still cannot file a record under another day);
- only a row formed before a month's last midnight whose chain lock came after it is refused (40001,
  retried at once by the caller) — a wait of seconds, not a transaction of hours. The head of the
  chain is still exactly the last record of the month written (0013's reasoning holds: a record's
  partition is the month its `at` falls in).

Both read the clock through `audit_log_clock()` (clock_timestamp()), one function, so that a test
can stage a month's end in a throwaway database by replacing it; nothing else calls it.

Revision ID: 0014_audit_clock
Revises: 0013_partitioned_audit_log
Create Date: 2026-12-04
"""

import re
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0014_audit_clock"
down_revision: str | Sequence[str] | None = "0013_partitioned_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAIN = """
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    head text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit_log'));
    NEW.id := nextval('audit_log_id_seq');
    NEW.at := {clock} AT TIME ZONE {zone};
    IF {day_check} THEN
        RAISE EXCEPTION '审计记录的记录日期只能是写入当天（%）', CAST(NEW.at AS date)
            USING ERRCODE = 'check_violation';
    END IF;
    month_start := CAST(date_trunc('month', NEW.at) AS date);
    IF NEW.logged_on < month_start THEN
        RAISE EXCEPTION '{late}'
            USING ERRCODE = 'serialization_failure';
    END IF;
    SELECT hash INTO head FROM audit_log
     WHERE logged_on >= month_start AND logged_on < CAST(month_start + interval '1 month' AS date)
     ORDER BY id DESC LIMIT 1;
    IF head IS NULL THEN  -- the month's first record, or its records in the default partition
        SELECT hash INTO head FROM audit_log ORDER BY id DESC LIMIT 1;
    END IF;
    NEW.prev_hash := coalesce(head, repeat('0', 64));
    NEW.hash := audit_log_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action, NEW.object_type,
                               NEW.object_id, NEW.detail);
    RETURN NEW;
END $$;
"""
NEW_DAY_CHECK = (
    "NEW.logged_on < CAST(statement_timestamp() AT TIME ZONE {zone} AS date)"
    " OR NEW.logged_on > CAST(NEW.at AS date)"
)
OLD_DAY_CHECK = "NEW.logged_on IS DISTINCT FROM CAST(now() AT TIME ZONE {zone} AS date)"
NEW_LATE = "审计记录在月末零点前生成、零点后才取得审计链锁，请重试"
OLD_LATE = "事务开始于上个月，审计记录须在本月开始的事务中写入，请重试"
PLAN_SETTINGS = ("enable_seqscan", "enable_bitmapscan", "enable_sort")


def _zone() -> str:
    """The zone the chain trigger keeps `at` in (0010 baked it in), as an SQL literal."""
    source = op.get_bind().scalar(text("SELECT pg_get_functiondef('audit_log_chain'::regproc)"))
    found = re.search(r"AT TIME ZONE ('(?:[^']|'')*')", source or "")
    if found is None:
        raise RuntimeError("audit_log_chain() has no time zone: 0010_audit_canonical not applied?")
    return found.group(1)


def _chain(zone: str, *, clock: str, day_check: str, late: str, default: str) -> None:
    op.execute(CHAIN.format(zone=zone, clock=clock, day_check=day_check.format(zone=zone), late=late))
    # CREATE OR REPLACE drops the function's settings: 0013's reasons to keep them still hold.
    for setting in PLAN_SETTINGS:
        op.execute(f"ALTER FUNCTION audit_log_chain() SET {setting} = off")
    op.execute(
        f"ALTER TABLE audit_log ALTER COLUMN logged_on SET DEFAULT CAST({default} AT TIME ZONE {zone} AS date)"
    )


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION audit_log_clock() RETURNS timestamptz LANGUAGE sql VOLATILE AS 'SELECT clock_timestamp()'"
    )
    _chain(
        _zone(),
        clock="audit_log_clock()",
        day_check=NEW_DAY_CHECK,
        late=NEW_LATE,
        default="audit_log_clock()",
    )


def downgrade() -> None:
    _chain(_zone(), clock="clock_timestamp()", day_check=OLD_DAY_CHECK, late=OLD_LATE, default="now()")
    op.execute("DROP FUNCTION audit_log_clock()")
