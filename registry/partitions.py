"""The time-partitioned tables: their partitions, created ahead, and the old ones retention may detach.

Each table is range-partitioned on the time its rows are written (docs/PARTITIONS.md), one partition
per period plus a default partition that catches a row whose period has none yet (a fresh install, a
test, a synthetic history with old times). `ensure_partitions` creates the missing periods up to a
date, and those of any rows found in the default partition, moving them out.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base.settings import partition_settings

log = logging.getLogger(__name__)

Unit = Literal["month", "year"]


@dataclass(frozen=True)
class Partitioned:
    """A table range-partitioned on `column` by `unit`."""

    table: str
    column: str
    unit: Unit
    # The audit log's: each partition refuses UPDATE, DELETE and TRUNCATE as its table does, and rows
    # in its default partition stay there (moving them would need a DELETE).
    guarded: bool = False

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def name(self, start: date) -> str:
        """The partition holding `start`'s period: change_event_y2026, audit_log_m202612."""
        return f"{self.table}_y{start:%Y}" if self.unit == "year" else f"{self.table}_m{start:%Y%m}"

    def start(self, day: date) -> date:
        """The first day of the period `day` falls in."""
        return date(day.year, 1, 1) if self.unit == "year" else date(day.year, day.month, 1)

    def after(self, start: date) -> date:
        """The first day of the period after the one starting on `start`."""
        if self.unit == "year":
            return date(start.year + 1, 1, 1)
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)


# Versions and change events are the history: kept whole, yearly (a lookup by id or person visits one
# index per partition, so fewer partitions keep those cheap). See docs/PARTITIONS.md.
# The audit log is the largest and the one kept for a fixed time: monthly, on the day its record was
# written (logged_on; not `at`, which the chain trigger sets after the row's partition is chosen).
TABLES = (
    Partitioned("person_version", "recorded_at", "year"),
    Partitioned("change_event", "recorded_at", "year"),
    Partitioned("source_record", "recorded_at", "year"),
    Partitioned("audit_log", "logged_on", "month", guarded=True),
)
# What a partition of a guarded table gets: the rights and the TRUNCATE trigger its table has (a
# statement trigger on the table does not see one of its partitions truncated directly).
GUARD = (
    "REVOKE UPDATE, DELETE, TRUNCATE ON {name} FROM PUBLIC, CURRENT_USER",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {name} FOR EACH STATEMENT "
    "EXECUTE FUNCTION audit_log_append_only()",
)
LOCK = text("SELECT pg_advisory_xact_lock(hashtext('popex.partitions'))")
# A partition is created under an ACCESS EXCLUSIVE lock on its table: rather than queue every reader
# of the table behind a long query, give up and let the next run (days before it is needed) try again.
LOCK_TIMEOUT = "5s"


def table(name: str) -> Partitioned:
    """The partitioned table called `name`."""
    return next(t for t in TABLES if t.table == name)


def attached(conn: Connection, spec: Partitioned) -> set[str]:
    """The names of `spec`'s partitions attached now."""
    return set(
        conn.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass)"
            ),
            {"t": spec.table},
        )
    )


def _periods(spec: Partitioned, first: date, through: date) -> list[date]:
    starts, start = [], spec.start(first)
    while start <= through:
        starts.append(start)
        start = spec.after(start)
    return starts


def _stray_periods(conn: Connection, spec: Partitioned) -> list[date]:
    """The periods of the rows sitting in the default partition."""
    rows = conn.scalars(
        text(f"SELECT DISTINCT date_trunc('{spec.unit}', {spec.column})::date FROM {spec.default}")
    )
    return sorted(rows)


def _create(conn: Connection, spec: Partitioned, start: date) -> bool:
    """Create the partition of the period starting `start`, moving its rows out of the default one
    (a guarded table's stay: its period is then not created, and False returned)."""
    name, bounds = spec.name(start), f"FROM ('{start}') TO ('{spec.after(start)}')"
    in_period = f"{spec.column} >= '{start}' AND {spec.column} < '{spec.after(start)}'"
    # No row may reach the default partition between the move and the attach (the attach checks it).
    conn.execute(text(f"LOCK TABLE {spec.default} IN ACCESS EXCLUSIVE MODE"))
    strays = conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {spec.default} WHERE {in_period})"))
    if strays and spec.guarded:
        log.warning("partitions: %s not created, its rows stay in %s (append-only)", name, spec.default)
        return False
    if strays:
        conn.execute(
            text(f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        )
        conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {spec.default} WHERE {in_period} RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM moved"
            )
        )
        conn.execute(text(f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES {bounds}"))
    else:
        conn.execute(text(f"CREATE TABLE {name} PARTITION OF {spec.table} FOR VALUES {bounds}"))
    _copy_statistics_targets(conn, spec.table, name)
    if spec.guarded:
        for statement in GUARD:
            conn.execute(text(statement.format(name=name)))
    return True


def _copy_statistics_targets(conn: Connection, table: str, partition: str) -> None:
    """Give a new partition the table's own column statistics targets (a partition made by CREATE TABLE
    … PARTITION OF starts with the default ones): ANALYZE then leaves out the same columns (0) there."""
    targets = conn.execute(
        text(
            "SELECT attname, attstattarget FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
            " AND attnum > 0 AND NOT attisdropped AND attstattarget >= 0 ORDER BY attnum"
        ),
        {"t": table},
    ).all()
    if targets:
        alters = ", ".join(f'ALTER COLUMN "{column}" SET STATISTICS {int(n)}' for column, n in targets)
        conn.execute(text(f"ALTER TABLE {partition} {alters}"))


def ensure_partitions(session: Session, through: date) -> list[str]:
    """Create every partition from this period's through `through`'s, and those of rows left in a
    default partition; returns the names created (none when all exist).

    Idempotent, and safe to run twice at once: runs take an advisory lock first and go one after the
    other (the lock comes before any read of the tables: a run that had read a default partition
    while waiting would block the other's move out of it, a deadlock).
    """
    conn = session.connection()
    conn.execute(LOCK)
    today = conn.execute(text("SELECT CAST(localtimestamp AS date)")).scalar_one()
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    created = []
    for spec in TABLES:
        have = attached(conn, spec)
        for start in sorted({*_periods(spec, today, through), *_stray_periods(conn, spec)}):
            if spec.name(start) not in have and _create(conn, spec, start):
                created.append(spec.name(start))
    conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    if created:
        log.info("partitions created: %s", ", ".join(created))
    return created


@dataclass(frozen=True)
class Expired:
    """A partition retention may detach: its table, name, period and rows (estimated)."""

    table: str
    name: str
    start: date
    end: date
    rows: int


def expired_partitions(
    session: Session, retention_years: dict[str, int], today: date | None = None
) -> list[Expired]:
    """The partitions of the tables in `retention_years` whose whole period ended more than that many
    years before the start of `today`'s month (default: the database's today)."""
    conn = session.connection()
    day = today or conn.execute(text("SELECT CAST(localtimestamp AS date)")).scalar_one()
    found = []
    for spec in TABLES:
        if spec.table not in retention_years:
            continue
        keep_from = date(day.year - retention_years[spec.table], day.month, 1)
        for name, lo, hi, tuples in _period_partitions(conn, spec):
            if hi <= keep_from:
                found.append(Expired(spec.table, name, lo, hi, max(tuples, 0)))
    return found


def _partitions(conn: Connection, spec: Partitioned) -> tuple[list[tuple[str, date, date, int]], int]:
    """`spec`'s partitions attached now: the period ones (name, first day, first day after, rows
    estimated) in name order, which is period order; and the default one's rows (estimated, 0 when it
    was never analyzed)."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass) ORDER BY 1"
        ),
        {"t": spec.table},
    )
    periods, strays = [], 0
    for name, bound, tuples in rows:
        if name == spec.default:
            strays = max(int(tuples), 0)
        else:
            lo, hi = (datetime.fromisoformat(v).date() for v in bound.split("'")[1::2])
            periods.append((name, lo, hi, int(tuples)))
    return periods, strays


def _period_partitions(conn: Connection, spec: Partitioned) -> list[tuple[str, date, date, int]]:
    """`spec`'s partitions attached now but the default one (_partitions)."""
    return _partitions(conn, spec)[0]


def newest(conn: Connection, table_name: str, *, alias: str, where: str, columns: tuple[str, ...]) -> str:
    """A subquery giving `columns` of the row of `table_name` (partitioned on its time column, with an
    `id`) recorded last — latest by (time, id) — of those `where` picks (`alias` names the table in it),
    written so that a look-up per person costs after ten years of partitions what it cost in the first.

    Asked plainly (ORDER BY time DESC, id DESC LIMIT 1), PostgreSQL 15 merges the index scans of every
    partition, because the default partition (whose rows may be of any time) keeps it from reading them
    in order: after ten yearly partitions a person's latest version cost 0.31 ms instead of 0.035
    (docs/PARTITIONS.md). Here the period partitions are asked apart, bounded to the span they cover,
    which prunes the default partition when the statement is planned, so PostgreSQL reads them newest
    first and stops soon after the first holding such a row (an ordered Append; the sort by id within a
    moment reads one row more); the default partition is asked beside, and the later of the two answers
    is the row. (Should the partitions leave a gap inside the span, a detached one, PostgreSQL cannot
    prune the default partition and reads it on both sides: slower, the same row.)

    The span is read from the catalog now, after taking the default partition's ACCESS SHARE lock until
    the transaction ends: a partition attached meanwhile (`_create` moves its period's rows out of the
    default partition under an ACCESS EXCLUSIVE lock) would hold rows outside the span, seen by neither
    side. So the statement must run in this transaction (as every statement in a step's does).
    """
    spec = table(table_name)
    conn.execute(text(f"LOCK TABLE {spec.default} IN ACCESS SHARE MODE"))
    periods = _period_partitions(conn, spec)
    at = f"{alias}.{spec.column}"
    picked = ", ".join(f"{alias}.{c}" for c in columns) + f", {at} AS newest_at, {alias}.id AS newest_id"
    ordered = f"ORDER BY {at} DESC, {alias}.id DESC LIMIT 1"
    if not periods:
        return f"(SELECT {', '.join(columns)} FROM (SELECT {picked} FROM {spec.table} {alias} WHERE {where} {ordered}) newest_row)"
    span = f"{at} >= TIMESTAMP '{periods[0][1]}' AND {at} < TIMESTAMP '{max(p[2] for p in periods)}'"
    return (
        f"(SELECT {', '.join(columns)} FROM ("
        f"(SELECT {picked} FROM {spec.table} {alias} WHERE {where} AND {span} {ordered})"
        f" UNION ALL (SELECT {picked} FROM {spec.default} {alias} WHERE {where} {ordered})"
        f") newest_row ORDER BY newest_at DESC, newest_id DESC LIMIT 1)"
    )


@dataclass(frozen=True)
class Stretch:
    """Rows of a partitioned table written in a stretch of time: `where` picks them (a condition on the
    time column), `since` is the stretch's first day (None: from the beginning), `rows` how many its
    partition holds as PostgreSQL last estimated them (0 for a partition never analyzed): what reading
    it may cost, never what it holds."""

    where: str
    since: date | None
    rows: float


def newest_first(conn: Connection, table_name: str, *, alias: str) -> list[Stretch]:
    """`table_name`'s rows in stretches of time, newest first, each read from one partition (`alias`
    names the table in the conditions): a period partition's span, or the default partition's rows
    after the last span, in a gap between two spans or before the first. So a statement per stretch
    reads one partition, and a walk over them can stop as soon as it has what it looks for, where one
    statement over the table reads every partition.

    As `newest`, the spans are read from the catalog after taking the default partition's ACCESS SHARE
    lock until the transaction ends, so a partition attached meanwhile cannot move rows between them."""
    spec = table(table_name)
    conn.execute(text(f"LOCK TABLE {spec.default} IN ACCESS SHARE MODE"))
    attached, strays = _partitions(conn, spec)
    periods = sorted(attached, key=lambda p: p[1], reverse=True)
    if not periods:
        return [Stretch("TRUE", None, strays)]
    at = f"{alias}.{spec.column}"
    later = max(p[2] for p in periods)
    stretches = [Stretch(f"{at} >= TIMESTAMP '{later}'", later, strays)]
    for _, lo, hi, tuples in periods:
        if hi < later:  # a gap (a detached partition): its rows wait in the default partition
            stretches.append(Stretch(f"{at} >= TIMESTAMP '{hi}' AND {at} < TIMESTAMP '{later}'", hi, strays))
        stretches.append(Stretch(f"{at} >= TIMESTAMP '{lo}' AND {at} < TIMESTAMP '{hi}'", lo, max(tuples, 0)))
        later = lo
    stretches.append(Stretch(f"{at} < TIMESTAMP '{later}'", None, strays))
    return stretches


def ensure_ahead(session: Session) -> list[str]:
    """The daily run's call: every partition a row written within POPEX_PARTITION_AHEAD_DAYS falls in."""
    ahead = partition_settings().partition_ahead_days
    through = session.connection().execute(
        text("SELECT CAST(localtimestamp + make_interval(days => :d) AS date)"), {"d": ahead}
    )
    return ensure_partitions(session, through=through.scalar_one())


def detach(session: Session, part: Expired) -> None:
    """Detach an expired partition: it stays in the database as a table of its own, to be archived
    (pg_dump -t) and then dropped by an operator. Not CONCURRENTLY: PostgreSQL refuses that while the
    table has a default partition, so it takes the table's lock briefly, within LOCK_TIMEOUT."""
    conn = session.connection()
    conn.execute(LOCK)
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    conn.execute(text(f"ALTER TABLE {part.table} DETACH PARTITION {part.name}"))
    conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    log.info("partition detached: %s", part.name)


# A partitioned table's own statistics (the whole table's, which the planner uses for a statement
# that reads every partition) are gathered by ANALYZE on the table, and that ANALYZE also samples and
# analyzes every partition again: after ten years, ten yearly partitions of tens of millions of rows
# each, where one was written. So after a large batch only the partitions it wrote are analyzed, and
# the table itself only once its rows have changed by this share since its statistics were gathered.
TABLE_STATISTICS_DRIFT = 0.1


def analyze_written(
    conn: Connection, table: str, written: Sequence[tuple[str, int]] | None = None
) -> list[str]:
    """ANALYZE a table the current transaction (or the one `written` tells of) wrote many rows into;
    returns what was analyzed.

    A plain table is analyzed whole. A partitioned one is analyzed whole (every partition with it)
    when it never was or its rows, counting this transaction's, have drifted more than
    TABLE_STATISTICS_DRIFT from its statistics; otherwise only the partitions this transaction wrote
    (pg_stat_xact_user_tables, which may also name one this session wrote a moment before), or those
    `written` names with the rows each gained (another transaction's writes: `batch_rows`).
    """
    partitioned = conn.scalar(
        text("SELECT relkind = 'p' FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}
    )
    if not partitioned:
        conn.execute(text(f"ANALYZE {table}"))
        return [table]
    xact = text(
        "SELECT s.relname, s.n_tup_ins - s.n_tup_del FROM pg_stat_xact_user_tables s"
        " JOIN pg_inherits i ON i.inhrelid = s.relid"
        " WHERE i.inhparent = CAST(:t AS regclass) AND s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0"
        " ORDER BY s.relname"
    )
    parts = list(written) if written is not None else conn.execute(xact, {"t": table}).all()
    own, counted = conn.execute(
        text(
            "SELECT t.reltuples, (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = t.oid)"
            " FROM pg_class t WHERE t.oid = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).one()
    rows = float(counted) + sum(net for _, net in parts)
    if own < 0 or abs(rows - own) > TABLE_STATISTICS_DRIFT * max(own, 1):
        conn.execute(text(f"ANALYZE {table}"))  # its partitions too: the written ones are among them
        return [table]
    for name, _ in parts:
        conn.execute(text(f"ANALYZE {name}"))
    return [name for name, _ in parts]


def batch_rows(conn: Connection, table: str, batch_id: int) -> list[tuple[str, int]]:
    """The partitions of `table` holding a batch's rows and how many each (through its batch_id index)."""
    found = conn.execute(
        text(
            f"SELECT tableoid::regclass::text, count(*) FROM {table} WHERE batch_id = :b GROUP BY 1 ORDER BY 1"
        ),
        {"b": batch_id},
    )
    return [(str(name), int(n)) for name, n in found]
