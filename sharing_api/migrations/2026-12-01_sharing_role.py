"""The sharing server's own database role: reads the population, appends to the audit log, nothing else.

The sharing service is the part other departments reach over the network; its server connections
act as `popex_sharing` (SET ROLE at connect, sharing_api/config.py `database_role`), which may read
the tables the service answers from and append to the audit log, and may not change or remove
anything: no UPDATE, DELETE or TRUNCATE anywhere, no read of the exchange's source records, the
review queue or the other platforms' tables. A mistake in the service cannot write the population
or rewrite history. (The login role could still take its own privileges back with SET ROLE: where
that matters, the server logs in as a role of its own that is only a member of popex_sharing.)

The role is created here when the migrating user may create roles (PostgreSQL's roles belong to the
whole server, not one database: an existing one is reused) and granted to that user, so that its
connections may take it. Where a DBA creates roles, this stops with what to run.

A later migration adding a table the service reads must grant SELECT on it to popex_sharing (the
served-app tests in tests/sharing_api/test_server.py call every endpoint through the role).

Revision ID: 0103_sharing_role
Revises: 0102_audit_person_index
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0103_sharing_role"
down_revision: str | Sequence[str] | None = "0102_audit_person_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "popex_sharing"
READ = ("person", "person_identifier", "change_event", "api_client")

# Both refusals (no right to create the role, or to grant it to oneself) say what a DBA should run.
REFUSED = f"""
RAISE EXCEPTION '数据库用户 % 无权创建或取得数据库角色 {ROLE}（需要 CREATEROLE 权限）', current_user
    USING ERRCODE = 'insufficient_privilege',
          HINT = format('请数据库管理员执行：CREATE ROLE {ROLE} NOLOGIN; GRANT {ROLE} TO %I; 然后重新执行迁移',
                        current_user);
"""
CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION
            WHEN duplicate_object THEN NULL;  -- created meanwhile by another database's migration
            WHEN insufficient_privilege THEN {REFUSED}
        END;
    END IF;
    IF NOT pg_has_role(current_user, '{ROLE}', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT {ROLE} TO %I', current_user);
        EXCEPTION
            WHEN insufficient_privilege THEN {REFUSED}
        END;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    op.execute(f"GRANT SELECT ON {', '.join(READ)} TO {ROLE}")
    # SELECT on the log: the chain trigger reads the last hash, the access history reads records.
    op.execute(f"GRANT SELECT, INSERT ON audit_log TO {ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE audit_log_id_seq TO {ROLE}")


def downgrade() -> None:
    # The role itself stays: it belongs to the server, and other databases may grant it privileges.
    op.execute(f"REVOKE ALL ON {', '.join(READ)}, audit_log FROM {ROLE}")
    op.execute(f"REVOKE ALL ON SEQUENCE audit_log_id_seq FROM {ROLE}")
