"""Ten years of history and a day's large batch (issue 19 item 3): what the partitions of the past cost.

    python -m popex.history_bench --persons 100000 --years 8 --rounds 2

Loads the synthetic city as `popex.bench` does (into a database of this run's own), copies it, and gives
the copy `years` more yearly partitions of person_version, each holding the city's versions again with
`recorded_at` and `valid_from` moved back one more year (ids of their own). Then, on a fresh copy of each
in turns, ingests the social insurance first extract with every row's phone number changed (the gate
quarantines such a jump; it is released, as an operator would) and times the release to the receipt
(resolve, merge, publish, statistics, receipt). Before that, in turns on the city and its copy, it times
what a planner reads: the whole dashboard and the lineage of the city, a district, a street and a
community (medians in ms). Prints the figures as JSON. Every database it made is dropped at the end,
unless --keep (the city and its copy stay, for EXPLAIN).
"""

import argparse
import csv
import json
import os
import shutil
import time
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from popex.bench import BENCH_DIR, outbox_dir, run

ADD_YEARS_SQL = """
CREATE TEMP TABLE past AS SELECT * FROM person_version;
DO $$
DECLARE k int;
BEGIN
  FOR k IN 1..{years} LOOP
    EXECUTE format('CREATE TABLE person_version_y%s PARTITION OF person_version FOR VALUES FROM (%L) TO (%L)',
                   {year} - k, make_date({year} - k, 1, 1), make_date({year} + 1 - k, 1, 1));
    UPDATE past SET recorded_at = recorded_at - interval '1 year', valid_from = valid_from - interval '1 year',
                    id = nextval(pg_get_serial_sequence('person_version', 'id'));
    INSERT INTO person_version SELECT * FROM past;
  END LOOP;
END $$;
"""

EXTRACT_DAY = "20261108"  # the changed extract's date, a week after the city's first day


def changed_extract(city: Path, out: Path, day: str) -> Path:
    """The social insurance first extract, every phone number's last digit changed, dated `day`."""
    source = sorted((city / "landing").glob("rsj_cb_*.csv"))[0]  # the first extract
    target = out / f"rsj_cb_{day}.csv"
    with (
        source.open(encoding="utf-8-sig", newline="") as f,
        target.open("w", encoding="utf-8-sig", newline="") as g,
    ):
        rows, writer = csv.reader(f), csv.writer(g)
        writer.writerow(next(rows))
        for row in rows:
            if row[6]:
                row[6] = row[6][:-1] + str((int(row[6][-1]) + 1) % 10)
            row[7] = f"{day[:4]}-{day[4:6]}-{day[6:]}"
            writer.writerow(row)
    return target


def timed_release(url: str, extract: Path) -> dict[str, Any]:
    """Ingest the extract into the database at `url`, release its quarantine, time the rest."""
    from exchange.flows import ingest_file, process_batch
    from exchange.gate import release_batch

    engine = create_engine(url, poolclass=NullPool)
    factory = sessionmaker(engine, expire_on_commit=False)
    batch_id = ingest_file(factory, extract).batch_id
    started = time.perf_counter()
    with factory.begin() as session:
        release_batch(session=session, batch_id=batch_id, actor="bench", note="benchmark")
    state = process_batch(factory, batch_id)
    seconds = time.perf_counter() - started
    with factory() as session:
        steps = session.scalar(text("SELECT step_seconds FROM batch WHERE id = :b"), {"b": batch_id})
    engine.dispose()
    return {"state": state, "seconds": round(seconds, 2), "steps": steps}


def timed_reads(url: str, as_of: date) -> dict[str, float]:
    """Median milliseconds of what a planner reads (decision.bench.timed: a warm-up, then 5 runs): the
    whole dashboard and the lineage of the city, the first district, its first street and community."""
    from decision import indicators
    from decision.bench import timed

    engine = create_engine(url, poolclass=NullPool)
    figures: dict[str, float] = {}
    with sessionmaker(engine)() as session:
        community = session.scalar(text("SELECT min(code) FROM area WHERE level = 'community'"))
        for name, code in (
            ("city", ""),
            ("district", community[:6]),
            ("street", community[:9]),
            ("community", community),
        ):
            dashboard = partial(indicators.build_dashboard, session=session, area_code=code, as_of=as_of)
            lineage = partial(
                indicators.build_lineage, session=session, area_code=code, as_of=as_of, indicator="population"
            )
            figures[f"dashboard {name}"] = round(timed(dashboard, 5), 1)
            figures[f"lineage {name}"] = round(timed(lineage, 5), 1)
            session.rollback()
    engine.dispose()
    return figures


def main() -> None:
    """Command line entry."""
    from base.db import database_url, drop_database

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the city and its copy with the years added")
    args = parser.parse_args()
    base = f"popex_bench_history_{os.getpid()}"
    made = [base, f"{base}_past", f"{base}_run"]
    server = make_url(database_url())
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def url_of(name: str) -> str:
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        start = date(2026, 11, 1)
        run(persons=args.persons, days=2, seed=1, start=start, database=base)
        city = BENCH_DIR / f"city_{args.persons}_2_1"
        extract = changed_extract(city, BENCH_DIR, EXTRACT_DAY)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {base}_past TEMPLATE {base}"))
        past = create_engine(url_of(f"{base}_past"), poolclass=NullPool)
        with past.begin() as conn:
            year = conn.scalar(text("SELECT extract(year FROM now())::int"))
            conn.execute(text(ADD_YEARS_SQL.format(years=args.years, year=year)))
        with past.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE person_version"))
        past.dispose()
        figures: dict[str, Any] = {
            "persons": args.persons,
            "years_added": args.years,
            "reads": [],
            "runs": [],
        }
        for round_no in range(args.rounds):  # the reads first: the templates are not copied meanwhile
            for name in (base, f"{base}_past"):
                partitions = "this year's" if name == base else f"{args.years} more years"
                reads = {
                    "round": round_no + 1,
                    "partitions": partitions,
                    **timed_reads(url_of(name), start + timedelta(days=2)),
                }
                figures["reads"].append(reads)
                print(json.dumps(reads, ensure_ascii=False), flush=True)
        for round_no in range(args.rounds):
            for template in (base, f"{base}_past"):
                drop_database(f"{base}_run")
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {base}_run TEMPLATE {template}"))
                result = timed_release(url_of(f"{base}_run"), extract)
                partitions = "this year's" if template == base else f"{args.years} more years"
                figures["runs"].append({"round": round_no + 1, "partitions": partitions, **result})
                print(json.dumps(figures["runs"][-1], ensure_ascii=False), flush=True)
        print(json.dumps(figures, indent=2, ensure_ascii=False))
    finally:
        admin.dispose()
        for name in made[2:] if args.keep else made:
            drop_database(name)
        if args.keep:
            print(f"kept: {base} and {base}_past")
        shutil.rmtree(outbox_dir(), ignore_errors=True)  # the receipts of this run's batches
        # The changed extract, made again by each run.
        (BENCH_DIR / f"rsj_cb_{EXTRACT_DAY}.csv").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
