"""The audit log is append-only and its hash chain detects a tampered row."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from registry.audit import record_audit, verify_chain


def test_chain_verifies_and_links_rows(session) -> None:
    for i in range(5):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i), detail={"i": i})
    check = verify_chain(session=session)
    assert check.ok and check.rows == 5
    hashes = session.execute(text("SELECT prev_hash, hash FROM audit_log ORDER BY id")).all()
    assert hashes[0].prev_hash == "0" * 64
    assert all(hashes[i].prev_hash == hashes[i - 1].hash for i in range(1, 5))


def test_update_and_delete_are_refused(session) -> None:
    record_audit(session=session, actor="tester", action="test.write")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE audit_log SET actor = 'mallory'"))
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM audit_log"))


def test_tampered_row_is_detected(session) -> None:
    for i in range(4):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i))
    ids = session.scalars(text("SELECT id FROM audit_log ORDER BY id")).all()
    # A DBA who disables the guard trigger and edits a row is still caught by the chain.
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    session.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :id"), {"id": ids[2]})
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    check = verify_chain(session=session)
    assert not check.ok and check.first_bad_id == ids[2]


def _chain(session, n: int) -> list[int]:
    for i in range(n):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i))
    return list(session.scalars(text("SELECT id FROM audit_log ORDER BY id")))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 11, 100])
def test_chunks_verify_the_chain_as_one_pass_would(session, chunk: int) -> None:
    ids = _chain(session, 11)
    seen: list[tuple[int, int]] = []
    check = verify_chain(session=session, chunk=chunk, progress=lambda done, last: seen.append((done, last)))
    assert check.ok and check.rows == 11
    assert seen[-1] == (ids[-1], ids[-1]) and len(seen) == -(-11 // chunk)  # one report per chunk
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    # A removed row breaks the link of the row after it, wherever the chunks end.
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[5]})
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    assert verify_chain(session=session, chunk=chunk).first_bad_id == ids[6]


@pytest.mark.parametrize("chunk", [1, 4, 5, 100])
def test_a_tampered_row_is_found_whatever_the_chunk(session, chunk: int) -> None:
    ids = _chain(session, 9)
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    session.execute(text("UPDATE audit_log SET detail = '{\"x\": 1}' WHERE id = :id"), {"id": ids[4]})
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    check = verify_chain(session=session, chunk=chunk)
    assert not check.ok and check.first_bad_id == ids[4]


def test_records_appended_during_a_verification_are_left_for_the_next(session) -> None:
    _chain(session, 4)

    def meanwhile(done: int, last: int) -> None:  # a request audited while the check runs
        record_audit(session=session, actor="tester", action="test.write", object_id="late")

    assert verify_chain(session=session, chunk=2, progress=meanwhile).rows == 4
    assert verify_chain(session=session).rows == 6
