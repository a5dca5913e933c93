"""Publication of decision statistics: the secret of the cell-key perturbation and the openly published levels.

The secret is drawn once here (gen_random_uuid is cryptographically random) and never changes: the same
cell must get the same noise on every page, API answer and export, today and later, or averaging
answers would wash the noise out (docs/STATISTICS.md). An operator lists in decision.open_level the
area levels whose statistics anyone may read; every other level needs a planner's login or API key.

Revision ID: 0202_decision_publication
Revises: 0201_decision_aggregates
Create Date: 2026-12-04 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0202_decision_publication"
down_revision: str | Sequence[str] | None = "0201_decision_aggregates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE_SQL = """
CREATE TABLE decision.publication (
    id smallint PRIMARY KEY CONSTRAINT ck_publication_one CHECK (id = 1),
    cell_key_secret text NOT NULL
);
INSERT INTO decision.publication (id, cell_key_secret)
VALUES (1, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

CREATE TABLE decision.open_level (
    level varchar(16) PRIMARY KEY
        CONSTRAINT ck_open_level_level CHECK (level IN ('city', 'district', 'street', 'community')),
    opened_at timestamp NOT NULL DEFAULT now(),
    opened_by text NOT NULL
);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute("DROP TABLE decision.open_level")
    op.execute("DROP TABLE decision.publication")
