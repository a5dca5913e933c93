"""The aggregate tables in SQL: derive cells and flows from person versions, apply deltas, read them back.

A person's history is the sequence of their versions in valid time: the version in force on day X is
the one with valid_from <= X recorded last, so version v is in force from its valid_from until the
earliest valid_from of any version recorded after it (never, if that is not later). While in force
and active, the person counts in one cell per cube (type|sex|age band, type, province of origin),
moving to the next age band on the birthdays that start one. Each stay in a cell is a +1 on its
first day and a -1 on the day after its last, summed per area (city, district, street, community)
and per month and per day. Flows are the changes of area between consecutive versions; a person's
first version is a birth when they were born then, an arrival otherwise, except when it comes from
their department's first extract and is dated no later than it (stock the extract found, not a move).

Everything is computed for a scope of (side, version) rows: side +1 adds a derivation, side -1
subtracts one, so one statement computes "new minus old" for an incremental refresh.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base.db import without_jit
from decision.dimensions import AGE_BAND_LOWER, UNKNOWN_BAND
from decision.provinces import PROVINCES, UNKNOWN_PROVINCE
from registry import partitions

# Versions and source records already in the aggregates: those of applied batches, and versions
# written without a batch up to the watermark of the last rebuild.
APPLIED_VERSION = (
    "(v.batch_id IN (SELECT batch_id FROM decision.applied_batch)"
    " OR (v.batch_id IS NULL AND v.id <= :watermark))"
)
APPLIED_RECORD = "sr.batch_id IN (SELECT batch_id FROM decision.applied_batch)"


# The persons a batch's refresh derives again: those of its versions that can change what the
# aggregates hold, and those of its floating-population records (the province fallback below). A
# version changes nothing when the version it follows (the person's latest before it that the
# aggregates hold, or an earlier one of the batch) has the same status, area, type, sex, birth date and
# ID number and began earlier — it only cuts that stay in two at its date, in the same cell, and moves
# no one — or began the same day and is stock as much as it (it takes that version's place, also as the
# person's first: see `stock` below). A batch of phone numbers or school rolls is mostly such versions.
# Anything else, a person's first version or one dated back included, is derived again.
# `_decision_first_load`: each batch's feed's first data date (as `first_load` below).
def batch_persons_sql(conn: Connection) -> list[str]:
    """The statements that fill `_decision_persons` for a batch (:batch_id, :watermark). The version
    each follows is looked up newest first (registry.partitions.newest), so its cost does not grow with
    the years of versions before it."""
    follows = partitions.newest(
        conn,
        "person_version",
        alias="u",
        where="u.person_id = v.person_id AND (u.recorded_at, u.id) < (v.recorded_at, v.id)"
        f" AND ({APPLIED_VERSION.replace('v.', 'u.')} OR u.batch_id = :batch_id)",
        columns=(
            "batch_id",
            "valid_from",
            "status",
            "community_code",
            "population_type",
            "sex",
            "birth_date",
            "id_no",
        ),
    )
    return [
        """
        CREATE TEMP TABLE _decision_first_load ON COMMIT DROP AS
        SELECT id AS batch_id, min(as_of_date) OVER (PARTITION BY source) AS first_date FROM batch
        """,
        "ALTER TABLE _decision_first_load ADD PRIMARY KEY (batch_id)",
        f"""
        CREATE TEMP TABLE _decision_persons ON COMMIT DROP AS
        SELECT v.person_id FROM person_version v
        LEFT JOIN _decision_first_load fv ON fv.batch_id = v.batch_id
        WHERE v.batch_id = :batch_id AND NOT EXISTS (
            SELECT 1 FROM {follows} u
            LEFT JOIN _decision_first_load fu ON fu.batch_id = u.batch_id
            WHERE (u.valid_from < v.valid_from
                   OR (u.valid_from = v.valid_from
                       AND coalesce(u.valid_from <= fu.first_date, FALSE) = coalesce(v.valid_from <= fv.first_date, FALSE)))
              AND (u.status, u.community_code, u.population_type, u.sex, u.birth_date, u.id_no)
                  IS NOT DISTINCT FROM (v.status, v.community_code, v.population_type, v.sex, v.birth_date, v.id_no)
        )
        UNION
        SELECT l.person_id FROM source_record sr JOIN link l ON l.source_record_id = sr.id
        WHERE sr.batch_id = :batch_id AND sr.source = 'gaj_ld'
        """,
        "DROP TABLE _decision_first_load",
    ]


# Province of origin of a floating person (version v, fallback f): from the ID number, else from the
# registered area of a floating-population registration, else unknown.
ORIGIN_SQL = (
    "CASE WHEN v.population_type = 'floating' THEN coalesce("
    "CASE WHEN v.id_no ~ '^[1-9][0-9]{16}[0-9Xx]$' AND left(v.id_no, 2) = ANY(:provinces)"
    " THEN left(v.id_no, 2) END, f.province, :unknown_province) END"
)

# {persons}: a FROM clause yielding person_id (or person_version itself); {before}/{after}: version
# predicates of side -1 / +1; {record_before}/{record_after}: the same for source records.
SCOPE_SQL = (
    """
CREATE TEMP TABLE _decision_scope ON COMMIT DROP AS
WITH fallback AS (
    -- Province of origin of floating people whose ID number does not give it: the registered area
    -- code of their earliest linked floating-population registration.
    SELECT DISTINCT ON (x.side, l.person_id) x.side, l.person_id,
           left(sr.extra->>'registered_area_code', 2) AS province
    FROM link l
    JOIN source_record sr ON sr.id = l.source_record_id
    CROSS JOIN LATERAL (VALUES (-1, {record_before}), (1, {record_after})) AS x(side, inside)
    WHERE x.inside AND sr.source = 'gaj_ld'
      AND left(sr.extra->>'registered_area_code', 2) = ANY(:provinces)
      AND l.person_id IN (SELECT person_id FROM {persons})
    ORDER BY x.side, l.person_id, sr.id
),
first_load AS (
    -- Each batch with the data date of its feed's first batch.
    SELECT id AS batch_id, min(as_of_date) OVER (PARTITION BY source) AS first_date FROM batch
)
SELECT x.side, v.person_id, v.id, v.valid_from, v.recorded_at, v.status,
       -- Stock, not an event: a version dated no later than its department's first extract (the first
       -- load lists who was there; it does not say they arrived then).
       coalesce(v.valid_from <= fl.first_date, FALSE) AS stock,
       CASE WHEN v.community_code ~ '^[0-9]{{12}}$' THEN v.community_code END AS cc,
       CASE WHEN v.population_type IN ('registered', 'floating', 'foreign') THEN v.population_type ELSE '' END
           AS ptype,
       CASE WHEN v.sex IN ('1', '2') THEN v.sex ELSE '' END AS sex,
       v.birth_date AS b,
       coalesce("""
    + ORIGIN_SQL.replace("{", "{{").replace("}", "}}")
    + """, '') AS province
FROM person_version v
CROSS JOIN LATERAL (VALUES (-1, {before}), (1, {after})) AS x(side, inside)
LEFT JOIN fallback f ON f.side = x.side AND f.person_id = v.person_id
LEFT JOIN first_load fl ON fl.batch_id = v.batch_id
WHERE x.inside AND v.person_id IN (SELECT person_id FROM {persons})
"""
)

# The versions of the scope in force some time, with the days they are in force [s, e).
EFF_SQL = """
CREATE TEMP TABLE _decision_eff ON COMMIT DROP AS
WITH seg AS (
    SELECT side, person_id, status, stock, cc, ptype, sex, b, province, valid_from AS s,
           min(valid_from) OVER (PARTITION BY side, person_id ORDER BY recorded_at DESC, id DESC
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS e
    FROM _decision_scope
)
SELECT * FROM seg WHERE e IS NULL OR e > s
"""

_BAND = (
    "CASE WHEN b IS NULL THEN {unknown}"
    " ELSE width_bucket(greatest(decision.age_years(b, {day}), 0), :bands) - 1 END"
)

CELL_DELTA_SQL = (
    """
CREATE TEMP TABLE _decision_cell_delta ON COMMIT DROP AS
WITH stay AS (
    SELECT side, cc, ptype, sex, b, province,
           greatest(s, :epoch) AS cs, least(coalesce(e, :horizon), :horizon) AS ce
    FROM _decision_eff WHERE status = 'active' AND greatest(s, :epoch) < least(coalesce(e, :horizon), :horizon)
),
banded AS (
    -- The age band on the first and on the last day of the stay.
    SELECT *, """
    + _BAND.format(unknown=UNKNOWN_BAND, day="cs")
    + """ AS band_first,
           """
    + _BAND.format(unknown=UNKNOWN_BAND, day="ce - 1")
    + """ AS band_last
    FROM stay
),
ev AS (
    SELECT side, cc, ptype, sex, province, band_first AS band, cs AS day, 1 AS d FROM banded
    UNION ALL
    SELECT side, cc, ptype, sex, province, band_last, ce, -1 FROM banded WHERE ce < :horizon
    UNION ALL
    -- Each birthday that starts band k during the stay: -1 in band k-1, +1 in band k.
    SELECT side, cc, ptype, sex, province, t.band, decision.birthday(b, (:bands)[k + 1]), t.d
    FROM banded
    CROSS JOIN LATERAL generate_series(band_first + 1, band_last) AS k
    CROSS JOIN LATERAL (VALUES (k - 1, -1), (k, 1)) AS t(band, d)
    WHERE band_last > band_first
),
base AS (
    -- Sums of +1/-1 as integer (a count of persons): bigint's sum would be numeric, measured 1.3 times slower.
    SELECT cc, ptype, sex, province, band, day, sum(side * d)::integer AS d
    FROM ev GROUP BY cc, ptype, sex, province, band, day HAVING sum(side * d) <> 0
),
cube AS (
    SELECT 'pop' AS cube, cc, ptype || '|' || sex || '|' || band AS cell, day, d FROM base
    UNION ALL SELECT 'type', cc, ptype, day, d FROM base
    UNION ALL SELECT 'origin', cc, province, day, d FROM base WHERE ptype = 'floating'
),
cube_day AS (
    SELECT cube, cc, cell, day, date_trunc('month', day)::date AS month, sum(d)::integer AS d
    FROM cube GROUP BY cube, cc, cell, day HAVING sum(d) <> 0
),
rolled AS (
    -- Each area level (city, district, street, community) by day and by month in one pass over
    -- cube_day; a level whose code is unknown (no community) is left out below, the city keeps it.
    SELECT cube, cell, CASE WHEN grouping(day) = 0 THEN 'D' ELSE 'M' END AS grain,
           coalesce(day, month) AS period, grouping(cc, left(cc, 9), left(cc, 6)) AS level,
           cc, left(cc, 9) AS street, left(cc, 6) AS district, sum(d)::integer AS n
    FROM cube_day
    GROUP BY cube, cell, GROUPING SETS (
        (day), (left(cc, 6), day), (left(cc, 9), day), (cc, day),
        (month), (left(cc, 6), month), (left(cc, 9), month), (cc, month))
    HAVING sum(d) <> 0
)
-- grouping(cc, street, district): 0b011 community, 0b101 street, 0b110 district, 0b111 city.
SELECT cube, CASE level WHEN 3 THEN cc WHEN 5 THEN street WHEN 6 THEN district ELSE '' END AS area_code,
       grain, period, cell, n
FROM rolled
WHERE CASE level WHEN 3 THEN cc WHEN 5 THEN street WHEN 6 THEN district ELSE '' END IS NOT NULL
"""
)

FLOW_DELTA_SQL = """
CREATE TEMP TABLE _decision_flow_delta ON COMMIT DROP AS
WITH step AS (
    SELECT side, s AS day, b, status, stock, cc,
           lag(status) OVER w AS prev_status, lag(cc) OVER w AS prev_cc, row_number() OVER w = 1 AS first
    FROM _decision_eff
    WINDOW w AS (PARTITION BY side, person_id ORDER BY s)
),
moved AS (
    SELECT side, day, b, status, stock, first, c.old_code, c.new_code
    FROM step
    CROSS JOIN LATERAL (VALUES (0), (6), (9), (12)) AS l(len)
    CROSS JOIN LATERAL (SELECT
        CASE WHEN prev_status = 'active' THEN CASE WHEN l.len = 0 THEN '' ELSE left(prev_cc, l.len) END END,
        CASE WHEN status = 'active' THEN CASE WHEN l.len = 0 THEN '' ELSE left(cc, l.len) END END
    ) AS c(old_code, new_code)
    WHERE day > :epoch AND day < :horizon AND c.old_code IS DISTINCT FROM c.new_code
),
flow AS (
    SELECT side, new_code AS area_code, day,
           CASE WHEN first AND b IS NOT NULL AND day < decision.birthday(b, 1) THEN 'birth' ELSE 'in' END AS kind
    FROM moved WHERE new_code IS NOT NULL AND NOT (first AND stock AND (b IS NULL OR day >= decision.birthday(b, 1)))
    UNION ALL
    SELECT side, old_code, day,
           CASE status WHEN 'dead' THEN 'death' WHEN 'retired' THEN 'other' ELSE 'out' END
    FROM moved WHERE old_code IS NOT NULL
)
SELECT area_code, date_trunc('month', day)::date AS month, kind, sum(side)::integer AS n
FROM flow GROUP BY area_code, date_trunc('month', day), kind HAVING sum(side) <> 0
"""

APPLY_SQL = [
    # By period, the key's second column (neighbouring rows share index pages; the whole key's order
    # cost 10-15 % more CPU to sort than it saved); rows that reach 0 are noted, then removed.
    """
    CREATE TEMP TABLE _decision_zero ON COMMIT DROP AS
    WITH up AS (
        INSERT INTO decision.cell AS t (cube, area_code, grain, period, cell, n)
        SELECT cube, area_code, grain, period, cell, n FROM _decision_cell_delta ORDER BY period
        ON CONFLICT (grain, period, cube, area_code, cell) DO UPDATE SET n = t.n + excluded.n
        RETURNING t.cube, t.area_code, t.grain, t.period, t.cell, t.n
    )
    SELECT cube, area_code, grain, period, cell FROM up WHERE n = 0
    """,
    """
    DELETE FROM decision.cell t USING _decision_zero z
    WHERE (t.cube, t.area_code, t.grain, t.period, t.cell) = (z.cube, z.area_code, z.grain, z.period, z.cell)
      AND t.n = 0
    """,
    "DROP TABLE _decision_zero",
    """
    INSERT INTO decision.flow AS t (area_code, month, kind, n)
    SELECT area_code, month, kind, n FROM _decision_flow_delta
    ON CONFLICT (area_code, month, kind) DO UPDATE SET n = t.n + excluded.n
    """,
    """
    DELETE FROM decision.flow t USING _decision_flow_delta d
    WHERE t.n = 0 AND (t.area_code, t.month, t.kind) = (d.area_code, d.month, d.kind)
    """,
]

# Into empty tables (a rebuild): load without the primary keys, then build them once. The rows go in
# by period, as readers ask for them: sorting 786,519 rows by the key took 2.7 s (ties on its text
# columns are slow to compare; grain, in the database's collation, slowest), by period 0.3 s, and the
# key's index sorts for itself (0.4 s).
LOAD_SQL = [
    "ALTER TABLE decision.cell DROP CONSTRAINT pk_cell",
    """
    INSERT INTO decision.cell (cube, area_code, grain, period, cell, n)
    SELECT cube, area_code, grain, period, cell, n FROM _decision_cell_delta ORDER BY period
    """,
    "ALTER TABLE decision.cell ADD CONSTRAINT pk_cell PRIMARY KEY (grain, period, cube, area_code, cell)",
    "INSERT INTO decision.flow (area_code, month, kind, n) SELECT area_code, month, kind, n FROM _decision_flow_delta",
    "ANALYZE decision.cell",
]


@dataclass(frozen=True)
class Window:
    """The days the aggregates cover: [epoch, horizon)."""

    epoch: date
    horizon: date
    version_watermark: int


def derive_and_apply(
    session: Session,
    *,
    window: Window,
    persons: str,
    before: str,
    after: str,
    record_before: str,
    record_after: str,
    params: dict[str, Any] | None = None,
    empty: bool = False,
) -> int:
    """Derive (after − before) for the persons and add it to the aggregates (empty: known to be
    empty, so load them in bulk); returns the rows changed."""
    bound = {
        "epoch": window.epoch,
        "horizon": window.horizon,
        "watermark": window.version_watermark,
        "bands": list(AGE_BAND_LOWER),
        "provinces": list(PROVINCES),
        "unknown_province": UNKNOWN_PROVINCE,
        **(params or {}),
    }
    temp = "_decision_scope, _decision_eff, _decision_cell_delta, _decision_flow_delta"
    session.execute(text(f"DROP TABLE IF EXISTS {temp}"))
    # Large set-wise statements: aggregate in memory, and skip JIT compilation (it costs more than it saves).
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    with without_jit(session.connection()):
        scope = SCOPE_SQL.format(
            persons=persons,
            before=before,
            after=after,
            record_before=record_before,
            record_after=record_after,
        )
        session.execute(text(scope), bound)
        session.execute(text("ANALYZE _decision_scope"))
        session.execute(text(EFF_SQL))
        session.execute(text(CELL_DELTA_SQL), bound)
        session.execute(text(FLOW_DELTA_SQL), bound)
        changed = 0
        for statement in LOAD_SQL if empty else APPLY_SQL:
            result = session.execute(text(statement))
            changed += max(getattr(result, "rowcount", 0) or 0, 0)  # a DROP TABLE's is -1
        session.execute(text(f"DROP TABLE {temp}"))
    session.execute(text("SET LOCAL work_mem TO DEFAULT"))
    return changed


def read_window(session: Session) -> Window | None:
    """The window of the current aggregates, or None before the first rebuild."""
    row = session.execute(
        text("SELECT epoch, horizon, version_watermark FROM decision.state WHERE id = 1")
    ).one_or_none()
    return Window(*row) if row else None


# The count on a day: the month rows of earlier months plus the day rows of its month up to the day.
# The periods are listed, so each is one probe of the primary key (which leads with grain and period,
# so that a refresh, whose changes fall on a few days, writes to few places of the index).
AS_OF = "((grain = 'M' AND period = ANY(:months)) OR (grain = 'D' AND period = ANY(:days)))"

CELLS_AT_SQL = (
    """
SELECT area_code, cell, sum(n)::integer AS n
FROM decision.cell
WHERE cube = :cube AND area_code = ANY(:areas) AND """
    + AS_OF
    + """
GROUP BY area_code, cell
HAVING sum(n) <> 0
"""
)


def month_starts(first: date, last: date) -> list[date]:
    """The first days of the months from first's to last's."""
    out, month = [], first.replace(day=1)
    while month <= last:
        out.append(month)
        month = next_month(month)
    return out


def as_of_params(day: date, epoch: date) -> dict[str, list[date]]:
    """The parameters of AS_OF for a day: the months since the epoch before day's, and its days."""
    start = day.replace(day=1)
    return {
        "months": month_starts(epoch, start - timedelta(days=1)) if start > epoch else [],
        "days": [start + timedelta(days=i) for i in range(day.day)],
    }


def cells_at(
    session: Session, *, cube: str, areas: list[str], day: date, epoch: date
) -> dict[str, dict[str, int]]:
    """{area_code: {cell: count}} of a cube on a day (the prefix sum of month and day rows)."""
    rows = session.execute(text(CELLS_AT_SQL), {"cube": cube, "areas": areas, **as_of_params(day, epoch)})
    out: dict[str, dict[str, int]] = {a: {} for a in areas}
    for area_code, cell, n in rows:
        out[area_code][cell] = n
    return out


def month_end_totals(
    session: Session, *, area: str, first: date, last: date, epoch: date
) -> dict[date, dict[str, int]]:
    """{month start: {type: count on the month's last day}} of an area, for the months first..last."""
    rows = session.execute(
        text(
            "SELECT period, cell, sum(n)::integer FROM decision.cell"
            " WHERE grain = 'M' AND period = ANY(:months) AND cube = 'type' AND area_code = :area"
            " GROUP BY period, cell ORDER BY period"
        ),
        {"area": area, "months": month_starts(epoch, last)},
    ).all()
    running: dict[str, int] = {}
    out: dict[date, dict[str, int]] = {}
    i = 0
    for month in month_starts(min(first, epoch), last):
        while i < len(rows) and rows[i][0] <= month:
            running[rows[i][1]] = running.get(rows[i][1], 0) + rows[i][2]
            i += 1
        if month >= first.replace(day=1):
            out[month] = {c: v for c, v in running.items() if v}
    return out


def next_month(day: date) -> date:
    """The first day of the month after day's."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def flows_between(session: Session, *, area: str, first: date, last: date) -> dict[date, dict[str, int]]:
    """{month start: {kind: count}} of an area's flows in the months first..last."""
    rows = session.execute(
        text(
            "SELECT month, kind, n FROM decision.flow WHERE area_code = :area AND month >= :first AND month <= :last"
        ),
        {"area": area, "first": first, "last": last},
    )
    out: dict[date, dict[str, int]] = {}
    for month, kind, n in rows:
        out.setdefault(month, {})[kind] = n
    return out
