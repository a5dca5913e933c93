"""Probabilistic record linkage, Fellegi–Sunter style: the identity rules as data, one small engine.

This module holds every rule that decides who is who: the blocking rules (which persons a record is
compared with), the comparisons (levels with their m and u), the bands on the score and the runner-up
margin. registry.resolve only runs them against the database.

Each comparison is a list of levels tried in order (the first that holds decides), each with an
m-probability (how often the level holds for the same person) and a u-probability (how often it holds
for two different people). A pair's score is log2 of the prior odds plus the sum of log2(m/u) of the
levels that fired; a blank on either side contributes nothing. Every link stores the levels and their
weights, so it can be explained. m is re-estimated per batch from the links the ID number decided;
u for exact name agreement comes from the name's own frequency among the persons (a common name
agreeing is weaker evidence than a rare one).
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from registry.normalise.names import name_key

Pair = Mapping[str, Any]  # r_* fields of the record, p_* fields of the candidate person
Test = Callable[[Pair], bool]


@dataclass(frozen=True)
class Level:
    """One agreement level of a comparison."""

    name: str
    test: Test
    m: float
    u: float


@dataclass(frozen=True)
class Comparison:
    """An attribute compared level by level; `fields` must be filled on both sides."""

    name: str
    fields: tuple[str, ...]
    levels: tuple[Level, ...]


@dataclass(frozen=True)
class Key:
    """A field, or the part of it from character `start` (1-based, as SQL's substr) of `length`."""

    field: str
    start: int = 1
    length: int | None = None

    def sql(self, alias: str) -> str:
        """The key as an SQL expression on table `alias`."""
        column = f"{alias}.{self.field}"
        if self.start == 1 and self.length is None:
            return column
        return f"substr({column}, {self.start}{'' if self.length is None else f', {self.length}'})"

    def of(self, record: Mapping[str, Any]) -> Any:
        """The key of a record (its fields by name); None when the field is blank."""
        value = record.get(self.field)
        if value is None or (self.start == 1 and self.length is None):
            return value
        end = None if self.length is None else self.start - 1 + self.length
        return value[self.start - 1 : end]


@dataclass(frozen=True)
class BlockingRule:
    """Records and persons sharing every key are compared."""

    name: str
    keys: tuple[Key, ...]

    def sql(self, person: str, record: str) -> str:
        """The join condition between table aliases `person` and `record`."""
        return " AND ".join(f"{k.sql(person)} = {k.sql(record)}" for k in self.keys)

    @property
    def on_name(self) -> bool:
        """Whether the name (its sound) is one of the keys."""
        return any(k.field == "name_pinyin" for k in self.keys)

    def block(self, record: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The block a record falls in under this rule; None when a key is blank (SQL's NULL = NULL)."""
        values = tuple(k.of(record) for k in self.keys)
        return None if any(v is None for v in values) else values


def _both(pair: Pair, field: str) -> bool:
    return pair[f"r_{field}"] is not None and pair[f"p_{field}"] is not None


# Level tests: small named pieces, so the tables below read as data.
def exact(field: str) -> Test:
    """Both sides equal."""
    return lambda p: p[f"r_{field}"] == p[f"p_{field}"]


def same_prefix(field: str, length: int) -> Test:
    """The first `length` characters equal (area codes: 6 district, 9 street)."""
    return lambda p: p[f"r_{field}"][:length] == p[f"p_{field}"][:length]


def within_edits(field: str, edits: int) -> Test:
    """At most `edits` insertions, deletions or substitutions apart (characters, not bytes)."""
    return lambda p: Levenshtein.distance(p[f"r_{field}"], p[f"p_{field}"]) <= edits


def same_name(p: Pair) -> bool:
    """The same name once separators are set aside (安娜·金, 安娜金)."""
    return name_key(p["r_name"]) == name_key(p["p_name"])


def similar_name(p: Pair) -> bool:
    """Pinyin nearly the same (Jaro-Winkler ≥ 0.95), or one character apart."""
    return (
        JaroWinkler.similarity(p["r_name_pinyin"] or "", p["p_name_pinyin"] or "") >= 0.95
        or Levenshtein.distance(p["r_name"], p["p_name"]) == 1
    )


def day_month_swapped(p: Pair) -> bool:
    """Same year, day and month exchanged."""
    a, b = p["r_birth_date"], p["p_birth_date"]
    return bool(a.year == b.year and a.month == b.day and a.day == b.month)


def one_date_part_differs(p: Pair) -> bool:
    """Two of year, month and day agree."""
    a, b = p["r_birth_date"], p["p_birth_date"]
    return bool((a.year == b.year) + (a.month == b.month) + (a.day == b.day) == 2)


def same_document_kind(p: Pair) -> bool:
    """Both records identified by a resident ID card, or both by another document (a passport, a
    Hong Kong/Macao or Taiwan pass, a foreigner's permanent residence card)."""
    return bool((p["r_id_type"] == "RID") == (p["p_id_type"] == "RID"))


def numbers_close(p: Pair) -> bool:
    """Whether two document numbers of a type differ by at most two digits, a swap of neighbours counting
    as one; of resident ID numbers the first 17 (a typo kept valid changes the check digit as well)."""
    r, q = str(p["r_id_no"]), str(p["p_id_no"])
    if p["r_id_type"] == "RID" and len(r) == len(q) == 18:
        r, q = r[:17], q[:17]
    return int(DamerauLevenshtein.distance(r, q)) <= 2


def anything(_: Pair) -> bool:
    """The else level."""
    return True


# fmt: off
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("name", ("name",), (
        Level("exact", same_name, 0.93, 1e-4),  # u replaced by the name's own frequency
        Level("same_sound", exact("name_pinyin"), 0.04, 2e-4),
        Level("similar", similar_name, 0.02, 4e-3),
        Level("different", anything, 0.01, 0.9957),
    )),
    Comparison("birth_date", ("birth_date",), (
        Level("exact", exact("birth_date"), 0.96, 4e-5),
        Level("day_month_swapped", day_month_swapped, 0.01, 1e-5),
        Level("one_part_differs", one_date_part_differs, 0.02, 2e-3),
        Level("different", anything, 0.01, 0.99795),
    )),
    Comparison("sex", ("sex",), (
        Level("same", exact("sex"), 0.995, 0.5),
        Level("different", anything, 0.005, 0.5),
    )),
    Comparison("id_no", ("id_no",), (
        Level("exact", exact("id_no"), 0.90, 1e-7),
        Level("one_or_two_edits", within_edits("id_no", 2), 0.09, 1e-5),
        Level("different", anything, 0.01, 0.99999),
    )),
    # A mainland resident's ID card against a foreigner's or a Hong Kong, Macao or Taiwan resident's
    # document: the same person only after a naturalisation or a citizen's passport on a record (m);
    # two different people of a city with a few percent of them (u). Without it, a foreigner born on the
    # day a resident of their community was born scored a review on birth date and community alone.
    Comparison("id_kind", ("id_type",), (
        Level("same_kind", same_document_kind, 0.998, 0.95),
        Level("resident_and_other", anything, 0.002, 0.05),
    )),
    Comparison("community", ("community_code",), (
        Level("same", exact("community_code"), 0.75, 5e-3),
        Level("same_street", same_prefix("community_code", 9), 0.08, 0.03),
        Level("same_district", same_prefix("community_code", 6), 0.07, 0.15),
        Level("different", anything, 0.10, 0.815),
    )),
    Comparison("phone", ("phone",), (
        Level("same", exact("phone"), 0.6, 1e-6),
        Level("different", anything, 0.4, 0.999999),
    )),
)

# Candidate persons for a record: those sharing every key of at least one rule (each rule is one
# SELECT using an index on person; a blank key finds nobody). id_no[1:9] is SQL's substr(id_no, 1, 9).
BLOCKING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("birth_date+pinyin", (Key("birth_date"), Key("name_pinyin"))),
    BlockingRule("pinyin+id_head", (Key("name_pinyin"), Key("id_no", 1, 9))),
    BlockingRule("pinyin+id_tail", (Key("name_pinyin"), Key("id_no", 10))),
    BlockingRule("community+birth_date+sex", (Key("community_code"), Key("birth_date"), Key("sex"))),
)
# fmt: on

# Bands on the score (bits, prior included): at or above LINK the record joins the person; at or above
# REVIEW a clerk decides; below, the record is somebody new. 7 bits is a match probability of 0.992.
LINK_BITS = 7.0
REVIEW_BITS = 0.0
# A link also needs its best candidate this far ahead of the next: a close runner-up means the blocking
# found two plausible persons, and a clerk decides.
RUNNER_UP_BITS = 2.0


@dataclass
class Model:
    """m-probabilities per (comparison, level), the prior, and name frequencies for u."""

    m: dict[str, dict[str, float]]
    log2_prior_odds: float
    name_freq: dict[str, float]  # by name key (name_frequencies)
    population: int

    def to_json(self) -> dict[str, Any]:
        """What is stored with the batch, so every score can be recomputed."""
        return {"m": self.m, "log2_prior_odds": self.log2_prior_odds, "population": self.population}


def default_m() -> dict[str, dict[str, float]]:
    """The m-probabilities written in COMPARISONS."""
    return {c.name: {lv.name: lv.m for lv in c.levels} for c in COMPARISONS}


def compare(pair: Pair) -> dict[str, str]:
    """The level each comparison reaches for a pair; comparisons with a blank side are left out."""
    out: dict[str, str] = {}
    for comparison in COMPARISONS:
        if all(_both(pair, f) for f in comparison.fields):
            out[comparison.name] = next(lv.name for lv in comparison.levels if lv.test(pair))
    return out


_U = {c.name: {lv.name: lv.u for lv in c.levels} for c in COMPARISONS}


def score(pair: Pair, model: Model) -> tuple[float, dict[str, Any]]:
    """Score (bits) of a pair and its explanation: the level and weight of every comparison."""
    levels = compare(pair)
    total = model.log2_prior_odds
    explained: dict[str, Any] = {}
    for name, level in levels.items():
        u = _U[name][level]
        if name == "name" and level == "exact":
            u = max(
                model.name_freq.get(name_key(pair["r_name"]) or "", 0.0), 1.0 / max(model.population, 1), 1e-7
            )
        weight = math.log2(model.m[name][level] / u)
        total += weight
        explained[name] = [level, round(weight, 2)]
    return total, explained


def name_frequencies(counts: Iterable[tuple[str, int]], population: int) -> dict[str, float]:
    """Share of the population per name key, from (name, persons) counts: spellings of a name add up."""
    freq: dict[str, float] = {}
    for name, n in counts:
        key = name_key(name) or ""
        freq[key] = freq.get(key, 0.0) + n / population
    return freq


def estimate_m(pairs: Iterable[Pair], *, minimum: int = 500) -> dict[str, dict[str, float]] | None:
    """m-probabilities from pairs known to be the same person (the ID number decided them).

    Returns None when there are too few pairs; each level keeps a pseudo-count from the defaults, so a
    level never seen is not given probability zero.
    """
    counts: dict[str, Counter[str]] = {c.name: Counter() for c in COMPARISONS}
    n = 0
    for pair in pairs:
        n += 1
        for name, level in compare(pair).items():
            counts[name][level] += 1
    if n < minimum:
        return None
    defaults = default_m()
    estimated: dict[str, dict[str, float]] = {}
    for name, levels in defaults.items():
        if name in ("id_no", "id_kind"):  # decided by the ID number itself: no information about m here
            estimated[name] = dict(levels)
            continue
        total = sum(counts[name].values()) + 10.0
        estimated[name] = {lv: (counts[name][lv] + 10.0 * p) / total for lv, p in levels.items()}
    return estimated


def band(bits: float) -> str:
    """link, review or new."""
    if bits >= LINK_BITS:
        return "link"
    if bits >= REVIEW_BITS:
        return "review"
    return "new"


def decide(best: float, runner_up: float | None = None, name_level: str | None = None) -> str:
    """The band of a record's best candidate, a link turned to review when the runner-up is close or
    when both name a person and the names are different (not the same, alike in sound or similar).

    Birth date, sex and community agreeing in a community of thousands outweigh a different name (21.8
    bits against 6.6): in the 100,000-person bench every link scored with a different name was wrong (8 of
    8, each a new ID card number joined to a resident whose own number had a typo), and every one with
    the same name right (1,437). A clerk sees the two names; a newborn's birth certificate names nobody,
    so its registration is not held back."""
    decision = band(best)
    if decision == "link" and runner_up is not None and runner_up >= best - RUNNER_UP_BITS:
        return "review"
    if decision == "link" and name_level == "different":
        return "review"
    return decision


def birth_key(value: date | None) -> str:
    """A date as blocking-key text."""
    return value.isoformat() if value else ""
