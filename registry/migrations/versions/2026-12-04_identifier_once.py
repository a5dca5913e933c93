"""One document number, one live person: an exclusion constraint on person (id_type, id_no) for every
person not retired (issue 15: two ingests at once left 770 numbers each on two persons, unseen).

person_identifier's key already gives a number one holder there; this makes the golden records say
the same. It is checked at commit (DEFERRABLE INITIALLY DEFERRED): within a transaction a clerk's
split or unmerge moves a number between two persons in more than one statement.

Existing duplicates are refused, not repaired: which of two persons is the real one (and what becomes
of the other's records) is a clerk's decision (`popex person merge`), so the upgrade stops with how
many numbers are held twice and changes nothing; `popex db check` counts them too.

Revision ID: 0009_identifier_once
Revises: 0008_batch_lifecycle
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from registry.migrate import MigrationRefused

revision: str = "0009_identifier_once"
down_revision: str | Sequence[str] | None = "0008_batch_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ex_person_identifier_once"
HELD_TWICE = """
SELECT count(*) FROM (SELECT 1 FROM person WHERE status <> 'retired' AND id_no IS NOT NULL
                      GROUP BY id_type, id_no HAVING count(*) > 1) d
"""


def upgrade() -> None:
    held_twice = op.get_bind().execute(sa.text(HELD_TWICE)).scalar_one()
    if held_twice:
        raise MigrationRefused(
            f"{held_twice} 个证件号码各由不止一名在册人员持有，无法加上「一号一人」约束。"
            "请先逐一核实并用 popex person merge 合并（popex db check 统计），再运行 popex db upgrade。"
        )
    op.execute(
        f"ALTER TABLE person ADD CONSTRAINT {NAME} EXCLUDE USING btree (id_type WITH =, id_no WITH =) "
        "WHERE (status <> 'retired' AND id_no IS NOT NULL) DEFERRABLE INITIALLY DEFERRED"
    )


def downgrade() -> None:
    op.drop_constraint(NAME, "person")
