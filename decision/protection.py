"""Statistical disclosure control of published counts: a cell-key perturbation (docs/STATISTICS.md).

Every published count n gets a small noise e in -3..3 drawn from a fixed table by the cell's key, a
number in [0, 1) hashed from a secret (drawn once, decision.publication), the cell's definition
(area, what it counts) and n itself. The same cell with the same count therefore shows the same value
on every page, table, API answer, export, months variant and date, so that repeating or combining
queries gives an intruder nothing to average. Zeros get no noise; a count that comes out below the
threshold is shown as suppressed, and so is a true 0, so that a suppressed cell never tells that
someone is there (nor a 0 that at most MAX_NOISE are). Totals are perturbed as cells of their own, so a table
need not add up exactly: that is what keeps a small cell from being derived from its margins.
"""

import hashlib
import math
from collections.abc import Hashable
from fractions import Fraction

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision.schemas import StatCell

DEFAULT_THRESHOLD = 5
# The perturbation table: the noise for a cell key below each bound (mean 0, variance 2.1, standard
# deviation 1.45). The rare ±3 widen what an intruder must allow for every cell (MAX_NOISE is public).
NOISE_TABLE: tuple[tuple[float, int], ...] = (
    (0.05, -3),
    (0.15, -2),
    (0.35, -1),
    (0.65, 0),
    (0.85, 1),
    (0.95, 2),
    (1.0, 3),
)
# The tables of unit cells of 1 and 2, which cannot take all of it without going below 0: noise from -n,
# mean 0 all the same (as the ABS's perturbation tables), so that sums of many small unit cells are not
# biased upwards. A unit cell of n >= 1 is published as at most n + 3 <= 4n.
SMALL_NOISE_TABLES: dict[int, tuple[tuple[float, int], ...]] = {
    1: ((0.50, -1), (0.70, 0), (0.85, 1), (0.95, 2), (1.0, 3)),
    2: ((0.15, -2), (0.35, -1), (0.70, 0), (0.85, 1), (0.95, 2), (1.0, 3)),
}
MAX_NOISE = max(abs(e) for _, e in NOISE_TABLE)
# A unit cell's key: the first 52 bits of a SHA-256 of the secret and the cell, as a fraction (exact in a
# double, so that PostgreSQL and Python compare it with the tables' bounds alike).
KEY_BITS = 52


def cell_key_secret(session: Session) -> str:
    """The secret every cell key is hashed with."""
    secret = session.scalar(text("SELECT cell_key_secret FROM decision.publication WHERE id = 1"))
    if secret is None:
        raise RuntimeError("decision.publication 缺少扰动密钥：请运行 popex db migrate")
    return str(secret)


def cell_key(secret: str, area_code: str, definition: Hashable, n: int) -> float:
    """The key of a cell in [0, 1): fixed for a cell definition and count, unknowable without the secret."""
    digest = hashlib.blake2b(
        repr((area_code, definition, n)).encode(), key=secret.encode()[:64], digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def perturb(n: int, key: float) -> int:
    """The published count of a true count n with this cell key (never negative; 0 stays 0)."""
    if n <= 0:
        return n
    noise = next(e for bound, e in NOISE_TABLE if key < bound)
    return max(0, n + noise)


def unit_key(secret: str, cube: str, unit: str, cell: str, n: int) -> float:
    """The key of a unit cell in [0, 1), as unit_key_sql computes it in the database."""
    digest = hashlib.sha256(f"{secret}|{cube}|{unit}|{cell}|{n}|{secret}".encode()).hexdigest()
    return float(int(digest[: KEY_BITS // 4], 16) / 2**KEY_BITS)


def perturb_unit(n: int, key: float) -> int:
    """The published count of a unit cell of true count n (0 stays 0, never negative, mean n)."""
    if n <= 0:
        return n
    return n + next(e for bound, e in SMALL_NOISE_TABLES.get(n, NOISE_TABLE) if key < bound)


def unit_noise_variance(n: int) -> float:
    """The variance of the noise a unit cell of true count n gets (0 for an empty cell)."""
    if n <= 0:
        return 0.0
    table = SMALL_NOISE_TABLES.get(n, NOISE_TABLE)
    low, moments = 0.0, [0.0, 0.0]
    for bound, e in table:
        moments[0] += (bound - low) * e
        moments[1] += (bound - low) * e * e
        low = bound
    return moments[1] - moments[0] ** 2


def _noise_sql(table: tuple[tuple[float, int], ...], key: str) -> str:
    # key < bound compared in whole numbers: the key's 52 bits against the least whole number not below
    # bound x 2^52 (exactly what unit_key(...) < bound is in Python, without numeric division per row).
    whens = " ".join(
        f"WHEN {key} < {math.ceil(Fraction(bound) * 2**KEY_BITS)} THEN {e}" for bound, e in table[:-1]
    )
    return f"CASE {whens} ELSE {table[-1][1]} END"


def unit_key_sql(cube: str, unit: str, cell: str, n: str) -> str:
    """SQL for unit_key x 2^52 (a bigint) of the columns or expressions given (the secret is the parameter
    :secret)."""
    message = f"(:secret || '|' || {cube} || '|' || {unit} || '|' || {cell} || '|' || {n} || '|' || :secret)"
    digest = f"encode(sha256(convert_to({message}, 'UTF8')), 'hex')"
    return f"('x' || left({digest}, {KEY_BITS // 4}))::bit({KEY_BITS})::bigint"


def perturb_unit_sql(n: str, key: str) -> str:
    """SQL for perturb_unit of the expressions n and key (unit_key_sql's bigint; each used more than once:
    give plain columns)."""
    small = " ".join(f"WHEN {n} = {m} THEN {m} + {_noise_sql(t, key)}" for m, t in SMALL_NOISE_TABLES.items())
    return f"(CASE WHEN {n} <= 0 THEN {n} {small} ELSE {n} + {_noise_sql(NOISE_TABLE, key)} END)"


def true_range(cell: StatCell, threshold: int) -> tuple[float, float] | None:
    """The true counts consistent with a published count, as anyone who knows the method can tell:
    what an intruder starts from (tests/decision/intruder.py). None when it tells nothing."""
    if cell.value is None and not cell.suppressed:
        return None
    if cell.suppressed:  # perturbed to 0..threshold-1, or a true 0
        return 0.0, float(threshold - 1 + MAX_NOISE)
    value = float(cell.value)  # type: ignore[arg-type]
    return max(0.0, value - MAX_NOISE), value + MAX_NOISE
