"""generate_city: the synthetic city's reference data, daily landing files and ground truth."""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from synth import reference as ref
from synth.areas import build_areas, write_areas
from synth.dates import day_of, iso
from synth.population import World, build_world
from synth.streams import stream
from synth.timeline import Timeline
from synth.writers import Landing, person_ids, write_csv

STATUSES = ("active", "dead", "left")
_FILE = re.compile(r"(?P<source>.+)_\d{8}(?:_\d+)?\.\w+")


@dataclass(frozen=True)
class CitySummary:
    """What generate_city wrote: rows per landing file, duplicates, people and areas."""

    out: Path
    files: dict[str, int]
    duplicates: list[str]
    persons: int
    statuses: dict[str, int]
    areas: dict[str, int]

    @property
    def rows(self) -> int:
        """Data rows in all landing files."""
        return sum(self.files.values())

    def by_source(self) -> dict[str, int]:
        """Data rows per source."""
        out: Counter[str] = Counter()
        for name, rows in self.files.items():
            match = _FILE.fullmatch(name)
            out[match["source"] if match else name] += rows
        return dict(out)


def write_persons(path: Path, w: World) -> None:
    """truth/persons.csv: each person's true final state."""
    n = w.n
    columns = (
        person_ids(list(range(n))),
        w.view("doc_no").tolist(),
        w.view("name").tolist(),
        w.view("sex").astype(str).tolist(),
        iso(w.view("birth")),
        np.array(STATUSES)[w.view("status")].tolist(),
        np.array(ref.POP_TYPES)[w.view("ptype")].tolist(),
        w.areas.community_codes[w.view("community")].tolist(),
        iso(w.view("death")),
    )
    header = ("person", "id_no", "name", "sex", "birth_date", "status", "population_type", "community_code")
    write_csv(path, (*header, "death_date"), zip(*columns, strict=True), "utf-8")


def generate_city(
    out: Path,
    *,
    persons: int,
    days: int,
    seed: int,
    start: date = date(2026, 11, 1),
    progress: Callable[[str, int, int], None] | None = None,
) -> CitySummary:
    """Write areas.csv, landing/ (day 0 snapshots, then daily increments) and truth/ under out."""
    if persons < 1 or days < 0:
        raise ValueError("persons must be at least 1 and days not negative")
    for sub in ("landing", "truth"):
        if (out / sub).exists() and any((out / sub).iterdir()):
            raise FileExistsError(f"{out / sub} is not empty")
    report = progress or (lambda stage, done, total: None)
    out.mkdir(parents=True, exist_ok=True)
    areas = build_areas(stream(seed, "areas"), persons)
    write_areas(out / "areas.csv", areas)
    report("population", 0, persons)
    w = build_world(seed, areas, persons, day_of(start))
    report("population", persons, persons)
    timeline = Timeline(w, seed, day_of(start), days)
    with Landing(out, seed) as landing:
        snapshot = timeline.snapshot()
        for i, table in enumerate(snapshot.values(), start=1):
            landing.deliver(table, 0, start)
            report("snapshot", i, len(snapshot))
        for day in range(1, days + 1):
            for table in timeline.run(day).values():
                landing.deliver(table, day, start + timedelta(days=day))
            report("days", day, days)
    write_persons(out / "truth" / "persons.csv", w)
    report("truth", 1, 1)
    return CitySummary(
        out=out,
        files=landing.files,
        duplicates=landing.copied,
        persons=w.n,
        statuses={s: int(np.count_nonzero(w.view("status") == i)) for i, s in enumerate(STATUSES)},
        areas=dict(Counter(level for _, _, level, _ in areas.rows)),
    )
