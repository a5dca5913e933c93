"""Independent random streams per stage and day, so a seed reproduces every file byte for byte."""

import zlib

import numpy as np


def stream(seed: int, stage: str, day: int = 0) -> np.random.Generator:
    """The random stream of one stage of one day."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode()), day])
