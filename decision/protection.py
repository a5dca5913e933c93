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
from collections.abc import Hashable

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
MAX_NOISE = max(abs(e) for _, e in NOISE_TABLE)


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


def true_range(cell: StatCell, threshold: int) -> tuple[float, float] | None:
    """The true counts consistent with a published count, as anyone who knows the method can tell:
    what an intruder starts from (tests/decision/intruder.py). None when it tells nothing."""
    if cell.value is None and not cell.suppressed:
        return None
    if cell.suppressed:  # perturbed to 0..threshold-1, or a true 0
        return 0.0, float(threshold - 1 + MAX_NOISE)
    value = float(cell.value)  # type: ignore[arg-type]
    return max(0.0, value - MAX_NOISE), value + MAX_NOISE
