"""Why rows were rejected: the reasons of a set of batches ranked, each with the batches and departments it
came from (the exchange's page and the monitor read the same ranking)."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.records import describe


@dataclass(frozen=True)
class ReasonInBatch:
    """How many rejected rows of one batch gave a reason, with the batch's feed and department by name."""

    batch_id: int
    source: str
    feed: str  # the feed's title (户籍人口 …)
    department: str  # the department's name (公安局 …)
    as_of_date: date
    rows: int


@dataclass(frozen=True)
class Reason:
    """One rejection reason: its code, the zh-CN sentence, its rejected rows and where they came from."""

    code: str
    description: str
    rows: int
    batches: tuple[ReasonInBatch, ...]  # most rows first

    @property
    def departments(self) -> tuple[str, ...]:
        """The departments whose rows gave the reason, most rows first."""
        rows: dict[str, int] = {}
        for b in self.batches:
            rows[b.department] = rows.get(b.department, 0) + b.rows
        return tuple(sorted(rows, key=lambda name: -rows[name]))


# Counted per batch first: the ranking sums them, and the rows per batch say where each reason came from.
RANKED_REASONS = text(
    """
    WITH per_batch AS (
        SELECT reason, r.batch_id, count(*) AS n
        FROM source_record r, jsonb_array_elements_text(r.reasons) AS reason
        WHERE r.batch_id = ANY(:ids) AND r.status = 'rejected'
        GROUP BY reason, r.batch_id
    ), ranked AS (
        SELECT reason, sum(n) AS total FROM per_batch GROUP BY reason ORDER BY total DESC, reason LIMIT :limit
    )
    SELECT k.reason, k.total, p.batch_id, p.n, b.source, b.as_of_date, f.title, d.name AS department
    FROM ranked k
    JOIN per_batch p ON p.reason = k.reason
    JOIN batch b ON b.id = p.batch_id
    JOIN feed f ON f.source = b.source
    JOIN department d ON d.code = f.department_code
    ORDER BY k.total DESC, k.reason, p.n DESC, p.batch_id
    """
)


def ranked_reasons(*, session: Session, batch_ids: list[int], limit: int = 20) -> list[Reason]:
    """The rejection reasons of the batches' rejected rows, most frequent first (at most `limit`)."""
    if not batch_ids:
        return []
    found: dict[str, tuple[int, list[ReasonInBatch]]] = {}
    for r in session.execute(RANKED_REASONS, {"ids": batch_ids, "limit": limit}):
        where = ReasonInBatch(r.batch_id, r.source, r.title, r.department, r.as_of_date, int(r.n))
        found.setdefault(r.reason, (int(r.total), []))[1].append(where)
    return [
        Reason(code=code, description=describe(code), rows=total, batches=tuple(where))
        for code, (total, where) in found.items()
    ]
