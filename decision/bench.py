"""Benchmark of decision analysis: dashboard queries at a million persons, refresh after a daily batch.

    POPEX_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m decision.bench --persons 1000000 --increment 50000

Creates a dedicated database (dropped afterwards unless --keep), generates the city set-wise in SQL
(generate_series), builds the aggregates, times every query the dashboard makes at each area level,
then writes one daily batch of version changes the way the merge step does and times its refresh.
"""

import argparse
import csv
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from base.db import create_database, database_url, drop_database
from decision import aggregates, indicators, service
from decision.dimensions import POPULATION_TYPES
from decision.schemas import AreaOut
from registry.migrate import upgrade

BENCH_BATCH_SOURCES = (("gaj", "公安局", "gaj_hj", "户籍人口"), ("gaj", "公安局", "gaj_ld", "流动人口登记"))

AREAS_SQL = """
INSERT INTO area (code, name, level, parent_code)
SELECT '3301' || lpad(d::text, 2, '0'), '第' || d || '区', 'district', NULL FROM generate_series(1, :districts) d;
INSERT INTO area (code, name, level, parent_code)
SELECT '3301' || lpad(d::text, 2, '0') || lpad(s::text, 3, '0'), '第' || d || '区' || s || '街道', 'street',
       '3301' || lpad(d::text, 2, '0')
FROM generate_series(1, :districts) d, generate_series(1, :streets) s;
INSERT INTO area (code, name, level, parent_code)
SELECT st.code || lpad(c::text, 3, '0'), st.name || c || '社区', 'community', st.code
FROM area st, generate_series(1, :communities) c WHERE st.level = 'street';
"""

# Ages: mostly adults around 40 (a normal draw), plus children; 70 % registered, 25 % floating, 5 %
# foreign; most people on record since 2019, a tenth arrived (or were born) later. ID numbers are unique
# (the area digits carry n / 1000, the sequence n % 1000), as the registry requires of an identifier.
PERSONS_SQL = """
CREATE TEMP TABLE bench_person ON COMMIT DROP AS
WITH draw AS (
    SELECT g AS n, random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5
    FROM generate_series(1, :persons) g
), shaped AS (
    SELECT n, u3, u4, u5,
           CASE WHEN u1 < 0.15 THEN u2 * 18
                ELSE least(100, abs(40 + 21 * sqrt(-2 * ln(greatest(u1, 1e-9))) * cos(2 * pi() * u2))) END AS age
    FROM draw
)
SELECT n,
       (DATE '2026-06-30' - (age * 365.25)::integer) AS birth_date,
       CASE WHEN u3 < 0.7 THEN 'registered' WHEN u3 < 0.95 THEN 'floating' ELSE 'foreign' END AS ptype,
       CASE WHEN u4 < 0.51 THEN '1' ELSE '2' END AS sex,
       c.code AS community_code,
       (ARRAY['11','13','34','36','37','41','42','43','44','51','52','53','61','62'])[1 + (n % 14)] AS province
FROM shaped JOIN bench_community c ON c.k = 1 + floor(u5 * :n_communities)::integer;
INSERT INTO person (id, person_no, area_key, status, id_type, id_no, name, sex, birth_date, community_code,
                    population_type, provenance, created_at, updated_at)
SELECT n, 'P' || lpad(n::text, 11, '0'), left(community_code, 6), 'active',
       CASE WHEN ptype = 'foreign' THEN '护照' ELSE '居民身份证' END,
       CASE WHEN ptype = 'foreign' THEN 'E' || lpad(n::text, 8, '0')
            WHEN ptype = 'floating' THEN province || lpad((n / 1000 % 10000)::text, 4, '0') || to_char(birth_date, 'YYYYMMDD') || lpad((n % 1000)::text, 3, '0') || '1'
            ELSE '330' || lpad((n / 1000 % 1000)::text, 3, '0') || to_char(birth_date, 'YYYYMMDD') || lpad((n % 1000)::text, 3, '0') || '1' END,
       '人' || n, sex, birth_date, community_code, ptype, '{}', now(), now()
FROM bench_person;
INSERT INTO person_version (person_id, area_key, valid_from, recorded_at, batch_id, changed, status, id_no, name,
                            sex, birth_date, community_code, population_type)
SELECT p.id, p.area_key,
       CASE WHEN p.birth_date > DATE '2019-01-01' THEN p.birth_date
            WHEN p.id % 10 = 0 THEN DATE '2019-01-01' + (p.id * 7919 % 2738)::integer
            ELSE DATE '2019-01-01' END,
       TIMESTAMP '2026-01-01', :batch, '["created"]', 'active', p.id_no, p.name, p.sex, p.birth_date,
       p.community_code, p.population_type
FROM person p;
SELECT setval('person_id_seq', (SELECT max(id) FROM person));
"""

# One batch of changes, as the merge writes them: a new whole-row version per changed person
# (copied from the golden record, then changed), and the golden record updated.
CHANGES_SQL = """
CREATE TEMP TABLE bench_change ON COMMIT DROP AS
WITH chosen AS (SELECT id FROM person WHERE status = 'active' ORDER BY random() LIMIT :changes)
SELECT chosen.id AS person_id,
       (ARRAY['phone', 'phone', 'phone', 'move', 'move', 'type', 'dead', 'left', 'backdated'])[1 + chosen.id % 9]
           AS kind,
       c.code AS new_community
FROM chosen JOIN bench_community c ON c.k = 1 + (chosen.id % :n_communities)::integer;
INSERT INTO person_version (person_id, area_key, valid_from, recorded_at, batch_id, changed, status, id_no, name,
                            sex, birth_date, death_date, community_code, population_type, phone)
SELECT p.id, left(CASE WHEN c.kind = 'move' THEN c.new_community ELSE p.community_code END, 6),
       CASE WHEN c.kind = 'backdated' THEN :day - 30 - (p.id % 365)::integer ELSE :day - (p.id % 3)::integer END,
       :recorded_at, :batch, jsonb_build_array(c.kind),
       CASE c.kind WHEN 'dead' THEN 'dead' WHEN 'left' THEN 'left' ELSE p.status END,
       p.id_no, p.name,
       CASE WHEN c.kind = 'backdated' THEN CASE p.sex WHEN '1' THEN '2' ELSE '1' END ELSE p.sex END,
       p.birth_date, CASE WHEN c.kind = 'dead' THEN :day END,
       CASE WHEN c.kind = 'move' THEN c.new_community ELSE p.community_code END,
       CASE WHEN c.kind = 'type' THEN 'registered' ELSE p.population_type END,
       CASE WHEN c.kind = 'phone' THEN '139' || lpad((p.id % 100000000)::text, 8, '0') ELSE p.phone END
FROM person p JOIN bench_change c ON c.person_id = p.id;
UPDATE person p SET status = v.status, sex = v.sex, community_code = v.community_code, death_date = v.death_date,
                    population_type = v.population_type, phone = v.phone, area_key = v.area_key, updated_at = now()
FROM person_version v WHERE v.batch_id = :batch AND v.person_id = p.id;
WITH born AS (
    INSERT INTO person (person_no, area_key, status, id_type, name, sex, birth_date, community_code,
                        population_type, provenance)
    SELECT 'B' || lpad((:batch * 100000 + g)::text, 11, '0'), left(c.code, 6), 'active', '居民身份证',
           '新生' || g, CASE WHEN g % 2 = 0 THEN '1' ELSE '2' END, :day - (g % 20), c.code, 'registered', '{}'
    FROM generate_series(1, :births) g
    JOIN bench_community c ON c.k = 1 + g % :n_communities
    RETURNING id, area_key, name, sex, birth_date, community_code, population_type
)
INSERT INTO person_version (person_id, area_key, valid_from, recorded_at, batch_id, changed, status, name, sex,
                            birth_date, community_code, population_type)
SELECT id, area_key, birth_date, :recorded_at, :batch, '["created"]', 'active', name, sex, birth_date,
       community_code, population_type
FROM born
"""


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";\n") if s.strip()]


def _batch(session: Session, source: str, day: date, n: int) -> int:
    return int(
        session.execute(
            text(
                "INSERT INTO batch (source, file_name, sha256, size_bytes, archive_path, as_of_date, seq, channel,"
                " state, rows_received, rows_accepted, rows_rejected, rows_review, step_seconds)"
                " VALUES (:s, :f, md5(:f) || md5(:f), 0, '/dev/null', :d, 1, 'cli', 'merged', :n, :n, 0, 0, '{}')"
                " RETURNING id"
            ),
            {"s": source, "f": f"{source}_{day:%Y%m%d}_{uuid.uuid4().hex[:6]}.csv", "d": day, "n": n},
        ).scalar_one()
    )


def generate_city(session: Session, *, persons: int, districts: int, streets: int, communities: int) -> None:
    """Areas, departments, feeds, one initial batch and the persons with their first versions."""
    for statement in _statements(AREAS_SQL):
        session.execute(
            text(statement), {"districts": districts, "streets": streets, "communities": communities}
        )
    for dept, dept_name, source, title in BENCH_BATCH_SOURCES:
        session.execute(
            text("INSERT INTO department (code, name) VALUES (:c, :n) ON CONFLICT DO NOTHING"),
            {"c": dept, "n": dept_name},
        )
        session.execute(
            text("INSERT INTO feed (source, department_code, title) VALUES (:s, :c, :t)"),
            {"s": source, "c": dept, "t": title},
        )
    session.execute(
        text(
            "CREATE TEMP TABLE bench_community ON COMMIT DROP AS"
            " SELECT row_number() OVER (ORDER BY code)::integer AS k, code FROM area WHERE level = 'community'"
        )
    )
    n_communities = session.scalar(text("SELECT count(*) FROM bench_community"))
    batch = _batch(session, "gaj_hj", date(2026, 1, 1), persons)
    for statement in _statements(PERSONS_SQL):
        session.execute(text(statement), {"persons": persons, "n_communities": n_communities, "batch": batch})
    session.execute(text("ANALYZE"))


def daily_batch(session: Session, *, records: int, day: date) -> int:
    """A batch of `records` versions: 90 % changes of existing persons, 10 % births."""
    session.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS bench_community ON COMMIT DROP AS"
            " SELECT row_number() OVER (ORDER BY code)::integer AS k, code FROM area WHERE level = 'community'"
        )
    )
    n_communities = session.scalar(text("SELECT count(*) FROM bench_community"))
    births = records // 10
    batch = _batch(session, "gaj_ld", day, records)
    params: dict[str, Any] = {
        "changes": records - births,
        "births": births,
        "batch": batch,
        "day": day,
        "recorded_at": f"{day} 23:00:00",
        "n_communities": n_communities,
    }
    for statement in _statements(CHANGES_SQL):
        session.execute(text(statement), params)
    return batch


def timed(fn: Callable[[], Any], repeat: int = 7) -> float:
    """Median milliseconds of fn over repeat runs, after one warm-up run."""
    fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def dashboard_queries(session: Session, area: AreaOut, day: date) -> dict[str, Callable[[], Any]]:
    """Each query the dashboard of an area runs, as a callable."""
    children = indicators.child_areas(session, area)
    month = day.replace(day=1)
    window = aggregates.read_window(session)
    assert window is not None
    epoch = window.epoch
    return {
        "pop cells": lambda: aggregates.cells_at(
            session, cube="pop", areas=[area.code], day=day, epoch=epoch
        ),
        "children by type": lambda: aggregates.cells_at(
            session, cube="type", areas=[c.code for c in children], day=day, epoch=epoch
        ),
        "origin": lambda: aggregates.cells_at(
            session, cube="origin", areas=[area.code], day=day, epoch=epoch
        ),
        "year earlier": lambda: aggregates.cells_at(
            session, cube="type", areas=[area.code], day=indicators.year_earlier(day), epoch=epoch
        ),
        "trend 12 months": lambda: aggregates.month_end_totals(
            session,
            area=area.code,
            first=indicators.month_back(month, 12),
            last=indicators.month_back(month, 1),
            epoch=epoch,
        ),
        "flows 12 months": lambda: aggregates.flows_between(
            session, area=area.code, first=indicators.month_back(month, 11), last=month
        ),
        "whole dashboard": lambda: indicators.build_dashboard(
            session=session, area_code=area.code, as_of=day
        ),
    }


TYPE_OF_LABEL = {
    label: code for code, label in POPULATION_TYPES.items()
}  # the truth file writes 户籍, 流动, 境外


def accuracy(*, session: Session, truth: Path, day: date) -> dict[str, Any]:
    """Published district figures against the synthetic city's truth (truth/persons.csv: each person's
    final state) on its last day: residents per district, published (perturbed) and as counted (before
    perturbation), and what the counted figures miss city-wide, by source of difference."""
    true: Counter[str] = Counter()
    true_types: Counter[tuple[str, str]] = Counter()
    with truth.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["status"] == "active":
                true[row["community_code"][:6]] += 1
                true_types[row["community_code"][:6], TYPE_OF_LABEL.get(row["population_type"], "")] += 1
    districts: list[dict[str, Any]] = []
    errors: list[float] = []
    counted_errors: list[float] = []
    counted_in_districts = 0
    for area in indicators.child_areas(session, indicators.CITY):
        counts = {
            c.key: c for c in indicators.published_counts(session=session, area_code=area.code, as_of=day)
        }
        total = counts[indicators.pop_key()]
        published = total.cell.value if isinstance(total.cell.value, int) else None
        errors.append(round(100 * abs((published or 0) - true[area.code]) / max(true[area.code], 1), 3))
        counted_errors.append(round(100 * abs(total.true - true[area.code]) / max(true[area.code], 1), 3))
        counted_in_districts += total.true
        districts.append(
            {
                "code": area.code,
                "truth": true[area.code],
                "counted": total.true,
                "published": published,
                "error_pct": round(
                    100 * abs((published or 0) - true[area.code]) / max(true[area.code], 1), 3
                ),
                "counted_error_pct": round(
                    100 * abs(total.true - true[area.code]) / max(true[area.code], 1), 3
                ),
                "types": {
                    t: {"truth": true_types[area.code, t], "counted": counts[indicators.pop_key(t)].true}
                    for t in POPULATION_TYPES
                },
            }
        )
    city = {c.key: c.true for c in indicators.published_counts(session=session, area_code="", as_of=day)}
    sources = {
        # Residents the registry holds with no known community count for the city only.
        "no_community": city[indicators.pop_key()] - counted_in_districts,
        "no_population_type": city.get(indicators.pop_key(""), 0),
        # More active persons than the truth has: records of one person not linked together.
        "persons_over_truth": city[indicators.pop_key()] - sum(true.values()),
    }
    return {
        "day": day.isoformat(),
        "districts": districts,
        "max_error_pct": max(errors),
        "max_counted_error_pct": max(counted_errors),
        "sources": sources,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--increment", type=int, default=50_000)
    parser.add_argument("--districts", type=int, default=10)
    parser.add_argument("--streets", type=int, default=10, help="streets per district")
    parser.add_argument("--communities", type=int, default=20, help="communities per street")
    parser.add_argument("--verify", action="store_true", help="also compare the city with a direct recount")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--database", help="reuse a database kept by an earlier run (--keep) instead of generating one"
    )
    args = parser.parse_args()

    name = args.database or f"popex_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url()).set(database=name) if args.database else create_database(name)
    engine = create_engine(url)
    try:
        if not args.database:
            with engine.begin() as conn:
                upgrade(conn)
            started = time.perf_counter()
            with Session(engine) as session:
                generate_city(
                    session,
                    persons=args.persons,
                    districts=args.districts,
                    streets=args.streets,
                    communities=args.communities,
                )
                session.commit()
            print(
                f"generated {args.persons:,} persons in {time.perf_counter() - started:.1f} s  (database {name})"
            )
        with Session(engine) as session:
            built = service.rebuild(session=session)
            session.commit()
            cells = session.scalar(text("SELECT count(*) FROM decision.cell"))
        print(f"rebuild: {built.seconds:.1f} s, {cells:,} cell rows, window {built.epoch} .. {built.horizon}")
        day = date.today()
        with Session(engine) as session:
            session.execute(text("ANALYZE"))
            city = indicators.CITY
            district = indicators.child_areas(session, city)[0]
            street = indicators.child_areas(session, district)[0]
            community = indicators.child_areas(session, street)[0]
            print(f"\ndashboard queries on {day} (median ms of 7 runs):")
            print(f"{'query':<20}" + "".join(f"{a.level:>12}" for a in (city, district, street, community)))
            results = {
                a.level: {k: timed(q) for k, q in dashboard_queries(session, a, day).items()}
                for a in (city, district, street, community)
            }
            for key in results["city"]:
                print(f"{key:<20}" + "".join(f"{results[level][key]:>12.1f}" for level in results))
            print(
                f"{'lineage (page)':<20}"
                + "".join(
                    f"{timed(partial(indicators.build_lineage, session=session, area_code=a.code, as_of=day, indicator='population'), repeat=1):>12.1f}"
                    for a in (city, district, street, community)
                )
            )
        with Session(engine) as session:
            started = time.perf_counter()
            batch = daily_batch(session, records=args.increment, day=day)
            session.commit()
            written = session.scalar(
                text("SELECT count(*) FROM person_version WHERE batch_id = :b"), {"b": batch}
            )
            print(f"\ndaily batch: {written:,} versions written in {time.perf_counter() - started:.1f} s")
        with Session(engine) as session:
            result = service.refresh_after_batch(session=session, batch_id=batch)
            session.commit()
            print(
                f"refresh_after_batch: {result.seconds:.2f} s ({result.how}, {result.persons:,} persons,"
                f" {result.rows_changed:,} aggregate rows changed)"
            )
            again = service.refresh_after_batch(session=session, batch_id=batch)
            session.commit()
            print(f"refresh again: {again.seconds * 1000:.1f} ms ({again.how})")
        if args.verify:
            with Session(engine) as session:
                for check in (day, day - timedelta(days=200)):
                    recount = {
                        k: v for k, v in service.recount(session=session, as_of=check).items() if k[1] == ""
                    }
                    stored = {
                        k: v
                        for k, v in service.aggregate_cells(session=session, as_of=check).items()
                        if k[1] == ""
                    }
                    print(
                        f"verify {check}: city cells {'agree' if recount == stored else 'DIFFER'} ({len(stored)} cells)"
                    )
    finally:
        engine.dispose()
        if not (args.keep or args.database):
            drop_database(name)


if __name__ == "__main__":
    main()
