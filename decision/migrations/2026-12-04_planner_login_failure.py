"""Wrong planner API keys presented (login form or API), per client address: an address with too many in
the window is locked out (decision.access). Nothing of the key presented is kept.

Revision ID: 0204_planner_login_failure
Revises: 0203_decision_planner
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0204_planner_login_failure"
down_revision: str | Sequence[str] | None = "0203_decision_planner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE_SQL = """
CREATE TABLE decision.login_failure (
    id bigserial PRIMARY KEY,
    ip varchar(64) NOT NULL,
    at timestamp NOT NULL DEFAULT now()
);
CREATE INDEX ix_login_failure_ip_at ON decision.login_failure (ip, at);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute("DROP TABLE decision.login_failure")
