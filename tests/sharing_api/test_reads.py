"""The person reads: prepared once per connection, rows as the Core statements shape them, and the
event loop's connection dropped and answered DATABASE_UNAVAILABLE when it breaks."""

from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.reads import BY_DOCUMENT, LoopConnection, PersonReader, Statement
from tests.sharing_api.support import person


def _prepared(session: Session) -> list[str]:
    return list(session.scalars(text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'popex_%'")))


def test_statements_are_prepared_once_per_connection(session: Session) -> None:
    p = person(session, name="张三")
    first, second = PersonReader.of_session(session), PersonReader.of_session(session)
    assert first.by_document("RID", p.id_no)["person_no"] == p.person_no
    assert second.by_document("RID", p.id_no)["name"] == "张三"  # a new reader, the same connection
    assert _prepared(session).count(BY_DOCUMENT.name) == 1


def test_rows_carry_the_columns_and_positions_asked(session: Session) -> None:
    a = person(session, name="甲", birth_date=date(1980, 1, 2))
    b = person(session, name="乙", status="retired", merged_into=a.id)
    reader = PersonReader.of_session(session)
    assert reader.by_number(b.person_no)["merged_into"] == a.id
    assert reader.by_id(a.id)["birth_date"] == date(1980, 1, 2)
    assert reader.by_number("P99999999999") is None
    rows = reader.by_documents(["RID", "RID", "RID"], [b.id_no, "330000000000000000", a.id_no])
    assert sorted((r["n"], r["person_no"]) for r in rows) == [(1, b.person_no), (3, a.person_no)]
    assert reader.by_documents([], []) == []


def test_named_parameters_become_positional_in_order_of_first_use() -> None:
    from sqlalchemy import bindparam, select

    from registry.models import Person

    st = Statement.of(
        "popex_t", select(Person.id).where(Person.name == bindparam("b"), Person.sex == bindparam("a"))
    )
    assert "person.name = $1 AND person.sex = $2" in st.prepare_sql
    assert st.execute_sql == "EXECUTE popex_t(%(b)s, %(a)s)"


def test_a_broken_loop_connection_is_dropped_and_replaced(own_db: str) -> None:
    engine = create_engine(own_db, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")
    loop = LoopConnection(lambda: engine)
    reader = loop.reader()
    assert reader.by_number("P00000000001") is None
    backend = reader._conn.get_backend_pid()
    admin = create_engine(own_db, isolation_level="AUTOCOMMIT")
    with admin.connect() as other:  # the database ends the loop's connection (a restart, a kill)
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    admin.dispose()
    with pytest.raises(SharingError) as refused:
        reader.by_number("P00000000001")
    assert refused.value.code == ErrorCode.DATABASE_UNAVAILABLE
    again = loop.reader()  # the next request opens a new connection, and prepares again
    assert again.by_number("P00000000001") is None
    assert again._conn.get_backend_pid() != backend
    engine.dispose()


def test_an_unreachable_database_is_database_unavailable() -> None:
    engine = create_engine(
        "postgresql+psycopg2://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    with pytest.raises(SharingError) as refused:
        LoopConnection(lambda: engine).reader()
    assert refused.value.code == ErrorCode.DATABASE_UNAVAILABLE
