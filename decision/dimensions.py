"""The dimensions of the population cells: type, sex and age band, and the age ranges built from bands.

Ages are stored as bands fine enough that every published age range is a union of whole bands: the
five-year groups of the pyramid, the school ages (3–5, 6–11, 12–14, 15–17), the elderly (60+, 65+,
80+) and the ages of the dependency ratios (0–14, 15–64, 65+).
"""

from dataclasses import dataclass

from schemas.canonical import PopulationType, Sex

# The codes of each dimension in display order, with their labels from the one vocabulary.
POPULATION_TYPES: dict[str, str] = {t.value: t.label for t in PopulationType}
SEXES: dict[str, str] = {s.value: s.label for s in Sex}
UNKNOWN = "未知"

# Lower bound (completed years) of each age band; a band runs to the next bound, the last is open.
AGE_BAND_LOWER: tuple[int, ...] = (0, 3, 5, 6, 10, 12, 15, 18, *range(20, 101, 5))
UNKNOWN_BAND = -1  # no birth date


@dataclass(frozen=True)
class AgeRange:
    """Ages lo..hi inclusive (hi None: and over), with its Chinese label."""

    key: str
    label: str
    lo: int
    hi: int | None

    @property
    def bands(self) -> tuple[int, ...]:
        """The band indexes that make up the range exactly."""
        top = self.hi + 1 if self.hi is not None else None
        chosen = tuple(
            i for i, lower in enumerate(AGE_BAND_LOWER) if lower >= self.lo and (top is None or lower < top)
        )
        upper = AGE_BAND_LOWER[chosen[-1] + 1] if chosen[-1] + 1 < len(AGE_BAND_LOWER) else None
        if AGE_BAND_LOWER[chosen[0]] != self.lo or upper != top:
            raise ValueError(f"age range {self.key} is not a union of bands")
        return chosen


def _range(lo: int, hi: int | None) -> AgeRange:
    label = f"{lo}-{hi}岁" if hi is not None else f"{lo}岁及以上"
    return AgeRange(f"{lo}-{hi}" if hi is not None else f"{lo}+", label, lo, hi)


FIVE_YEAR_GROUPS: tuple[AgeRange, ...] = (*(_range(lo, lo + 4) for lo in range(0, 100, 5)), _range(100, None))
SCHOOL_AGES: tuple[AgeRange, ...] = (_range(3, 5), _range(6, 11), _range(12, 14), _range(15, 17))
ELDERLY: tuple[AgeRange, ...] = (_range(60, None), _range(65, None), _range(80, None))
CHILDREN, WORKING, OLD = _range(0, 14), _range(15, 64), _range(65, None)
SCHOOL_AGE_LABELS = {
    "3-5": "学前（3-5岁）",
    "6-11": "小学（6-11岁）",
    "12-14": "初中（12-14岁）",
    "15-17": "高中（15-17岁）",
}

for _r in (*FIVE_YEAR_GROUPS, *SCHOOL_AGES, *ELDERLY, CHILDREN, WORKING, OLD):
    _ = _r.bands  # fail at import if a published range does not align with the bands


def pop_cell(population_type: str, sex: str, band: int) -> str:
    """The key of a 'pop' cube cell, as the SQL writes it."""
    return f"{population_type}|{sex}|{band}"


def parse_pop_cell(cell: str) -> tuple[str, str, int]:
    """(type, sex, band) of a 'pop' cube cell key."""
    population_type, sex, band = cell.split("|")
    return population_type, sex, int(band)
