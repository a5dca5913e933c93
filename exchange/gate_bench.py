"""The batch gate on a synthetic city: false alarms on clean files and detection of broken ones, for the
gate as it is (judged by evidence) and the gate before it (fixed shares).

    .venv/bin/python -m synth /tmp/city --persons 100000 --days 10 --seed 1
    .venv/bin/python -m exchange.gate_bench /tmp/city

Loads the city into a fresh database `popex_bench_gate_<pid>` (this run's own) on the configured server (dropped afterwards
unless --keep-database), then receives, parses and gates every landing file in delivery order with the
code of `popex ingest`; a quarantined batch is released at once, as an operator would, and goes on.
The later steps are left out (--all-steps runs them): a verdict depends only on the batch's staged
rows and on the states and gate results of the source's earlier batches, and a gated batch counts as
accepted as much as a completed one. Each file gets two verdicts from the same Great Expectations
counts: the gate's, and the fixed-share rule it replaced (commit 96c294b: a share past the spec's
fails unless fewer than 3 rows are bad; the volume check is unchanged). The city's files are clean:
every quarantine of one is a false alarm.

Before each daily file of at least --min-rows rows is gated, broken copies of it are received, parsed
and gated in a transaction that is rolled back, so each is judged on the history the gate had that
day: 20 % of its ID numbers cut short, 20 % of its names blank, cut to its first tenth of rows (a
transfer that stopped), and an unbroken copy (the control: written as the broken ones are, as UTF-8
CSV). A copy rejected by the parser counts as stopped for both gates. Prints the counts, by file size;
the figures go to BENCHMARKS.md.
"""

import argparse
import csv
import io
import json
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from base.db import SessionFactory, throwaway_database, transaction
from base.settings import storage_settings
from exchange import flows, gate, service
from exchange.readers import parse_file_name, read_rows
from registry.models import Batch
from schemas.canonical import ColumnKind
from schemas.feed_spec import FeedSpec, get_feed_spec

DATABASE = f"popex_bench_gate_{os.getpid()}"  # a run's own: another run's is never dropped
FIXED_SLACK_ROWS = 3  # the fixed-share gate let a batch pass with fewer bad rows than this
BROKEN_SHARE = 0.2
TRUNCATED_SHARE = 0.1
LARGE_ROWS = 100  # files are counted in two sizes: fewer rows than this, and at least this many
Rows = list[dict[str, str | None]]


def fixed_share_failures(result: dict[str, Any], spec: FeedSpec) -> list[str]:
    """The checks the gate before evidence failed on the same counts: a filled or conformance share
    below min(the spec's, 1 - 3 / rows of the batch) (Great Expectations' `mostly`, as it was set); the
    row count as now."""
    rows = max(int(result.get("rows") or 0), 1)
    slack = 1 - FIXED_SLACK_ROWS / rows
    failed = []
    for check in result.get("checks", []):
        key = f"{check['expectation']}:{check['column']}"
        if check["expectation"] == gate.ROW_COUNT:
            if not check["success"]:
                failed.append(key)
            continue
        if check["expectation"] == gate.NOT_NULL:
            spec_mostly = 1 - spec.gate.max_null_rate
        else:
            spec_mostly = spec.gate.min_conformance[ColumnKind(check["column"])]
        examined = int(check["rows"])
        if examined and (examined - check["unexpected_count"]) / examined < max(0.0, min(spec_mostly, slack)):
            failed.append(key)
    return failed


def _id_column(spec: FeedSpec) -> str:
    """The column of the person's own ID number (field id_no), else the first column of ID kind."""
    own = [c.name for c in spec.columns if c.field == "id_no"]
    return own[0] if own else next(c.name for c in spec.columns if c.kind == ColumnKind.ID_NO)


def _cut_ids(spec: FeedSpec, rows: Rows, rng: random.Random) -> Rows:
    """BROKEN_SHARE of the rows with an ID number get it cut short by two characters."""
    return _spoil(rows, _id_column(spec), rng, lambda v: v[:-2])


def _blank_names(spec: FeedSpec, rows: Rows, rng: random.Random) -> Rows:
    """BROKEN_SHARE of the rows lose the name in the first required name column."""
    column = next(c.name for c in spec.columns if c.kind == ColumnKind.NAME and c.required)
    return _spoil(rows, column, rng, lambda v: None)


def _spoil(rows: Rows, column: str, rng: random.Random, change: Callable[[str], str | None]) -> Rows:
    """A copy of the rows with `change` applied to BROKEN_SHARE of the filled cells of `column`."""
    filled = [i for i, row in enumerate(rows) if row.get(column)]
    chosen = set(rng.sample(filled, round(len(filled) * BROKEN_SHARE)))
    return [{**row, column: change(row[column] or "")} if i in chosen else row for i, row in enumerate(rows)]


BREAKS: dict[str, Callable[[FeedSpec, Rows, random.Random], Rows]] = {
    "control": lambda spec, rows, rng: rows,
    "ids_cut": _cut_ids,
    "names_blank": _blank_names,
    "truncated": lambda spec, rows, rng: rows[: max(1, int(len(rows) * TRUNCATED_SHARE))],
}


def _write_csv(path: Path, spec: FeedSpec, rows: Rows) -> Path:
    """The rows as a UTF-8 CSV with the spec's header."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(spec.column_names)
    writer.writerows([[row.get(h) or "" for h in spec.column_names] for row in rows])
    path.write_bytes(out.getvalue().encode("utf-8"))
    return path


@contextmanager
def rolled_back(connection: Connection) -> Iterator[SessionFactory]:
    """Sessions whose commits are savepoints of one transaction, rolled back at the end."""
    outer = connection.begin()
    try:
        yield lambda: Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
    finally:
        outer.rollback()


def gate_broken(
    connection: Connection, path: Path, spec: FeedSpec, rows: Rows, folder: Path, seed: int
) -> dict[str, Any]:
    """Each break of one file received, parsed and gated in a rolled-back transaction: the state it
    reached, whether each gate stopped it, and the failed checks' sentences; None where the copy is byte
    for byte a file already received."""
    name = parse_file_name(path.name)
    verdicts: dict[str, Any] = {}
    for kind, breaking in BREAKS.items():
        broken = _write_csv(
            folder / f"{name.source}_{name.as_of:%Y%m%d}_9.csv",
            spec,
            breaking(spec, rows, random.Random(seed)),
        )
        with rolled_back(connection) as factory:
            with transaction(factory) as session:
                received = service.receive_file(session=session, path=broken)
            if received.duplicate:
                verdicts[kind] = None
                continue
            flows.run_step(factory, "parse", received.batch.id)
            flows.run_step(factory, "gate", received.batch.id)
            with factory() as session:
                batch = session.get_one(Batch, received.batch.id)
                result = batch.gate_result or {}
                verdicts[kind] = {
                    "state": batch.state,
                    "evidence": batch.state in ("quarantined", "rejected"),
                    "fixed": batch.state == "rejected" or bool(fixed_share_failures(result, spec)),
                    "volume_checked": any(
                        c["expectation"] == gate.ROW_COUNT for c in result.get("checks", [])
                    ),
                    "failed": [c["message"] for c in result.get("failed", [])]
                    or ([batch.error] if batch.error else []),
                }
    return verdicts


@contextmanager
def bench_database(name: str, *, keep: bool) -> Iterator[str]:
    """A fresh, migrated database `name` on the configured server (its URL), dropped afterwards unless
    `keep`."""
    from registry.migrate import upgrade

    with throwaway_database(name, keep=keep) as url:
        migrated = create_engine(url)
        with migrated.begin() as conn:
            upgrade(conn)
        migrated.dispose()
        yield url


def ingest_clean(factory: SessionFactory, path: Path, spec: FeedSpec, *, all_steps: bool) -> dict[str, Any]:
    """One landing file received, parsed and gated (with `all_steps`, through every step as `popex
    ingest` runs it), a quarantine released at once; its figures."""
    started = time.perf_counter()
    if all_steps:
        ingested = flows.ingest_file(factory, path)
        batch_id, duplicate, state = ingested.batch_id, ingested.duplicate, ingested.state
    else:
        with transaction(factory) as session:
            received = service.receive_file(session=session, path=path, once_per_name=True)
            batch_id, duplicate = received.batch.id, received.duplicate
        flows.run_step(factory, "parse", batch_id)
        state = flows.run_step(factory, "gate", batch_id)
    with factory() as session:
        batch = session.get_one(Batch, batch_id)
        gated = batch.gate_result or {}
        seconds = (batch.step_seconds or {}).get("gate", 0.0)
    if state == "quarantined":
        with transaction(factory) as session:
            gate.release_batch(session=session, batch_id=batch_id, actor="bench", note="benchmark")
        if all_steps:
            flows.process_batch(factory, batch_id)
    return {
        "file": path.name,
        "rows": batch.rows_received,
        "duplicate": duplicate,
        "evidence": state == "quarantined",
        "fixed": fixed_share_failures(gated, spec),
        "failed": [c["message"] for c in gated.get("failed", [])],
        "gate_seconds": seconds,
        "seconds": time.perf_counter() - started,
    }


def _size(rows: int) -> str:
    return f"<{LARGE_ROWS}" if rows < LARGE_ROWS else f">={LARGE_ROWS}"


def _tally(
    detected: Counter[str], examples: dict[str, list[str]], rows: int, verdicts: dict[str, Any]
) -> None:
    """Count one file's broken copies by break and file size; keep the first stopped copy's sentences."""
    for kind, verdict in verdicts.items():
        band = f"{kind}:{_size(rows)}"
        detected[f"{band}:tried"] += verdict is not None
        if verdict is None:
            continue
        detected[f"{band}:evidence"] += verdict["evidence"]
        detected[f"{band}:fixed"] += verdict["fixed"]
        detected[f"{band}:volume_checked"] += verdict["volume_checked"]
        detected[f"{band}:rejected"] += verdict["state"] == "rejected"
        if verdict["evidence"] and kind not in examples:
            examples[kind] = verdict["failed"]


def _said(verdicts: dict[str, Any]) -> str:
    """Each copy's state, and the fixed-share gate's verdict where it differs."""
    said = []
    for kind, v in verdicts.items():
        if v is not None:
            fixed = "" if v["fixed"] == v["evidence"] else f" (fixed: {'隔离' if v['fixed'] else '通过'})"
            said.append(f"{kind} {v['state']}{fixed}")
    return "  ".join(said)


def gate_city(
    engine: Engine, city: Path, *, min_rows: int, seed: int, all_steps: bool
) -> tuple[list[dict[str, Any]], Counter[str], dict[str, list[str]]]:
    """Every landing file of the city gated in delivery order, broken copies of the daily ones first:
    each file's figures, the broken copies' counts, and the sentences of the first stopped copy of
    each break."""
    from registry.areas import load_areas

    files: list[dict[str, Any]] = []
    detected: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # archived copies and receipts stay out of the repository's var/
        os.environ["POPEX_ARCHIVE_DIR"] = str(Path(tmp) / "archive")
        os.environ["POPEX_OUTBOX_DIR"] = str(Path(tmp) / "outbox")
        storage_settings.cache_clear()
        factory = sessionmaker(engine, expire_on_commit=False)
        with transaction(factory) as session:
            load_areas(session=session, path=city / "areas.csv")
        landing = flows.landing_files(city / "landing")
        first_day = min(parse_file_name(p.name).as_of for p in landing)
        for path in landing:
            spec = get_feed_spec(parse_file_name(path.name).source)
            daily = parse_file_name(path.name).as_of > first_day
            rows: Rows = [row.values for row in read_rows(path, spec)] if daily else []
            if len(rows) >= min_rows:
                with engine.connect() as connection:
                    verdicts = gate_broken(connection, path, spec, rows, Path(tmp), seed)
                _tally(detected, examples, len(rows), verdicts)
                print(f"  broken {path.name}: {_said(verdicts)}", flush=True)
            file = ingest_clean(factory, path, spec, all_steps=all_steps) | {"daily": daily}
            files.append(file)
            print(
                f"{path.name:24} {file['rows']:>7} rows  gate {'隔离' if file['evidence'] else '通过'}"
                f"  fixed {'隔离' if file['fixed'] else '通过'}  {'；'.join(file['failed'] + file['fixed'])}",
                flush=True,
            )
    return files, detected, examples


def run(city: Path, *, min_rows: int, seed: int, all_steps: bool, keep: bool) -> dict[str, Any]:
    """The benchmark; returns the figures."""
    started = time.perf_counter()
    with bench_database(DATABASE, keep=keep) as url:
        engine = create_engine(url)
        try:
            files, detected, examples = gate_city(
                engine, city, min_rows=min_rows, seed=seed, all_steps=all_steps
            )
        finally:
            engine.dispose()
    files = [f for f in files if not f["duplicate"]]
    figures: dict[str, Any] = {"city": str(city), "min_rows": min_rows, "seed": seed, "all_steps": all_steps}
    for part, chosen in (
        ("initial", [f for f in files if not f["daily"]]),
        ("daily", [f for f in files if f["daily"]]),
    ):
        figures[part] = {
            "files": len(chosen),
            "rows": sum(f["rows"] for f in chosen),
            "by_size": dict(sorted(Counter(_size(f["rows"]) for f in chosen).items())),
            "quarantined_evidence": sum(f["evidence"] for f in chosen),
            "quarantined_fixed": sum(bool(f["fixed"]) for f in chosen),
            "gate_seconds": round(sum(f["gate_seconds"] for f in chosen), 2),
        }
    figures["false_alarms"] = {f["file"]: f["failed"] for f in files if f["evidence"]}
    figures["false_alarms_fixed"] = {f["file"]: f["fixed"] for f in files if f["fixed"]}
    figures["broken"] = dict(sorted(detected.items()))
    figures["examples"] = examples
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return figures


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("city", type=Path, help="a city written by `python -m synth`")
    parser.add_argument("--min-rows", type=int, default=20, help="daily files at least this long are broken")
    parser.add_argument("--seed", type=int, default=1, help="which rows the breaks spoil")
    parser.add_argument(
        "--keep-database", action="store_true", help=f"leave {DATABASE} for a look afterwards"
    )
    parser.add_argument(
        "--all-steps",
        action="store_true",
        help="every batch to completed, as popex ingest (same verdicts, slower)",
    )
    args = parser.parse_args()
    figures = run(
        args.city, min_rows=args.min_rows, seed=args.seed, all_steps=args.all_steps, keep=args.keep_database
    )
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
