"""The audit chain's hash function declared STABLE, so that PostgreSQL inlines it where it is called.

`audit_log_hash` was declared IMMUTABLE, but its body calls `to_char` and `convert_to`, which are
STABLE: PostgreSQL then refuses to inline it, and runs it as an SQL function, whose body it parses and
plans again in every transaction that calls it. Every audit record pays that in the chain trigger; the
sharing API writes its records in small groups (often one a transaction). Declared STABLE (what its body
is: the same arguments give the same hash within a statement, and in fact always, since the format it
uses has no names of months or days) it is inlined into the caller's expression, with the same result.

Measured (BENCHMARKS.md, fourteenth session): a one-record transaction as the sharing role, both audit
triggers on, 3,000 in a loop, CPU of the backend per transaction 133-153 µs before, 97-107 µs after;
the chain check of `verify_chain` over 330,000 records 7.1 and 8.5 s before, 5.5 and 6.2 s after.

Revision ID: 0022_audit_hash_stable
Revises: 0021_jsonb_statistics
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_audit_hash_stable"
down_revision: str | Sequence[str] | None = "0021_jsonb_statistics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "audit_log_hash(text, bigint, timestamp, text, text, text, text, jsonb)"


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {FUNCTION} STABLE")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {FUNCTION} IMMUTABLE")
