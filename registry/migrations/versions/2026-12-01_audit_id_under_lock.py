"""Audit ids drawn under the chain's lock, so the chain follows id order whoever writes.

The column default draws an id before the row reaches the trigger; two concurrent writers could draw
ids in one order and take the chain's lock in the other, and verify_chain, which reads in id order,
would then report a break that is no tampering. The trigger now draws the id after taking the lock
(the default's id is left unused: ids have gaps, which nothing relies on).

Revision ID: 0005_audit_id_under_lock
Revises: 0004_person_fillfactor
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_audit_id_under_lock"
down_revision: str | Sequence[str] | None = "0004_person_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAIN = """
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit_log'));
    {draw_id}
    SELECT hash INTO NEW.prev_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(NEW.prev_hash, repeat('0', 64));
    NEW.hash := audit_log_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action, NEW.object_type,
                               NEW.object_id, NEW.detail);
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.execute(CHAIN.format(draw_id="NEW.id := nextval('audit_log_id_seq');"))


def downgrade() -> None:
    op.execute(CHAIN.format(draw_id=""))
