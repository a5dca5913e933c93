"""The server's audit writer: grouped commits from many requests and processes keep the chain whole."""

import asyncio
import socket
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from registry.audit import record_audit, verify_chain
from sharing_api.audit import AccessEntry, GroupCommitAudit
from sharing_api.dependencies import Backends
from tests.sharing_api.support import birth_date_iso, person


def _entry(i: int) -> AccessEntry:
    return AccessEntry(
        client="c", end_user=f"u{i}", purpose="p", operation="lookup", outcome="ok", person_nos=[f"P{i:011d}"]
    )


def _chain(url: str) -> tuple[bool, int, list[str]]:
    engine = create_engine(url)
    with Session(engine) as session:
        check = verify_chain(session=session)
        users = session.scalars(text("SELECT detail->>'end_user' FROM audit_log")).all()
    engine.dispose()
    return check.ok, check.rows, [u for u in users if u is not None]


def test_concurrent_writers_keep_the_chain_in_id_order(own_db: str) -> None:
    # Two writers, each with its own connection, stand for two server processes; 320 requests
    # await them at once, and a clerk's operation (an ORM insert through the same trigger) writes
    # from a thread meanwhile.
    writers = [GroupCommitAudit(own_db), GroupCommitAudit(own_db)]

    def clerk() -> None:
        engine = create_engine(own_db)
        for i in range(40):
            with Session(engine) as session:
                record_audit(
                    session=session, actor="clerk", action="person.merge", detail={"end_user": f"k{i}"}
                )
                session.commit()
        engine.dispose()

    async def requests() -> None:
        await asyncio.gather(*(writers[n % 2].write([_entry(n)]) for n in range(320)))

    other = threading.Thread(target=clerk)
    other.start()
    asyncio.run(requests())
    other.join()
    ok, rows, users = _chain(own_db)
    assert ok and rows == 360
    assert sorted(users) == sorted([f"u{n}" for n in range(320)] + [f"k{i}" for i in range(40)])


def test_requests_waiting_together_share_a_commit(own_db: str) -> None:
    writer = GroupCommitAudit(own_db)
    engine = create_engine(own_db)
    with engine.connect() as conn:
        before = conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM audit_log"))

    async def burst() -> None:
        await writer.write([_entry(0)])  # connects
        await asyncio.gather(*(writer.write([_entry(i)]) for i in range(1, 201)))

    asyncio.run(burst())
    with engine.connect() as conn:
        # xmin is the inserting transaction: one value per commit (`at` is each row's own clock time)
        commits = conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM audit_log")) - before
    engine.dispose()
    assert 2 <= commits <= 3  # the first record alone, then the 200 in one group (or two)


def test_a_failed_audit_write_refuses_the_request(app, http, session, new_client) -> None:
    class Broken:
        async def write(self, entries: list[AccessEntry]) -> None:
            raise ConnectionError("database gone")

    p = person(session, name="保密")
    backends = Backends.of_session(session)
    app.state.sharing_backends = Backends(backends.session, backends.reads, Broken())
    for response in (
        http.get(f"/api/v1/persons/{p.person_no}", headers=new_client()),
        http.post(
            "/api/v1/persons/search",
            json={"name": "保密", "birth_date": birth_date_iso(p)},
            headers=new_client(),
        ),
    ):
        assert response.status_code == 503
        assert response.json()["code"] == "AUDIT_UNAVAILABLE"
        assert "保密" not in response.text and p.person_no not in response.text


def test_writer_reports_an_unreachable_database() -> None:
    writer = GroupCommitAudit("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(Exception, match=r"(?i)connect"):
        asyncio.run(writer.write([_entry(1)]))


def test_a_chain_lock_held_elsewhere_fails_the_group_closed_within_the_lock_timeout(own_db: str) -> None:
    engine = create_engine(own_db)
    writer = GroupCommitAudit(own_db, lock_timeout=0.3)
    with Session(engine) as clerk:  # appended to the chain and left open: it holds the chain's lock
        record_audit(session=clerk, actor="clerk", action="person.merge", detail={})
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)lock timeout"):
            asyncio.run(writer.write([_entry(90007)]))
        waited = time.monotonic() - started
        clerk.rollback()
    asyncio.run(writer.write([_entry(90008)]))  # the lock gone, the next group commits
    engine.dispose()
    assert waited >= 0.3  # it waited for the lock; the message says the lock timeout, not another, ended it
    ok, _, users = _chain(own_db)
    assert ok and "u90008" in users and "u90007" not in users


def _until_no_audit_insert_runs(engine) -> None:
    deadline = time.monotonic() + 10
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'popex-audit' AND state = 'active'"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(query) == 0:
                return
        time.sleep(0.02)
    raise AssertionError("the cancelled audit INSERT is still running")


def test_an_unanswered_commit_fails_the_group_closed_after_the_answer_timeout(own_db: str) -> None:
    # The server's own timeouts set long: only this side's answer_timeout can end the wait.
    writer = GroupCommitAudit(own_db, lock_timeout=30, statement_timeout=30, answer_timeout=0.3)
    engine = create_engine(own_db)
    with Session(engine) as clerk:  # holds the chain's lock: the group's INSERT is not answered
        record_audit(session=clerk, actor="clerk", action="person.merge", detail={})
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="unanswered"):
            asyncio.run(writer.write([_entry(90011)]))
        waited = time.monotonic() - started
        _until_no_audit_insert_runs(engine)  # the cancel has landed before the lock goes
        clerk.rollback()
    asyncio.run(writer.write([_entry(90012)]))  # a new connection; the abandoned INSERT is gone
    engine.dispose()
    assert waited >= 0.3
    ok, _, users = _chain(own_db)
    assert ok and "u90012" in users and "u90011" not in users


def test_a_group_larger_than_the_socket_buffer_is_written_whole(own_db: str) -> None:
    # One entry naming 300,000 person numbers: ~5 MB of statement, many writes of the socket.
    big = AccessEntry(
        client="c",
        end_user="u-big",
        purpose="p",
        operation="baseline",
        outcome="ok",
        person_nos=[f"P{i:011d}" for i in range(300_000)],
    )
    writer = GroupCommitAudit(own_db, answer_timeout=10)
    # A small send buffer on the writer's socket, so that the statement cannot go in one write.
    with socket.fromfd(writer._connect().fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def both() -> None:
        await asyncio.gather(writer.write([big]), writer.write([_entry(90021)]))

    asyncio.run(both())
    engine = create_engine(own_db)
    with engine.connect() as conn:
        count = conn.scalar(
            text(
                "SELECT jsonb_array_length(detail -> 'person_nos') FROM audit_log WHERE detail->>'end_user' = 'u-big'"
            )
        )
    engine.dispose()
    ok, _, users = _chain(own_db)
    assert count == 300_000 and ok and "u90021" in users
