"""python -m synth OUT --persons N --days D --seed S: generate a city and print its summary."""

import argparse
import sys
from datetime import date
from pathlib import Path

from synth import generate_city


def _progress(stage: str, done: int, total: int) -> None:
    """Progress on stderr, one line per step."""
    print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, generate, print rows per source and file."""
    parser = argparse.ArgumentParser(prog="python -m synth", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--persons", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1))
    args = parser.parse_args(argv)
    summary = generate_city(
        args.out, persons=args.persons, days=args.days, seed=args.seed, start=args.start, progress=_progress
    )
    print(f"{summary.out}: {summary.persons} persons ({summary.statuses}), areas {summary.areas}")
    for source, rows in sorted(summary.by_source().items()):
        print(f"  {source:8} {rows:>10,} rows")
    print(
        f"  {'total':8} {summary.rows:>10,} rows in {len(summary.files)} files, {len(summary.duplicates)} duplicated"
    )
    for name, rows in summary.files.items():
        print(f"    {name:32} {rows:>10,}")


if __name__ == "__main__":
    main()
