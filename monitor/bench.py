"""Benchmark of the monitor's audit counts at volume: the hourly roll-up against counting audit_log.

    .venv/bin/python -m monitor.bench --records 7000000

Creates a dedicated database, writes N sharing audit records spread evenly over the 7 days before
2026-12-01 (set-wise, the chain trigger off: the records are not a chain, only counted), then times:
counting them as the monitor did before the roll-up (every record of the window), the roll-up in
its steps, and the dashboard's two counts (API usage over 24 h, audit volume over 7 days) through the
roll-up, on the hour and at 37 minutes past. Prints JSON; the database is dropped afterwards.
"""

import json
import os
import time
from datetime import datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from base.db import create_database, drop_database
from monitor import health

DATABASE = f"popex_bench_monitor_{os.getpid()}"  # a run's own: another run's is never dropped
END = datetime(2026, 12, 1)
LOAD = """
INSERT INTO audit_log (at, actor, action, object_type, object_id, detail, prev_hash, hash)
SELECT :start + (g * (7 * 86400.0 / :n)) * interval '1 second', 'c' || (g % 7), 'sharing.lookup', 'person',
       'P' || g,
       jsonb_build_object('client', 'c' || (g % 7),
                          'outcome', CASE WHEN g % 20 = 0 THEN 'not_found' WHEN g % 97 = 0 THEN 'refused' ELSE 'ok' END,
                          'person_nos', jsonb_build_array('P' || g)),
       '', ''
FROM generate_series(1, :n) AS g
"""
# How the monitor counted before the roll-up (revision 0402): every record of the window.
COUNT_ALL_USAGE = """
SELECT coalesce(detail ->> 'client', actor), count(*),
       count(*) FILTER (WHERE detail ->> 'outcome' = 'refused'),
       count(*) FILTER (WHERE detail ->> 'outcome' = 'not_found')
FROM audit_log WHERE action LIKE 'sharing.%' AND at > :start AND at <= :end GROUP BY 1
"""
COUNT_ALL_VOLUME = """
SELECT CAST(at AS date), split_part(action, '.', 1), count(*)
FROM audit_log WHERE at > :start AND at <= :end GROUP BY 1, 2
"""


def _seconds(f: object, *args: object, **kwargs: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = f(*args, **kwargs)  # type: ignore[operator]
    return round(time.perf_counter() - started, 3), result


def run_benchmark(records: int) -> dict[str, object]:
    """Load, count both ways, roll up; the figures as a dict."""
    from registry.migrate import upgrade

    url = create_database(DATABASE)
    engine = create_engine(url)
    figures: dict[str, object] = {"records": records}
    try:
        with engine.begin() as conn:
            upgrade(conn)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            conn.execute(text(LOAD), {"start": END - timedelta(days=7), "n": records})
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE audit_log"))
        day = {"start": END - timedelta(days=1), "end": END}
        week = {"start": END - timedelta(days=7), "end": END}
        with Session(engine) as session:
            figures["count_all_usage_24h_s"] = _seconds(session.execute, text(COUNT_ALL_USAGE), day)[0]
            figures["count_all_volume_7d_s"] = _seconds(session.execute, text(COUNT_ALL_VOLUME), week)[0]
            steps = []
            while True:
                seconds, added = _seconds(health.roll_up, session=session)
                session.commit()
                if not added:
                    break
                steps.append({"records": added, "seconds": seconds})
            figures["roll_up_steps"] = steps
            for label, end in (("on_the_hour", END), ("at_37_past", END + timedelta(minutes=37))):
                usage_s, usage = _seconds(
                    health.api_usage, session=session, start=end - timedelta(days=1), end=end
                )
                volume_s, volume = _seconds(
                    health.audit_volume, session=session, start=end - timedelta(days=7), end=end
                )
                figures[label] = {
                    "api_usage_24h_s": usage_s,
                    "api_usage_requests": sum(u.requests for u in usage),  # type: ignore[attr-defined]
                    "audit_volume_7d_s": volume_s,
                    "audit_volume_records": sum(v.records for v in volume),  # type: ignore[attr-defined]
                }
    finally:
        engine.dispose()
        drop_database(DATABASE)
    return figures


def main(records: Annotated[int, typer.Option(help="审计记录条数（7 天）")] = 7_000_000) -> None:
    """Run the benchmark and print its figures as JSON."""
    print(json.dumps(run_benchmark(records), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    typer.run(main)
