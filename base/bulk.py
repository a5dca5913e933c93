"""Bulk loading: a table's indexes built once after an initial load instead of maintained row by row.

Inserting millions of rows into a table with secondary B-tree indexes costs a random descent and a
WAL record per row per index; building an index afterwards is one sort. On the 7,500,000-person
bench city the first household snapshot's 4.88 M new persons took 230 s to insert into `person` with
its four secondary indexes (BENCHMARKS.md). `indexes_deferred` drops a table's secondary indexes for
a block that adds more rows than the table holds, and builds them again after it, in the same
transaction: a rollback or a killed process leaves them exactly as they were. A partitioned table's
indexes are dropped and built on all its partitions.
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# Below this many added rows the indexes are maintained as usual: a build would cost more than it saves.
DEFER_INDEXES_MIN_ROWS = 100_000
# How long to wait for the table's exclusive lock (a reader in a transaction holds it off); then the
# indexes are kept and maintained row by row, as without deferring.
LOCK_WAIT = "2s"

SECONDARY_INDEXES = text(
    """
    SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisunique AND NOT i.indisexclusion
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    ORDER BY c.relname
    """
)

# The planner's row estimate of a table, its partitions' added up for a partitioned one (-1: never counted).
ESTIMATE = text(
    """
    SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_class c
    WHERE c.oid = CAST(:t AS regclass)
       OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:t AS regclass))
    """
)


def _holds_fewer(conn: Connection, table: str, rows: int) -> bool:
    """Whether `table` holds fewer than `rows` rows: counted up to `rows` unless the planner's estimate
    already says it holds as many (no scan of a large table for a large daily file)."""
    if conn.execute(ESTIMATE, {"t": table}).scalar_one() >= rows:
        return False
    held = conn.execute(text(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :n) AS s"), {"n": rows})
    return int(held.scalar_one()) < rows


def _drop(conn: Connection, table: str) -> list[tuple[str, str]]:
    """Lock `table` and drop its secondary indexes (neither unique nor backing a constraint); their names
    and definitions, or none when the lock is not had within LOCK_WAIT."""
    indexes = [(name, ddl) for name, ddl in conn.execute(SECONDARY_INDEXES, {"t": table})]
    if not indexes:
        return []
    timeout = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    try:
        with conn.begin_nested():
            conn.execute(text("SELECT set_config('lock_timeout', :w, true)"), {"w": LOCK_WAIT})
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            for name, _ in indexes:
                conn.execute(text(f"DROP INDEX {name}"))
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available
            raise
        log.info("indexes of %s kept: the table is in use", table)
        return []
    finally:
        conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": timeout})
    return indexes


@contextmanager
def indexes_deferred(conn: Connection, tables: Sequence[str], adding: int) -> Iterator[list[str]]:
    """Within the block, `tables` that hold fewer rows than `adding` (and `adding` is at least
    DEFER_INDEXES_MIN_ROWS) have no secondary indexes; after it each is built again from its own
    definition. Yields the tables whose indexes were dropped.

    Unique and exclusion indexes stay (constraints or not): they keep refusing what they refuse. A
    table is locked ACCESS EXCLUSIVE from the drop to the end of the transaction, so readers wait for
    the load; one already in a transaction on it keeps the indexes as they are (LOCK_WAIT). If the block
    raises, nothing is rebuilt: the transaction is to be rolled back, which restores the indexes.
    """
    dropped: list[tuple[str, list[tuple[str, str]]]] = []
    if adding >= DEFER_INDEXES_MIN_ROWS:
        for table in tables:
            if _holds_fewer(conn, table, adding):
                indexes = _drop(conn, table)
                if indexes:
                    dropped.append((table, indexes))
    yield [table for table, _ in dropped]
    for table, indexes in dropped:
        for _, ddl in indexes:
            # A partitioned table's index is defined ON ONLY the parent; built on the parent it is built
            # on every partition too.
            conn.execute(text(ddl.replace(" ON ONLY ", " ON ", 1)))
        log.info("indexes of %s built after the load: %d", table, len(indexes))
