"""The aggregates derived set-wise (one pass of grouping sets over the areas and grains) are those of
the per-row expansion they replaced, and equal a rebuild and a direct recount on every day tested."""

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from decision import aggregates, service
from tests.decision.conftest import random_batch, random_population
from tests.decision.test_service import EPOCH, HORIZON, snapshot

# Every day of two months (the day rows) and month ends across the window (the month rows).
DAYS = [date(2026, 2, 1) + timedelta(days=i) for i in range(59)] + [
    date(2025, 1, 31),
    date(2025, 12, 31),
    date(2027, 6, 30),
]

# The roll-up of commit b8cf86a: each cube's day row expanded to its four area levels and two grains,
# then grouped again (the reference; decision.aggregates.CELL_DELTA_SQL does it in one grouping).
EXPANDED_ROLLUP = """cube_day AS (
    SELECT cube, cc, cell, day, sum(d) AS d FROM cube GROUP BY cube, cc, cell, day HAVING sum(d) <> 0
)
SELECT c.cube, a.area_code, g.grain, g.period, c.cell, sum(c.d)::integer AS n
FROM cube_day c
CROSS JOIN LATERAL (VALUES (''), (left(c.cc, 6)), (left(c.cc, 9)), (c.cc)) AS a(area_code)
CROSS JOIN LATERAL (VALUES ('M', date_trunc('month', c.day)::date), ('D', c.day)) AS g(grain, period)
WHERE a.area_code IS NOT NULL
GROUP BY c.cube, a.area_code, g.grain, g.period, c.cell
HAVING sum(c.d) <> 0
"""


def per_row_cell_delta() -> str:
    """CELL_DELTA_SQL with the expanded roll-up in place of the grouping sets."""
    sql = aggregates.CELL_DELTA_SQL
    return sql[: sql.index("cube_day AS (")] + EXPANDED_ROLLUP


def load_city(session: Session, communities: list[str]) -> None:
    """400 people of every kind, then three batches of moves, deaths, departures, births, backdated fixes."""
    people = random_population(session, communities, 400, seed=5)
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    batches = [
        random_batch(session, people, communities, day=date(2026, m, 12), seed=40 + m) for m in (1, 2, 4)
    ]
    for batch in batches:
        assert service.refresh_after_batch(session=session, batch_id=batch.id).how == "refresh"


def test_the_set_wise_roll_up_equals_the_per_row_one_a_rebuild_and_a_recount(
    session: Session, communities: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with session.begin_nested() as reference:
        monkeypatch.setattr(aggregates, "CELL_DELTA_SQL", per_row_cell_delta())
        load_city(session, communities)
        expanded = snapshot(session)
        monkeypatch.undo()
        reference.rollback()
    load_city(session, communities)
    rolled = snapshot(session)
    assert rolled == expanded and len(rolled[0]) > 1000
    for day in DAYS:
        recounted = service.recount(session=session, as_of=day)
        assert recounted, day
        assert service.aggregate_cells(session=session, as_of=day) == recounted, day
    service.rebuild(session=session, epoch=EPOCH, horizon=HORIZON)
    assert snapshot(session) == rolled
