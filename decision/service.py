"""Units of work of decision analysis: keep the aggregates current, recount directly, trace lineage."""

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base import clock
from base.db import without_jit
from decision.aggregates import (
    APPLIED_RECORD,
    APPLIED_VERSION,
    AS_OF,
    ORIGIN_SQL,
    Window,
    as_of_params,
    batch_persons_sql,
    derive_and_apply,
    read_window,
)
from decision.dimensions import AGE_BAND_LOWER, UNKNOWN_BAND
from decision.provinces import PROVINCES, UNKNOWN_PROVINCE
from registry import partitions
from schemas.canonical import BatchStep

# How far back the aggregates reach by default (older versions count from the epoch on) and how far
# ahead age bands are precomputed; a batch whose dates come within a year of the horizon rebuilds.
HISTORY_YEARS = 5
HORIZON_YEARS = 2
CellKey = tuple[str, str, str]  # (cube, area_code, cell)


class UnknownBatchError(LookupError):
    """No batch has this id."""


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did: 'refresh' (incremental), 'rebuild' (from scratch) or 'skipped' (applied before)."""

    batch_id: int | None
    how: Literal["refresh", "rebuild", "skipped"]
    persons: int
    rows_changed: int
    seconds: float
    epoch: date
    horizon: date


def _lock(session: Session) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('decision.aggregates'))"))


def rebuild(
    *, session: Session, epoch: date | None = None, horizon: date | None = None, today: date | None = None
) -> RefreshResult:
    """Recompute every aggregate from the person versions, and mark their batches applied."""
    started = time.perf_counter()
    _lock(session)
    watermark, first, last = session.execute(
        text("SELECT coalesce(max(id), 0), min(valid_from), max(valid_from) FROM person_version")
    ).one()
    today = today or clock.today()
    latest = max(today, last or today)
    horizon = horizon or date(latest.year + HORIZON_YEARS, 1, 1)
    epoch = epoch or max(first or today.replace(month=1, day=1), date(horizon.year - HISTORY_YEARS, 1, 1))
    if not epoch < horizon:
        raise ValueError(f"epoch {epoch} must come before horizon {horizon}")
    window = Window(epoch, horizon, watermark)
    for table in ("decision.cell", "decision.flow", "decision.applied_batch"):
        session.execute(text(f"TRUNCATE {table}"))
    session.execute(
        text(
            """
            INSERT INTO decision.state (id, epoch, horizon, version_watermark, rebuilt_at)
            VALUES (1, :epoch, :horizon, :watermark, now())
            ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, horizon = excluded.horizon,
                version_watermark = excluded.version_watermark, rebuilt_at = excluded.rebuilt_at
            """
        ),
        {"epoch": epoch, "horizon": horizon, "watermark": watermark},
    )
    # Batches whose merge is done (failed in a later step too), and any other batch that already wrote versions.
    session.execute(
        text(
            """
            INSERT INTO decision.applied_batch (batch_id, how)
            SELECT id, 'rebuild' FROM batch WHERE state = ANY(:merged) OR failed_step = ANY(:later)
            UNION
            SELECT DISTINCT batch_id, 'rebuild' FROM person_version WHERE batch_id IS NOT NULL AND id <= :watermark
            """
        ),
        {
            "watermark": watermark,
            "merged": [str(s) for s in BatchStep.MERGE.done_states],
            "later": [str(s) for s in BatchStep.MERGE.later],
        },
    )
    changed = derive_and_apply(
        session,
        window=window,
        persons="person_version",
        before="FALSE",
        after=APPLIED_VERSION,
        record_before="FALSE",
        record_after=APPLIED_RECORD,
        empty=True,
    )
    persons = session.scalar(text("SELECT count(*) FROM person")) or 0
    return RefreshResult(None, "rebuild", persons, changed, time.perf_counter() - started, epoch, horizon)


def refresh_after_batch(*, session: Session, batch_id: int) -> RefreshResult:
    """Bring the aggregates up to date with one merged batch: subtract the old derivation of its
    persons and add the new one, set-wise. A batch already applied changes nothing."""
    started = time.perf_counter()
    _lock(session)
    if session.scalar(text("SELECT 1 FROM batch WHERE id = :b"), {"b": batch_id}) is None:
        raise UnknownBatchError(batch_id)
    window = read_window(session)
    if window is None:
        return rebuild(session=session)
    if session.scalar(text("SELECT 1 FROM decision.applied_batch WHERE batch_id = :b"), {"b": batch_id}):
        return RefreshResult(
            batch_id, "skipped", 0, 0, time.perf_counter() - started, window.epoch, window.horizon
        )
    # `+ 0`: read through the batch's index. Asked for max(valid_from) itself, PostgreSQL walks each
    # partition's valid_from index down from the top for a row of the batch: after ten yearly
    # partitions, all of every earlier year's index (0.88 s for a 45,000-version batch).
    latest = session.scalar(
        text("SELECT max(valid_from + 0) FROM person_version WHERE batch_id = :b"), {"b": batch_id}
    )
    if latest is not None and latest >= window.horizon - timedelta(days=366):
        return rebuild(session=session, epoch=window.epoch, today=latest)
    session.execute(text("DROP TABLE IF EXISTS _decision_persons, _decision_first_load"))
    with without_jit(session.connection()):  # a look-up per version (base.db.without_jit)
        for statement in batch_persons_sql(session.connection()):
            session.execute(text(statement), {"batch_id": batch_id, "watermark": window.version_watermark})
    persons = session.scalar(text("SELECT count(*) FROM _decision_persons")) or 0
    session.execute(text("ANALYZE _decision_persons"))
    changed = derive_and_apply(
        session,
        window=window,
        persons="_decision_persons",
        before=APPLIED_VERSION,
        after=f"({APPLIED_VERSION} OR v.batch_id = :batch_id)",
        record_before=APPLIED_RECORD,
        record_after=f"({APPLIED_RECORD} OR sr.batch_id = :batch_id)",
        params={"batch_id": batch_id},
    )
    session.execute(text("DROP TABLE _decision_persons"))
    seconds = time.perf_counter() - started
    session.execute(
        text(
            "INSERT INTO decision.applied_batch (batch_id, how, persons, rows_changed, seconds)"
            " VALUES (:b, 'refresh', :p, :c, :s)"
        ),
        {"b": batch_id, "p": persons, "c": changed, "s": seconds},
    )
    return RefreshResult(batch_id, "refresh", persons, changed, seconds, window.epoch, window.horizon)


RECOUNT_SQL = (
    """
WITH cur AS (
    SELECT DISTINCT ON (v.person_id) v.person_id, v.status, v.community_code, v.population_type, v.sex,
           v.birth_date, v.id_no
    FROM person_version v
    WHERE v.valid_from <= :as_of AND (CAST(:known_at AS timestamp) IS NULL OR v.recorded_at <= :known_at)
    ORDER BY v.person_id, v.recorded_at DESC, v.id DESC
),
fallback AS (
    SELECT DISTINCT ON (l.person_id) l.person_id, left(sr.extra->>'registered_area_code', 2) AS province
    FROM link l JOIN source_record sr ON sr.id = l.source_record_id
    WHERE sr.source = 'gaj_ld' AND left(sr.extra->>'registered_area_code', 2) = ANY(:provinces)
    ORDER BY l.person_id, sr.id
)
SELECT CASE WHEN v.community_code ~ '^[0-9]{12}$' THEN v.community_code END,
       CASE WHEN v.population_type IN ('registered', 'floating', 'foreign') THEN v.population_type ELSE '' END,
       CASE WHEN v.sex IN ('1', '2') THEN v.sex ELSE '' END,
       CASE WHEN v.birth_date IS NULL THEN :unknown_band
            ELSE width_bucket(greatest(decision.age_years(v.birth_date, :as_of), 0), :bands) - 1 END,
       """
    + ORIGIN_SQL
    + """,
       count(*)
FROM cur v LEFT JOIN fallback f USING (person_id)
WHERE v.status = 'active'
GROUP BY 1, 2, 3, 4, 5
"""
)


def area_codes_of(community_code: str | None) -> list[str]:
    """The city ('') and, for a community code, its district, street and community."""
    if community_code is None:
        return [""]
    return ["", community_code[:6], community_code[:9], community_code]


def recount(*, session: Session, as_of: date, known_at: Any = None) -> Counter[CellKey]:
    """The population cells on as_of counted straight from the person versions (as known at known_at,
    default now), without the aggregates: {(cube, area_code, cell): count}."""
    rows = session.execute(
        text(RECOUNT_SQL),
        {
            "as_of": as_of,
            "known_at": known_at,
            "bands": list(AGE_BAND_LOWER),
            "unknown_band": UNKNOWN_BAND,
            "provinces": list(PROVINCES),
            "unknown_province": UNKNOWN_PROVINCE,
        },
    )
    counts: Counter[CellKey] = Counter()
    for community, population_type, sex, band, province, n in rows:
        for area in area_codes_of(community):
            counts["pop", area, f"{population_type}|{sex}|{band}"] += n
            counts["type", area, population_type] += n
            if province is not None:
                counts["origin", area, province] += n
    return counts


def aggregate_cells(*, session: Session, as_of: date) -> Counter[CellKey]:
    """Every non-zero cell of every area on as_of, read from the aggregates (the counterpart of recount)."""
    window = read_window(session)
    if window is None:
        return Counter()
    rows = session.execute(
        text(
            """
            SELECT cube, area_code, cell, sum(n)::integer FROM decision.cell WHERE """
            + AS_OF
            + """
            GROUP BY cube, area_code, cell HAVING sum(n) <> 0
            """
        ),
        as_of_params(as_of, window.epoch),
    )
    return Counter({(cube, area, cell): n for cube, area, cell, n in rows})


@dataclass(frozen=True)
class LineageRow:
    """Records of one batch linked to the persons behind a number, and versions in force it wrote."""

    department_code: str
    department_name: str
    source: str
    feed_title: str
    batch_id: int
    file_name: str
    as_of_date: date
    records: int
    versions: int


# Reading the rest of the stretches costs less than counting everyone looked for when they hold fewer
# rows than this (a count of 1,000,000 persons: 65 ms; an empty default partition: a millisecond).
READ_RATHER_THAN_COUNT = 100_000

# The version in force on :as_of of each person (the one recorded last of those dated by then), found
# newest first, a stretch of time at a time (registry.partitions.newest_first), each adding the persons
# it holds such a version of and no later stretch did: a person's later stretches were recorded after
# every earlier one's, so the first to hold one of theirs holds the one in force. The stretches up to
# today's go first, together (one statement that PostgreSQL may run in parallel); the walk stops when
# every candidate is found. After ten years of partitions one DISTINCT ON over the table sorted every
# version of every year (BENCHMARKS.md: the lineage of the city 0.84 s against 0.28 s in the first year).
LINEAGE_IN_FORCE_SQL = """
{into}
SELECT DISTINCT ON (v.person_id) v.person_id, v.batch_id,
       coalesce(v.status = 'active' AND coalesce(v.community_code, '') LIKE :prefix
                AND (CAST(:ptype AS text) IS NULL OR v.population_type = :ptype)
                AND (CAST(:sex AS text) IS NULL OR v.sex = :sex)
                AND (CAST(:age_from AS integer) IS NULL OR decision.age_years(v.birth_date, :as_of) >= :age_from)
                AND (CAST(:age_to AS integer) IS NULL OR decision.age_years(v.birth_date, :as_of) <= :age_to),
                FALSE) AS counted
FROM person_version v
WHERE ({stretch}) AND v.valid_from <= :as_of {candidates} {not_found}
ORDER BY v.person_id, v.recorded_at DESC, v.id DESC
"""
NOT_FOUND = "AND NOT EXISTS (SELECT 1 FROM _decision_in_force f WHERE f.person_id = v.person_id)"

# Per batch, the records linked to the residents counted and the versions in force it wrote.
LINEAGE_SQL = """
WITH records AS (  -- a link's batch is its record's (registry.consistency checks it): no source_record read
    SELECT l.batch_id, count(*) AS records
    FROM _decision_in_force p JOIN link l ON l.person_id = p.person_id
    WHERE p.counted
    GROUP BY l.batch_id
),
versions AS (
    SELECT batch_id, count(*) AS versions FROM _decision_in_force
    WHERE counted AND batch_id IS NOT NULL GROUP BY batch_id
)
SELECT coalesce(f.department_code, ''), coalesce(d.name, ''), b.source, coalesce(f.title, b.source),
       b.id, b.file_name, b.as_of_date, coalesce(r.records, 0), coalesce(v.versions, 0)
FROM records r FULL JOIN versions v USING (batch_id)
JOIN batch b ON b.id = coalesce(r.batch_id, v.batch_id)
LEFT JOIN feed f ON f.source = b.source
LEFT JOIN department d ON d.code = f.department_code
WHERE b.as_of_date <= :as_of
ORDER BY 1, 3, b.as_of_date, b.id
"""


# An area whose versions dated by then outnumber this share of the persons (PostgreSQL's estimates: a
# district that is most of the city, after years of history) is walked as the city is: reading every year's
# versions of the area to find its candidates would cost more than reading everyone's newest stretch.
WALKED_AS_THE_CITY = 1.0
# The area's versions dated by then (a range of ix_person_version_community): their persons are its candidates.
AREA_VERSIONS = "person_version c WHERE c.community_code LIKE :prefix AND c.valid_from <= :as_of"


def _estimated_rows(conn: Connection, sql: str, params: dict[str, Any]) -> float:
    """How many rows PostgreSQL's planner expects `sql` to return (EXPLAIN: nothing is read)."""
    plan = conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"), params)
    return float((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])


def _in_force(conn: Connection, area: str, as_of: date, counted: dict[str, Any]) -> None:
    """`_decision_in_force` (person_id, batch_id, counted): the version in force on as_of of every
    person who may live in the area then (LINEAGE_IN_FORCE_SQL), and whether they count (`counted`:
    the lineage's type, sex and ages)."""
    conn.execute(text("DROP TABLE IF EXISTS _decision_in_force"))
    params = {"as_of": as_of, "prefix": f"{area}%", **counted}
    # An area's residents are among the persons with a version there dated by then (a range of
    # ix_person_version_community, read by each statement: a subquery on a table, not a temporary
    # one, so that PostgreSQL may read in parallel); the city's, and an area as large, among everyone.
    candidates, count_sql = "", "SELECT count(*) FROM person"
    if area and _estimated_rows(conn, f"SELECT 1 FROM {AREA_VERSIONS}", params) < (
        WALKED_AS_THE_CITY * _estimated_rows(conn, "SELECT 1 FROM person", {})
    ):
        candidates = f"AND v.person_id IN (SELECT c.person_id FROM {AREA_VERSIONS})"
        count_sql = f"SELECT count(DISTINCT c.person_id) FROM {AREA_VERSIONS}"
    stretches = partitions.newest_first(conn, "person_version", alias="v")
    today = conn.scalar(text("SELECT CAST(localtimestamp AS date)"))
    first = next(
        (k for k, s in enumerate(stretches) if s.since is None or s.since <= today), len(stretches) - 1
    )
    found = conn.execute(
        text(
            LINEAGE_IN_FORCE_SQL.format(
                into="CREATE TEMP TABLE _decision_in_force ON COMMIT DROP AS",
                stretch=" OR ".join(f"({s.where})" for s in stretches[: first + 1]),
                candidates=candidates,
                not_found="",
            )
        ),
        params,
    ).rowcount
    rest = stretches[first + 1 :]
    # Everyone looked for, counted after the reads so far, when the rest is worth sparing: neither
    # persons nor versions are ever deleted, and each one found was there when its statement read, so
    # finding as many as are there now is finding all of them, whatever was committed meanwhile.
    # (Every version's person is in `person`: `popex db check` counts those that are not.)
    looked_for = -1
    for k, stretch in enumerate(rest):
        if found >= looked_for and sum(s.rows for s in rest[k:]) >= READ_RATHER_THAN_COUNT:
            looked_for = int(conn.scalar(text(count_sql), params))
            if found == looked_for:  # the older stretches cannot change what is in force
                break
        found += conn.execute(
            text(
                LINEAGE_IN_FORCE_SQL.format(
                    into="INSERT INTO _decision_in_force",
                    stretch=stretch.where,
                    candidates=candidates,
                    not_found=NOT_FOUND,
                )
            ),
            params,
        ).rowcount


def lineage(
    *,
    session: Session,
    area: str,
    as_of: date,
    population_type: str | None = None,
    sex: str | None = None,
    age_from: int | None = None,
    age_to: int | None = None,
) -> tuple[int, list[LineageRow]]:
    """The residents of an area on as_of (optionally of one type, sex or age range) and, per batch, the
    source records linked to them and the versions in force it wrote. Counts only: no person is listed."""
    conn = session.connection()
    counted = {"ptype": population_type, "sex": sex, "age_from": age_from, "age_to": age_to}
    _in_force(conn, area, as_of, counted)
    population = conn.scalar(text("SELECT count(*) FROM _decision_in_force WHERE counted")) or 0
    rows = [LineageRow(*row) for row in session.execute(text(LINEAGE_SQL), {"as_of": as_of})]
    conn.execute(text("DROP TABLE _decision_in_force"))
    return population, rows
