"""The sharing server's database role (migration 0103): it reads the population, appends to the audit
log, and is refused everything else by PostgreSQL itself."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from registry.migrate import upgrade
from sharing_api.audit import AccessEntry, append_access
from sharing_api.clients import create_client
from tests.conftest import admin_url, create_database, drop_database
from tests.sharing_api.support import person, policy

ROLE = "popex_sharing"

REFUSED = [
    "UPDATE person SET name = '某某'",
    "DELETE FROM person",
    "INSERT INTO person (person_no, status, provenance) VALUES ('P99999999999', 'active', '{}')",
    "UPDATE person_identifier SET person_id = 1",
    "DELETE FROM audit_log",
    "UPDATE audit_log SET detail = '{}'",
    "TRUNCATE audit_log",
    "UPDATE api_client SET status = 'active'",
    "SELECT count(*) FROM source_record",
    "SELECT count(*) FROM review_item",
    "SELECT count(*) FROM person_version",
    "SELECT count(*) FROM batch",
]


@pytest.fixture(scope="module")
def owner_engine(own_db: str) -> Iterator[Engine]:
    engine = create_engine(own_db)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("statement", REFUSED)
def test_the_role_is_refused_writes_and_other_tables(owner_engine: Engine, statement: str) -> None:
    with owner_engine.connect() as conn:
        conn.execute(text(f"SET LOCAL ROLE {ROLE}"))
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(statement))
        conn.rollback()


def test_the_role_reads_the_population_and_appends_a_chained_audit_record(owner_engine: Engine) -> None:
    with Session(owner_engine) as session:
        p = person(session, name="角色读")
        # The role writes only in a registered client's name (sharing migration 0105_audit_writer).
        create_client(session=session, code="role_t", name="角色测试", policy=policy(), operator="tester")
        session.commit()
        person_no, id_no = p.person_no, p.id_no
        session.execute(text(f"SET LOCAL ROLE {ROLE}"))
        assert (
            session.execute(
                text(
                    "SELECT p.name FROM person p JOIN person_identifier x ON x.person_id = p.id"
                    " WHERE x.id_type = 'RID' AND x.id_no = :no"
                ),
                {"no": id_no},
            ).scalar_one()
            == "角色读"
        )
        assert session.scalar(text("SELECT current_user")) == ROLE
        entry = AccessEntry(
            client="role_t",
            end_user="clerk-1",
            purpose="social_security",
            operation="lookup",
            outcome="ok",
            person_nos=[person_no],
            fields=["name"],
        )
        append_access(session, [entry])
        last = session.execute(text("SELECT detail, prev_hash FROM audit_log ORDER BY id DESC LIMIT 1")).one()
        session.commit()
    assert last.detail["client"] == "role_t" and last.detail["person_nos"] == [person_no]
    assert len(last.prev_hash) == 64  # linked by the chain trigger, which ran as the role


# (actor, action, the detail's client): what the role may not append (sharing migrations 0105, 0106).
FORGED = [
    pytest.param("nobody_t", "sharing.lookup", "nobody_t", id="a client never registered"),
    pytest.param("writer_t", "sharing.lookup", "role_other", id="in another client's detail"),
    pytest.param("writer_t", "sharing.lookup", None, id="no client in the detail"),
    pytest.param("writer_t", "operator.login", "writer_t", id="not a sharing record"),
    pytest.param("", "sharing.lookup", "", id="an empty actor"),
]
APPEND = text(
    "INSERT INTO audit_log (actor, action, detail, prev_hash, hash)"
    " VALUES (:actor, :action, jsonb_build_object('client', CAST(:client AS text)), '', '')"
)


@pytest.fixture(scope="module")
def writer_client(owner_engine: Engine) -> str:
    with Session(owner_engine) as session:
        create_client(session=session, code="writer_t", name="写入测试", policy=policy(), operator="tester")
        session.commit()
    return "writer_t"


@pytest.mark.parametrize(("actor", "action", "client"), FORGED)
def test_the_role_may_not_append_a_record_outside_its_kind_but_the_owner_may(
    owner_engine: Engine, writer_client: str, actor: str, action: str, client: str | None
) -> None:
    record = {"actor": actor, "action": action, "client": client}
    with owner_engine.connect() as conn:
        conn.execute(text(f"SET LOCAL ROLE {ROLE}"))
        with pytest.raises(ProgrammingError, match="只能以已登记接入单位的名义写入"):
            conn.execute(APPEND, record)
        conn.rollback()
    with owner_engine.connect() as conn:  # the owner (the migrating user) writes as before
        conn.execute(APPEND, record)
        assert conn.scalar(text("SELECT actor FROM audit_log ORDER BY id DESC LIMIT 1")) == actor
        conn.rollback()


def test_the_role_appends_a_sharing_record_in_its_clients_name(
    owner_engine: Engine, writer_client: str
) -> None:
    with owner_engine.connect() as conn:
        conn.execute(text(f"SET LOCAL ROLE {ROLE}"))
        conn.execute(APPEND, {"actor": writer_client, "action": "sharing.verify", "client": writer_client})
        assert len(conn.scalar(text("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1"))) == 64
        conn.rollback()


def _as_admin(statement: str) -> None:
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


@pytest.fixture
def unprivileged_owner() -> Iterator[tuple[str, str]]:
    """A database owned by a login role that may not create roles; yields (user, URL as that user)."""
    user = f"popex_t_{uuid.uuid4().hex[:8]}"
    _as_admin(f'CREATE ROLE "{user}" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB')
    url = create_database("popex_roleowner")
    name = make_url(url).database
    _as_admin(f'ALTER DATABASE "{name}" OWNER TO "{user}"')
    try:
        yield user, make_url(url).set(username=user, password=None).render_as_string(hide_password=False)
    finally:
        drop_database(url)
        _as_admin(f'DROP ROLE IF EXISTS "{user}"')


def test_a_migrating_user_without_createrole_is_told_what_the_dba_should_run(
    unprivileged_owner: tuple[str, str],
) -> None:
    user, url = unprivileged_owner
    done = subprocess.run(  # as the installed command runs it (popex.cli.run)
        [sys.executable, "-c", "from popex.cli import run; run()", "db", "upgrade"],
        env={**os.environ, "POPEX_DATABASE_URL": url, "COLUMNS": "200"},  # no wrapping by rich
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"数据库权限不足：数据库用户 {user} 无权创建或取得数据库角色 {ROLE}" in done.stderr
    assert (
        f"请数据库管理员执行：CREATE ROLE {ROLE} NOLOGIN; GRANT {ROLE} TO {user}; 然后重新执行迁移"
        in done.stderr
    )
    assert "Traceback" not in done.stderr + done.stdout
    engine = create_engine(url)
    with engine.connect() as conn:  # the migration's one transaction left nothing behind
        assert conn.scalar(text("SELECT to_regclass('person') IS NULL"))
    engine.dispose()


def test_once_the_dba_grants_the_role_the_same_user_migrates_and_its_connections_take_it(
    unprivileged_owner: tuple[str, str],
) -> None:
    user, url = unprivileged_owner
    _as_admin(f'GRANT {ROLE} TO "{user}"')
    owner = create_engine(url)
    with owner.begin() as conn:
        upgrade(conn)
    owner.dispose()
    engine = create_engine(url, connect_args={"options": f"-c role={ROLE}"})  # as the server connects
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_user")) == ROLE
            assert conn.scalar(text("SELECT count(*) FROM person")) == 0
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("DELETE FROM person"))
    finally:
        engine.dispose()
