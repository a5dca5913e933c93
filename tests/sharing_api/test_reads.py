"""The person reads: prepared once per connection, rows as the Core statements shape them; the event
loop's reads of one pass in one statement, each answered its own row, and DATABASE_UNAVAILABLE (the
connection dropped and replaced) when the database breaks or does not answer."""

import asyncio
import time
from datetime import date
from typing import Any

import pytest
from psycopg2.extras import wait_select as psycopg2_wait
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.grouped import Statement
from sharing_api.reads import BY_DOCUMENT, GroupedReads, PersonReader
from tests.sharing_api.support import person


def _prepared(session: Session) -> list[str]:
    return list(session.scalars(text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'popex_%'")))


def test_statements_are_prepared_once_per_connection(session: Session) -> None:
    p = person(session, name="张三")
    assert p.id_no is not None
    first, second = PersonReader.of_session(session), PersonReader.of_session(session)
    found = first.by_document("RID", p.id_no)
    assert found is not None and found["person_no"] == p.person_no
    again = second.by_document("RID", p.id_no)
    assert again is not None and again["name"] == "张三"  # a new reader, the same connection
    assert _prepared(session).count(BY_DOCUMENT.name) == 1


def test_rows_carry_the_columns_and_positions_asked(session: Session) -> None:
    a = person(session, name="甲", birth_date=date(1980, 1, 2))
    b = person(session, name="乙", status="retired", merged_into=a.id)
    assert a.id_no is not None and b.id_no is not None
    reader = PersonReader.of_session(session)
    retired = reader.by_number(b.person_no)
    assert retired is not None and retired["merged_into"] == a.id
    survivor = reader.by_id(a.id)
    assert survivor is not None and survivor["birth_date"] == date(1980, 1, 2)
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


class CountedReads(GroupedReads):
    """GroupedReads that count the statements they send."""

    def __init__(self, url: str) -> None:
        super().__init__(url, statement_timeout=2.0)
        self.sent: list[int] = []

    def parameters(self, items: list[Any]) -> dict[str, Any]:
        self.sent.append(len(items))
        return super().parameters(items)


def test_the_reads_of_one_loop_pass_share_one_statement(own_db: str) -> None:
    engine = create_engine(own_db)
    with Session(engine) as session:
        a = person(session, name="甲", birth_date=date(1980, 1, 2))
        b = person(session, name="乙", status="retired", merged_into=a.id)
        session.commit()
        a_id, a_no, a_doc, b_no, b_doc = a.id, a.person_no, a.id_no, b.person_no, b.id_no
    assert a_doc is not None and b_doc is not None
    engine.dispose()
    reads = CountedReads(own_db)

    async def one_pass() -> list[Any]:
        return await asyncio.gather(
            reads.by_document("RID", a_doc),
            reads.by_number(b_no),
            reads.by_id(a_id),
            reads.by_document("RID", "330000000000000000"),
            reads.by_document("PASSPORT", a_doc),  # the number, but not of this type
            reads.by_number(a_no),
            reads.by_document("RID", b_doc),
            reads.by_number(a_no),  # the same key twice: each request its own answer
            reads.by_id(2**62),
        )

    answers = asyncio.run(one_pass())
    assert reads.sent == [9]
    assert [None if r is None else r["person_no"] for r in answers] == [
        a_no, b_no, a_no, None, None, a_no, b_no, a_no, None,
    ]  # fmt: skip
    assert answers[1]["merged_into"] == a_id and answers[0]["birth_date"] == date(1980, 1, 2)
    assert "kind" not in answers[0] and "n" not in answers[0]

    async def one_by_one() -> list[Any]:
        return [await reads.by_number(a_no), await reads.by_id(a_id)]

    assert [r["person_no"] for r in asyncio.run(one_by_one())] == [a_no, a_no]
    assert reads.sent == [9, 1, 1]  # prepared once: the connection of the first pass is kept


def test_a_broken_read_connection_fails_its_group_and_is_replaced(own_db: str) -> None:
    reads = CountedReads(own_db)
    assert asyncio.run(reads.by_number("P99999999999")) is None
    backend = reads._connection.get_backend_pid()
    admin = create_engine(own_db, isolation_level="AUTOCOMMIT")
    with admin.connect() as other:  # the database ends the connection (a restart, a kill)
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    admin.dispose()

    async def two() -> tuple[object, object]:
        return await asyncio.gather(
            reads.by_number("P99999999999"), reads.by_id(2**62), return_exceptions=True
        )

    failed = asyncio.run(two())
    codes = [f.code if isinstance(f, SharingError) else f for f in failed]
    assert codes == [ErrorCode.DATABASE_UNAVAILABLE] * 2
    assert asyncio.run(reads.by_number("P99999999999")) is None  # a new connection, prepared again
    assert reads._connection.get_backend_pid() != backend


def test_an_unreachable_database_is_database_unavailable() -> None:
    reads = GroupedReads("postgresql://nobody@127.0.0.1:1/none", statement_timeout=1.0)
    with pytest.raises(SharingError) as refused:
        asyncio.run(reads.by_number("P99999999999"))
    assert refused.value.code == ErrorCode.DATABASE_UNAVAILABLE


def test_a_read_unanswered_in_time_is_cancelled_and_database_unavailable(own_db: str) -> None:
    # The person table locked by another transaction: the read waits on the lock, unanswered.
    reads = GroupedReads(own_db, statement_timeout=30.0, answer_timeout=0.5)
    assert asyncio.run(reads.by_id(2**62)) is None
    engine = create_engine(own_db)
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE person IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(SharingError) as refused:
            asyncio.run(reads.by_id(2**62))
        waited = time.monotonic() - started
        holder.rollback()
    engine.dispose()
    assert refused.value.code == ErrorCode.DATABASE_UNAVAILABLE
    assert waited < 10  # the answer timeout, not the 30 s statement timeout
    assert asyncio.run(reads.by_id(2**62)) is None


def test_the_grouped_reads_use_the_generic_plan(own_db: str) -> None:
    # Planned for each group's arrays, one read cost PostgreSQL five times as much (reads.py).
    reads = GroupedReads(own_db, statement_timeout=2.0)
    assert asyncio.run(reads.by_id(2**62)) is None
    with reads._connection.cursor() as cur:  # the asynchronous connection is idle between groups
        cur.execute("SHOW plan_cache_mode")
        psycopg2_wait(reads._connection)
        assert cur.fetchone() == ("force_generic_plan",)
