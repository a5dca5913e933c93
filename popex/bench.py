"""`make bench`: a synthetic city through the exchange path end to end, timed, with link quality.

    python -m popex.bench --persons 1000000 --days 10

Generates (or reuses) the city under var/bench/, loads it into a database of this run's own
(`popex_bench_exchange_<pid>`, dropped at the end unless --keep: two runs at once do not touch each
other's) on the configured server, ingests the initial snapshots and then each daily increment with the same code
as `popex ingest` (receive → parse → gate → resolve → merge → publish), and prints records/s per
phase and per step, the peak memory of this process and of it with its parse workers (the city is
generated in a process of its own, which does not count), pairwise precision / recall / F1 of person
linking against the ground truth, the share of rows sent to review, and the decision statistics'
residents per district on the last day against the truth (published and as counted, with the
sources of the difference). Figures also go to var/bench/<city>/results.json.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from base.settings import ROOT

BENCH_DIR = ROOT / "var" / "bench"


class PeakMemory:
    """Samples resident memory every 50 ms: `peak`, this process's, and `tree_peak`, its own and its
    children's summed (the parse workers; pages they share with it counted twice), in bytes."""

    def __init__(self) -> None:
        self.peak = self.tree_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            own = me.memory_info().rss
            children = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # ended between the listing and the reading
                    children += child.memory_info().rss
            self.peak, self.tree_peak = max(self.peak, own), max(self.tree_peak, own + children)
            time.sleep(0.05)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def outbox_dir() -> Path:
    """This run's receipts (not the repository's var/outbox, nor another run's)."""
    return BENCH_DIR / f"outbox_{os.getpid()}"


def run(*, persons: int, days: int, seed: int, start: date, database: str) -> dict[str, Any]:
    """The benchmark; returns the figures."""
    from base.db import create_database
    from decision.bench import accuracy as decision_accuracy
    from exchange.flows import Ingested, ingest_files, landing_files, process_batch
    from exchange.gate import release_batch
    from exchange.readers import parse_file_name
    from registry.areas import load_areas
    from registry.evaluate import evaluate_links, write_errors
    from registry.migrate import upgrade
    from synth import generate_city

    city = BENCH_DIR / f"city_{persons}_{days}_{seed}"
    figures: dict[str, Any] = {"persons": persons, "days": days, "seed": seed, "database": database}
    if not (city / "truth" / "rows.csv").exists():
        started = time.perf_counter()
        # In a process of its own: generating a big city takes gigabytes this process would keep (the
        # allocator does not give them back), and they would count as the platform's peak below.
        maker = multiprocessing.get_context("spawn").Process(
            target=generate_city,
            args=(city,),
            kwargs={"persons": persons, "days": days, "seed": seed, "start": start},
        )
        maker.start()
        maker.join()
        if maker.exitcode != 0:
            raise RuntimeError(f"generating the city failed (exit code {maker.exitcode})")
        figures["synth_seconds"] = round(time.perf_counter() - started, 1)
    url = create_database(database)
    os.environ["POPEX_ARCHIVE_DIR"] = str(BENCH_DIR / "archive")  # by hash: shared safely
    shutil.rmtree(outbox_dir(), ignore_errors=True)
    os.environ["POPEX_OUTBOX_DIR"] = str(outbox_dir())
    engine = create_engine(url, pool_size=2)
    with engine.begin() as conn:
        upgrade(conn)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        load_areas(session=session, path=city / "areas.csv")
    phases: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    days_files: dict[date, list[Path]] = defaultdict(list)  # each day's files, as the daily run takes them
    for path in landing_files(city / "landing"):
        days_files[parse_file_name(path.name).as_of].append(path)
    with PeakMemory() as memory:
        for day, paths in days_files.items():
            phase = "initial" if day == start else "daily"
            started = time.perf_counter()
            outcomes = ingest_files(factory, paths)
            for result in outcomes:
                if not isinstance(result, Ingested):
                    raise result  # the synthetic city's files are all well-formed
                if result.state == "quarantined":
                    # An operator would look at the gate's figures and release it; the benchmark does so at
                    # once, counts it, and lets the batch through like every other.
                    with factory.begin() as session:
                        release_batch(
                            session=session, batch_id=result.batch_id, actor="bench", note="benchmark"
                        )
                    process_batch(factory, result.batch_id)
                    figures["released_quarantines"] = figures.get("released_quarantines", 0) + 1
            elapsed = time.perf_counter() - started
            phases[phase]["files"] += len(paths)
            phases[phase]["seconds"] += elapsed
            for result in outcomes:
                assert isinstance(result, Ingested)
                with factory() as session:
                    rows, steps, state = session.execute(
                        text("SELECT rows_received, step_seconds, state FROM batch WHERE id = :b"),
                        {"b": result.batch_id},
                    ).one()
                print(f"{result.file_name:28} {rows:>9} rows  {state}", flush=True)
                phases[phase]["rows"] += rows
                for step, seconds in (steps or {}).items():
                    phases[phase][f"step_{step}"] += seconds
            print(f"{day}: {len(paths)} files in {elapsed:.2f} s", flush=True)
    with factory() as session:
        quality = evaluate_links(session=session, truth_rows=city / "truth" / "rows.csv")
        write_errors(session=session, out=city / "link_errors.csv")
        session.commit()
    with factory() as session:
        figures["decision_accuracy"] = decision_accuracy(
            session=session, truth=city / "truth" / "persons.csv", day=start + timedelta(days=days)
        )
    engine.dispose()
    total_rows = sum(p["rows"] for p in phases.values())
    total_seconds = sum(p["seconds"] for p in phases.values())
    figures.update(
        {
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
            "phases": {
                name: {k: round(v, 2) for k, v in p.items()}
                | {"records_per_s": round(p["rows"] / p["seconds"])}
                for name, p in phases.items()
            },
            "records_per_s": round(total_rows / total_seconds),
            "peak_rss_mb": round(memory.peak / 2**20),
            "peak_tree_rss_mb": round(memory.tree_peak / 2**20),
            "precision": round(quality.precision, 5),
            "recall": round(quality.recall, 5),
            "f1": round(quality.f1, 5),
            "review_share": round(quality.review_rows / max(quality.rows, 1), 5),
            "quality": quality.__dict__,
        }
    )
    (city / "results.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    return figures


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep this run's database and receipts")
    args = parser.parse_args()
    database = f"popex_bench_exchange_{os.getpid()}"
    try:
        figures = run(
            persons=args.persons, days=args.days, seed=args.seed, start=date(2026, 11, 1), database=database
        )
    finally:
        if not args.keep:
            from base.db import drop_database

            drop_database(database)
            shutil.rmtree(outbox_dir(), ignore_errors=True)
    figures["kept"] = args.keep
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
