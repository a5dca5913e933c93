"""The dirt real extracts carry, applied to a source's rows just before they are written."""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from synth import reference as ref
from synth.dates import DATE_STYLES, NODATE, render, ymd
from synth.feeds import Table
from synth.idcard import to_15

# Rates are shares of the cells (or rows, or files) that are eligible for that kind of dirt.
MESS: dict[str, float] = {
    "id15": 0.03,  # IDs of people born before 1970 still in the 15-digit form
    "id15_rsj_cb": 0.35,  # the same in social insurance, which kept the old numbers
    "id_lower_x": 0.2,  # IDs ending in X written with a lower-case x
    "id_fullwidth": 0.002,  # IDs typed with full-width digits
    "id_space": 0.003,  # IDs with a stray space
    "id_typo": 0.0015,  # one digit wrong
    "id_swap": 0.0015,  # two adjacent digits swapped
    "name_traditional": 0.01,  # names in traditional characters (where a character has a traditional form)
    "name_homophone": 0.003,  # one character replaced by a homophone
    "name_space": 0.003,  # a space inside the name
    "name_dot": 0.3,  # dotted (minority, foreign) names with another middle dot
    "date_mixed": 0.03,  # date cells in another format than the column's usual one
    "date_swapped": 0.002,  # day and month swapped
    "sex_style": 0.02,  # sex written as 男/女 in a 1/2 column or the other way round
    "line_twice": 0.001,  # rows repeated later in the same file
    "nobody": 0.0005,  # rows with blank names and IDs (identify nobody)
    "second_delivery": 0.05,  # daily files split into a first and a second (_2) delivery
    "file_twice": 0.03,  # files delivered twice (byte copy in landing/duplicates)
    "rsj_cb_jsonl": 0.3,  # days on which social insurance sends JSON Lines instead of CSV
}

Rule = tuple[float, Callable[[str], bool], Callable[[str], str]]
_FULLWIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
_HOMOPHONES = str.maketrans(ref.HOMOPHONES)


def pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Indices of a random share of n items."""
    return np.flatnonzero(rng.random(n) < rate)


def _apply(rng: np.random.Generator, values: list[str], rules: Iterable[Rule]) -> None:
    """For each rule (rate, eligible, change): change a random share of the eligible cells, in place."""
    for rate, eligible, change in rules:
        candidates = [i for i, v in enumerate(values) if v and eligible(v)]
        for i in pick(rng, len(candidates), rate):
            values[candidates[i]] = change(values[candidates[i]])


def _any(v: str) -> bool:
    """Every non-blank cell is eligible."""
    return True


def _typo(rng: np.random.Generator, s: str) -> str:
    """One digit replaced by another."""
    digits = [i for i, c in enumerate(s) if c.isdigit()]
    if not digits:
        return s
    i = digits[int(rng.integers(len(digits)))]
    return s[:i] + str((int(s[i]) + int(rng.integers(1, 10))) % 10) + s[i + 1 :]


def _swap(rng: np.random.Generator, s: str) -> str:
    """Two adjacent, different digits swapped."""
    pairs = [i for i in range(len(s) - 1) if s[i].isdigit() and s[i + 1].isdigit() and s[i] != s[i + 1]]
    if not pairs:
        return s
    i = pairs[int(rng.integers(len(pairs)))]
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]


def _insert_space(rng: np.random.Generator, s: str, positions: tuple[int, ...]) -> str:
    """A space at one of the given positions (clipped to the end)."""
    i = min(positions[int(rng.integers(len(positions)))], len(s))
    return s[:i] + " " + s[i:]


def _born_before_1970(v: str) -> bool:
    """An 18-digit number of someone born before 1970 (who had a 15-digit one)."""
    return len(v) == 18 and v.startswith(("18", "19"), 6) and v[8] < "7"


def mess_ids(rng: np.random.Generator, values: list[str], id15: float) -> None:
    """Old 15-digit forms, lower-case x, typos, swaps, full-width digits and stray spaces, in place."""
    _apply(rng, values, (
        (id15, _born_before_1970, to_15),
        (MESS["id_lower_x"], lambda v: v.endswith("X"), lambda v: v[:-1] + "x"),
        (MESS["id_typo"], _any, lambda v: _typo(rng, v)),
        (MESS["id_swap"], _any, lambda v: _swap(rng, v)),
        (MESS["id_fullwidth"], _any, lambda v: v.translate(_FULLWIDTH)),
        (MESS["id_space"], _any, lambda v: _insert_space(rng, v, (0, 6, 14, 99))),
    ))  # fmt: skip


def _homophone(rng: np.random.Generator, s: str) -> str:
    """One character after the surname replaced by a homophone."""
    spots = [i for i, c in enumerate(s) if i > 0 and c in ref.HOMOPHONES]
    i = spots[int(rng.integers(len(spots)))]
    return s[:i] + s[i].translate(_HOMOPHONES) + s[i + 1 :]


def _dot(rng: np.random.Generator, s: str) -> str:
    """The middle dot replaced by a look-alike."""
    return s.replace(ref.DOT, ref.DOT_VARIANTS[int(rng.integers(len(ref.DOT_VARIANTS)))])


def mess_names(rng: np.random.Generator, values: list[str]) -> None:
    """Traditional characters, homophones, inner spaces and other middle dots, in place."""
    _apply(rng, values, (
        (MESS["name_traditional"], lambda v: v != v.translate(ref.TRADITIONAL), lambda v: v.translate(ref.TRADITIONAL)),
        (MESS["name_homophone"], lambda v: any(c in ref.HOMOPHONES for c in v[1:]), lambda v: _homophone(rng, v)),
        (MESS["name_space"], _any, lambda v: _insert_space(rng, v, (1, 1, 1, 2, 99))),
        (MESS["name_dot"], lambda v: ref.DOT in v, lambda v: _dot(rng, v)),
    ))  # fmt: skip


def format_dates(rng: np.random.Generator, days: np.ndarray, style: str, excel: bool) -> list[Any]:
    """A date column in its usual style, some cells in other styles and some with day and month swapped."""
    n = len(days)
    y, m, d = ymd(days)
    styles = np.full(n, DATE_STYLES.index(style))
    others = [i for i, s in enumerate(DATE_STYLES) if s != style and (excel or s != "excel")]
    mixed = pick(rng, n, MESS["date_mixed"])
    styles[mixed] = np.array(others)[rng.integers(0, len(others), len(mixed))]
    swap = pick(rng, n, MESS["date_swapped"])
    m[swap], d[swap] = d[swap], m[swap]
    out = np.empty(n, dtype=object)
    for s in np.unique(styles):
        sel = styles == s
        out[sel] = render(DATE_STYLES[s], y[sel], m[sel], d[sel])
    out[days == NODATE] = ""
    return list(out.tolist())


def format_sex(rng: np.random.Generator, codes: np.ndarray, style: str) -> list[str]:
    """Sex as 男/女 or 1/2, mostly in the source's usual style."""
    cn = np.full(len(codes), style == "cn")
    flip = pick(rng, len(codes), MESS["sex_style"])
    cn[flip] = ~cn[flip]
    return list(np.where(cn, np.where(codes == 1, "男", "女"), np.where(codes == 1, "1", "2")).tolist())


def dirty_rows(rng: np.random.Generator, table: Table) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The rows as written, with the mess, and the true person of each (-1 for nobody)."""
    feed = table.feed
    cols: list[list[Any]] = []
    for c in feed.columns:
        values = table.cols[c]
        if c in feed.dates:
            cols.append(format_dates(rng, values, feed.date_style, excel=feed.ext == "xlsx"))
            continue
        if c == feed.sex:
            cols.append(format_sex(rng, values, feed.sex_style))
            continue
        values = list(values)
        if c in feed.ids:
            mess_ids(rng, values, MESS["id15_rsj_cb" if feed.name == "rsj_cb" else "id15"])
        if c in feed.names:
            mess_names(rng, values)
        cols.append(values)
    rows = list(zip(*cols, strict=True)) if cols[0] else []
    persons = table.persons.tolist()
    n = len(rows)
    twice, nobody = pick(rng, n, MESS["line_twice"]), pick(rng, n, MESS["nobody"])
    blank = {feed.columns.index(c) for c in feed.ids + feed.names}
    rows += [rows[i] for i in twice]
    rows += [tuple("" if j in blank else v for j, v in enumerate(rows[i])) for i in nobody]
    persons += [persons[i] for i in twice] + [-1] * len(nobody)
    keys = np.concatenate(
        [np.arange(n), twice + rng.random(len(twice)) * (n - twice), rng.random(len(nobody)) * n]
    )
    order = np.argsort(keys, kind="stable").tolist()
    return [rows[i] for i in order], [persons[i] for i in order]
