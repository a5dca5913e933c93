"""Planners who may read the statistics of levels not opened to everyone: one API key each (SHA-256 stored).

Revision ID: 0203_decision_planner
Revises: 0202_decision_publication
Create Date: 2026-12-04 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0203_decision_planner"
down_revision: str | Sequence[str] | None = "0202_decision_publication"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE_SQL = """
CREATE TABLE decision.planner (
    id serial PRIMARY KEY,
    name varchar(64) NOT NULL CONSTRAINT uq_planner_name UNIQUE,
    key_sha256 char(64) NOT NULL CONSTRAINT uq_planner_key_sha256 UNIQUE,
    active boolean NOT NULL DEFAULT true,
    created_at timestamp NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute("DROP TABLE decision.planner")
