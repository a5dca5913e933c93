"""Statistical disclosure control of published counts: a cell-key perturbation (docs/STATISTICS.md).

Every published count n gets a small noise e in -5..5 drawn from a fixed table by the cell's key, a
number in [0, 1) hashed from a secret (drawn once, decision.publication), the cell's definition
(area, what it counts) and n itself. The same cell with the same count therefore shows the same value
on every page, table, API answer, export, months variant and date, so that repeating or combining
queries gives an intruder nothing to average. Zeros get no noise; a count that comes out below the
threshold is shown as suppressed, and so is a true 0, so that a suppressed cell never tells that
someone is there (nor a 0 that at most MAX_NOISE are). Totals are perturbed as cells of their own, so a table
need not add up exactly: that is what keeps a small cell from being derived from its margins.
"""

import bisect
import hashlib
import itertools
import math
from collections.abc import Hashable

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision.schemas import StatCell

DEFAULT_THRESHOLD = 5
# The perturbation table: noise -MAX_NOISE..MAX_NOISE with mean 0 and variance NOISE_VARIANCE, and of
# all such distributions the one of maximum entropy (Giessing 2016; what sdcTools' ptable package
# builds): p(e) proportional to exp(-lambda e^2). Both parameters are public. The wide, thin tails
# (|e| = 4 or 5 in 2.4 % of draws) keep an intruder's bounds loose without adding noise to the
# typical count: a linear relation pins a cell only where several draws fall at the table's ends.
MAX_NOISE = 5
NOISE_VARIANCE = 2.5


def max_entropy_noise(max_noise: int, variance: float) -> dict[int, float]:
    """The noise distribution of maximum entropy on -max_noise..max_noise with mean 0 and this variance."""
    values = range(-max_noise, max_noise + 1)
    low, high = 0.0, 50.0  # lambda; the variance falls as lambda grows
    for _ in range(100):
        lam = (low + high) / 2
        weights = [math.exp(-lam * e * e) for e in values]
        if sum(w * e * e for w, e in zip(weights, values, strict=True)) / sum(weights) > variance:
            low = lam
        else:
            high = lam
    total = sum(weights)
    return {e: w / total for w, e in zip(weights, values, strict=True)}


NOISE = max_entropy_noise(MAX_NOISE, NOISE_VARIANCE)
# A cell key below _BOUNDS[i] (and not below the one before) draws the noise -MAX_NOISE + i.
_BOUNDS = list(itertools.accumulate(NOISE.values()))
_BOUNDS[-1] = 1.0


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
    noise = bisect.bisect_right(_BOUNDS, key) - MAX_NOISE
    return max(0, n + noise)


def true_range(cell: StatCell, threshold: int, max_noise: int = MAX_NOISE) -> tuple[float, float] | None:
    """The true counts consistent with a published count, as anyone who knows the method can tell:
    what an intruder starts from (tests/decision/intruder.py; max_noise: what he takes the largest
    noise to be). None when it tells nothing."""
    if cell.value is None and not cell.suppressed:
        return None
    if cell.suppressed:  # perturbed to 0..threshold-1, or a true 0
        return 0.0, float(threshold - 1 + max_noise)
    value = float(cell.value)  # type: ignore[arg-type]
    return max(0.0, value - max_noise), value + max_noise
