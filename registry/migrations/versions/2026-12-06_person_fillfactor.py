"""Room on each page of `person` for its rows' next versions (fillfactor 70).

A golden record is rewritten in place whenever a batch changes it. With full pages (PostgreSQL's
default fillfactor, 100) no new row version fits beside the old one, so every rewrite goes to another
page and adds an entry to each of the table's nine indexes, and the deferred one-identifier-per-number
exclusion is checked again: a department's first extract that touches 447,000 of a 1,000,000-person
city's persons (social insurance) spent 35 s in that UPDATE. With 30 % of each page kept free, a rewrite
that leaves the indexed columns alone (a phone number, an address, the provenance) stays on its page
and touches no index (a heap-only tuple): the same UPDATE measured 37.6 s at 100, 27.3 s at 85 and
8.8 s at 70 (90 % of the rows heap-only), for a table about 30 % larger (BENCHMARKS.md).

The setting applies to pages written from now on; `VACUUM FULL person` (an exclusive lock while the
table is rewritten) gives an existing table's pages the room at once.

Revision ID: 0018_person_fillfactor
Revises: 0017_person_tally
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_person_fillfactor"
down_revision: str | Sequence[str] | None = "0017_person_tally"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 70


def upgrade() -> None:
    op.execute(f"ALTER TABLE person SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE person RESET (fillfactor)")
