"""Published values kept beside the true counts (decision/aggregates.py, PUBLISH_SQL): flow kinds 'birth+',
'death+' and 'other+' for births, deaths and other removals as sums of perturbed unit cells, and the
residents of no known community as a unit of their own ('~'). The aggregates are emptied: the next
refresh rebuilds them with the published values (until then the statistics answer 503 NOT_BUILT).

Revision ID: 0205_published_unit_cells
Revises: 0204_planner_login_failure
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0205_published_unit_cells"
down_revision: str | Sequence[str] | None = "0204_planner_login_failure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_SQL = """
TRUNCATE decision.cell, decision.flow, decision.applied_batch;
DELETE FROM decision.state;
"""


def upgrade() -> None:
    op.execute(EMPTY_SQL)
    # A unit cell's day rows, for the refresh (decision/aggregates.py, UNIT_SERIES_INDEX).
    op.execute(
        "CREATE INDEX ix_cell_unit_series ON decision.cell (cube, area_code, cell, period)"
        " WHERE grain = 'D' AND (length(area_code) = 12 OR area_code = '~')"
    )
    op.execute("ALTER TABLE decision.flow DROP CONSTRAINT ck_flow_kind")
    op.execute(
        "ALTER TABLE decision.flow ADD CONSTRAINT ck_flow_kind"
        " CHECK (kind IN ('birth', 'death', 'in', 'out', 'other', 'birth+', 'death+', 'other+'))"
    )


def downgrade() -> None:
    op.execute(EMPTY_SQL)
    op.execute("DROP INDEX decision.ix_cell_unit_series")
    op.execute("ALTER TABLE decision.flow DROP CONSTRAINT ck_flow_kind")
    op.execute(
        "ALTER TABLE decision.flow ADD CONSTRAINT ck_flow_kind CHECK (kind IN ('birth', 'death', 'in', 'out', 'other'))"
    )
