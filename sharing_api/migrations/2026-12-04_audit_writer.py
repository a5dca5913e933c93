"""What the sharing server's role may write to the audit log: its own kind of record, in a registered
client's name.

The chain trigger (registry 0010_audit_canonical) sets every record's time; this trigger checks the
rest of what a connection acting as popex_sharing (the server's role: SET ROLE, or a login role that
inherits it) sends: the action is a sharing one (`sharing.…`), the actor is the record's client, and
that client is registered in api_client. A leaked server credential can then no longer add records
in an invented client's name, or pose as an operator or a batch. Superusers and the log's owner
(the migrating user, which is granted popex_sharing by 0103) write as before.

Its cost, paid under the chain's lock: 10,000 records in 100 group inserts as the role took 0.39-0.40 s
with the check and 0.25-0.27 s without (about 14 µs a record).

Revision ID: 0105_audit_writer
Revises: 0104_verify_failure
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0105_audit_writer"
down_revision: str | Sequence[str] | None = "0104_verify_failure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "popex_sharing"

WRITER = f"""
CREATE FUNCTION audit_log_sharing_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_has_role(current_user, '{ROLE}', 'USAGE')
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND current_user <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'audit_log'::regclass)
       AND (NEW.action NOT LIKE 'sharing.%'
            OR NEW.actor IS DISTINCT FROM NEW.detail ->> 'client'
            OR NOT EXISTS (SELECT 1 FROM api_client WHERE code = NEW.actor)) THEN
        RAISE EXCEPTION '共享服务的数据库角色 % 只能以已登记接入单位的名义写入共享服务的审计记录（接入单位 %，操作 %）',
                        current_user, NEW.actor, NEW.action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_sharing_writer BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_sharing_writer();
"""


def upgrade() -> None:
    op.execute(WRITER)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_sharing_writer ON audit_log")
    op.execute("DROP FUNCTION audit_log_sharing_writer()")
