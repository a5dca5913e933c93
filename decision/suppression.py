"""Small-cell suppression with complementary suppression over linear relations ("lines").

A line is a set of cells bound by one additive relation (the cells of a table row and the row total,
an age range and the bands or groups it is made of, …). A cell 0 < n < threshold is sensitive and
suppressed. A suppressed cell must not be the only unknown of any line it is in, or it could be
derived from the others; so while a line has exactly one unknown cell that is protected, the engine
also suppresses the line's smallest positive published cell (complementary suppression). Hidden
cells are never published (e.g. single age bands); when they help protect a line they become
protected themselves, so their own lines must not give them away either.
"""

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

DEFAULT_THRESHOLD = 5
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Suppression(Generic[K]):
    """The outcome: published cells that are suppressed, split by why."""

    primary: frozenset[K]
    complementary: frozenset[K]

    @property
    def suppressed(self) -> frozenset[K]:
        """Every published cell that must not be shown."""
        return self.primary | self.complementary


def suppress(
    values: Mapping[K, int],
    lines: Iterable[Sequence[K]],
    *,
    hidden: Iterable[K] = (),
    threshold: int = DEFAULT_THRESHOLD,
) -> Suppression[K]:
    """Choose the cells to suppress; missing values count as 0."""
    all_lines = [tuple(line) for line in lines]
    hidden_set = frozenset(hidden)
    primary = {k for k, v in values.items() if 0 < v < threshold}
    unknown = set(hidden_set) | primary
    protected = set(primary)
    changed = True
    while changed:
        changed = False
        for line in all_lines:
            unknowns = [k for k in line if k in unknown]
            if not any(k in protected for k in unknowns):
                continue
            if len(unknowns) == 1:
                published = [k for k in line if k not in unknown]
                if not published:
                    continue
                # Prefer the smallest positive cell; zeros protect nothing (a reader may guess them).
                pick = min(published, key=lambda k: (values.get(k, 0) == 0, values.get(k, 0), repr(k)))
                unknown.add(pick)
                protected.add(pick)
                changed = True
            else:
                for k in unknowns:
                    if k not in protected:
                        protected.add(k)
                        changed = True
    return Suppression(frozenset(primary - hidden_set), frozenset(unknown - hidden_set - primary))


def unsafe_lines(
    lines: Iterable[Sequence[Hashable]], suppressed: Iterable[Hashable]
) -> list[tuple[Hashable, ...]]:
    """Lines of published cells with exactly one suppressed cell: that cell could be derived."""
    unknown = set(suppressed)
    return [tuple(line) for line in lines if sum(1 for k in line if k in unknown) == 1]
