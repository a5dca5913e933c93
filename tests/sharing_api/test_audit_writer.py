"""The server's audit writer: grouped commits from many threads and processes keep the chain whole."""

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from registry.audit import verify_chain
from registry.migrate import upgrade
from sharing_api.audit import AccessEntry, GroupCommitAudit
from sharing_api.dependencies import get_audit
from tests.conftest import create_database, drop_database
from tests.sharing_api.support import person


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """A database of its own: the writer commits, from its own connections."""
    url = create_database("popex_audit")
    engine = create_engine(url)
    with engine.begin() as conn:
        upgrade(conn)
    engine.dispose()
    yield url
    drop_database(url)


def _entry(i: int) -> AccessEntry:
    return AccessEntry(
        client="c", end_user=f"u{i}", purpose="p", operation="lookup", outcome="ok", person_nos=[f"P{i:011d}"]
    )


def test_concurrent_writers_keep_the_chain_in_id_order(own_db: str) -> None:
    # Two writers stand for two server processes; eight threads each for their requests.
    writers = [GroupCommitAudit(own_db), GroupCommitAudit(own_db)]

    def requests(n: int) -> None:
        for i in range(40):
            writers[n % 2].write(_entry(n * 1000 + i))

    threads = [threading.Thread(target=requests, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine = create_engine(own_db)
    with Session(engine) as session:
        check = verify_chain(session=session)
        users = session.scalars(text("SELECT detail->>'end_user' FROM audit_log")).all()
    engine.dispose()
    assert check.ok and check.rows == 320
    assert sorted(users) == sorted(f"u{n * 1000 + i}" for n in range(8) for i in range(40))


def test_a_failed_audit_write_refuses_the_request(app, http, session, new_client) -> None:
    class Broken:
        def write(self, entry: AccessEntry) -> None:
            raise ConnectionError("database gone")

    p = person(session, name="保密")
    app.dependency_overrides[get_audit] = lambda: Broken()
    response = http.get(f"/api/v1/persons/{p.person_no}", headers=new_client())
    assert response.status_code == 503
    assert response.json()["code"] == "AUDIT_UNAVAILABLE"
    assert "保密" not in response.text and p.person_no not in response.text


def test_writer_reports_an_unreachable_database() -> None:
    writer = GroupCommitAudit("postgresql+psycopg2://nobody@127.0.0.1:1/none", timeout=20)
    with pytest.raises(OperationalError, match=r"(?i)connect"):
        writer.write(_entry(1))
