"""Resident ID numbers (GB 11643): region, birth date, sequence and the registry's MOD 11-2 check,
vectorised."""

import numpy as np

from registry.normalise.ids import CHECK_CHARS, CHECK_WEIGHTS
from synth.dates import ymd

_WEIGHTS = np.array(CHECK_WEIGHTS, dtype=np.int64)
_CHECK = np.array(list(CHECK_CHARS))
_POWERS = 10 ** np.arange(16, -1, -1, dtype=np.int64)


def id_numbers(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """18-character ID numbers from 6-digit regions, birth day numbers and 3-digit sequences."""
    y, m, d = ymd(birth)
    body = region.astype(np.int64) * 10**11 + (y * 10000 + m * 100 + d) * 1000 + seq.astype(np.int64)
    digits = (body[:, None] // _POWERS) % 10
    check = _CHECK[(digits @ _WEIGHTS) % 11]
    return np.strings.add(np.strings.zfill(body.astype(str), 17), check)


def sequences(keys: np.ndarray, male: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sequence codes unique within each key (region and birth date): odd for men, even for women."""
    order = np.lexsort((male, keys))
    k, s = keys[order], male[order]
    starts = np.r_[True, (k[1:] != k[:-1]) | (s[1:] != s[:-1])]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(k)), 0))
    base = rng.integers(0, 300, len(k))[first]
    seq = np.empty(len(k), dtype=np.int64)
    seq[order] = 2 * (base + np.arange(len(k)) - first) + np.where(s, 1, 2)
    return seq


def to_15(id18: str) -> str:
    """The pre-1999 15-digit form of an 18-digit number (no century, no check character)."""
    return id18[:6] + id18[8:17]
