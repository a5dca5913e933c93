"""The audit log cannot be shortened, emptied, forged or re-chained unnoticed (issue 16.4): each tamper
the probe found is performed and `verify_log` fails and names it; a session's DateStyle is no alarm."""

import json
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry.anchors import AnchorRefused, AnchorSettings, read_anchors, verify_log, write_anchor
from registry.audit import record_audit

KEY = b"test-anchor-key"


@pytest.fixture
def settings(tmp_path: Path) -> AnchorSettings:
    return AnchorSettings(audit_anchor_key=SecretStr(KEY.decode()), audit_anchor_dir=tmp_path / "anchors")


def _chain(session: Session, n: int) -> list[int]:
    for i in range(n):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i), detail={"i": i})
    return list(session.scalars(text("SELECT id FROM audit_log ORDER BY id")))


def _anchored(session: Session, settings: AnchorSettings, n: int = 6) -> list[int]:
    ids = _chain(session, n)
    assert write_anchor(session=session, settings=settings, key=KEY) is not None
    verdict = verify_log(session=session, settings=settings)
    assert verdict.ok and verdict.anchors == 1, verdict.problems
    return ids


def _unguarded(session: Session, statement: str, params: dict[str, object] | None = None) -> None:
    """What a superuser or the owner can do: switch the guards off, run the statement, switch them on
    (the log's and each partition's own: a partition has its TRUNCATE trigger, registry/partitions.py)."""
    tables = ["audit_log", *session.scalars(text(PARTITIONS))]
    for table in tables:
        session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    session.execute(text(statement), params or {})
    for table in tables:
        session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


PARTITIONS = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'audit_log'::regclass"


def _rehash_after(session: Session, first: int) -> None:
    """Re-chain every row from `first` on with the database's own hash function, as a forger would."""
    _unguarded(
        session,
        f"""
        DO $$
        DECLARE r record; link text;
        BEGIN
            SELECT hash INTO link FROM audit_log WHERE id < {first} ORDER BY id DESC LIMIT 1;
            link := coalesce(link, repeat('0', 64));
            FOR r IN SELECT * FROM audit_log WHERE id >= {first} ORDER BY id LOOP
                UPDATE audit_log SET prev_hash = link,
                       hash = audit_log_hash(link, r.id, r.at, r.actor, r.action, r.object_type, r.object_id, r.detail)
                WHERE id = r.id RETURNING hash INTO link;
            END LOOP;
        END $$
        """,
    )


def test_no_role_may_update_delete_or_truncate(session: Session) -> None:
    _chain(session, 2)
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(statement))
    granted = session.execute(
        text(
            "SELECT grantee, privilege_type FROM information_schema.role_table_grants"
            " WHERE table_name = 'audit_log' AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')"
        )
    ).all()
    assert granted == []


def test_deleting_the_newest_rows_is_found(session: Session, settings: AnchorSettings) -> None:
    ids = _anchored(session, settings)
    _unguarded(session, "DELETE FROM audit_log WHERE id >= :id", {"id": ids[-2]})
    verdict = verify_log(session=session, settings=settings)
    assert verdict.check.first_bad_id is None  # the chain alone still verifies
    assert not verdict.ok and any("截短" in p and f"id={ids[-1]}" in p for p in verdict.problems)


def test_truncating_is_found(session: Session, settings: AnchorSettings) -> None:
    _anchored(session, settings)
    _unguarded(session, "TRUNCATE audit_log")
    verdict = verify_log(session=session, settings=settings)
    assert not verdict.ok and any("清空" in p for p in verdict.problems)


def test_a_tamper_re_hashed_to_the_end_is_found(session: Session, settings: AnchorSettings) -> None:
    ids = _anchored(session, settings)
    _unguarded(session, "UPDATE audit_log SET actor = 'mallory' WHERE id = :id", {"id": ids[2]})
    assert verify_log(session=session, settings=settings).check.first_bad_id == ids[2]
    _rehash_after(session, ids[2])
    verdict = verify_log(session=session, settings=settings)
    assert verdict.check.first_bad_id is None
    assert not verdict.ok and any("重新计算了哈希" in p and f"id={ids[-1]}" in p for p in verdict.problems)
    with pytest.raises(AnchorRefused):  # and the re-chained log is not anchored over
        write_anchor(session=session, settings=settings, key=KEY)


def test_a_row_removed_and_the_rest_re_chained_is_found(session: Session, settings: AnchorSettings) -> None:
    ids = _anchored(session, settings)
    _unguarded(session, "DELETE FROM audit_log WHERE id = :id", {"id": ids[1]})
    _rehash_after(session, ids[2])
    verdict = verify_log(session=session, settings=settings)
    assert verdict.check.first_bad_id is None and not verdict.ok


def test_the_sharing_role_cannot_set_the_time_or_invent_a_client(session: Session) -> None:
    record_audit(session=session, actor="tester", action="test.write")
    insert = (
        "INSERT INTO audit_log (at, actor, action, detail, prev_hash, hash)"
        " VALUES ('2020-01-01', :client, 'sharing.lookup', CAST(:detail AS jsonb), '', '')"
    )
    with pytest.raises(DBAPIError, match="已登记接入单位"), session.begin_nested():
        session.execute(text("SET LOCAL ROLE popex_sharing"))
        session.execute(text(insert), {"client": "ghost", "detail": json.dumps({"client": "ghost"})})
    session.execute(
        text(
            "INSERT INTO api_client (code, name, key_hash, status, policy)"
            " VALUES ('anchor_t', '测试', 'anchor-t-key-hash', 'active', '{}')"
        )
    )
    with pytest.raises(DBAPIError, match="已登记接入单位"), session.begin_nested():
        session.execute(text("SET LOCAL ROLE popex_sharing"))  # a real client, but not the record's
        session.execute(text(insert), {"client": "anchor_t", "detail": json.dumps({"client": "ghost"})})
    with session.begin_nested():
        session.execute(text("SET LOCAL ROLE popex_sharing"))
        session.execute(text(insert), {"client": "anchor_t", "detail": json.dumps({"client": "anchor_t"})})
    at = session.scalar(text("SELECT at FROM audit_log ORDER BY id DESC LIMIT 1"))
    assert at is not None and at > datetime(2026, 1, 1)  # the server's clock, not the sender's


def test_a_row_forged_past_the_triggers_is_found(session: Session, settings: AnchorSettings) -> None:
    """A superuser appending a well-chained row with an invented time and client: time goes back."""
    _anchored(session, settings)
    _unguarded(
        session,
        """
        INSERT INTO audit_log (id, at, actor, action, detail, prev_hash, hash)
        SELECT nextval('audit_log_id_seq'), '2020-01-01', 'ghost', 'sharing.lookup', '{"client": "ghost"}',
               h.hash, audit_log_hash(h.hash, currval('audit_log_id_seq'), '2020-01-01', 'ghost',
                                      'sharing.lookup', NULL, NULL, '{"client": "ghost"}')
        FROM (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) AS h
        """,
    )
    forged = session.scalar(text("SELECT max(id) FROM audit_log"))
    verdict = verify_log(session=session, settings=settings)
    assert verdict.check.first_bad_id is None
    assert not verdict.ok and any(f"id={forged}" in p and "时间" in p for p in verdict.problems)


def test_an_edited_anchor_is_found(session: Session, settings: AnchorSettings) -> None:
    _anchored(session, settings)
    line = json.loads(settings.path.read_text())
    settings.path.write_text(json.dumps({**line, "count": line["count"] - 1}) + "\n")
    verdict = verify_log(session=session, settings=settings)
    assert not verdict.ok and any("签名不符" in p for p in verdict.problems)


@pytest.mark.parametrize(
    "setting",
    [
        "DateStyle = 'SQL, DMY'",
        "DateStyle = 'German'",
        "DateStyle = 'Postgres, MDY'",
        "TimeZone = 'Asia/Tokyo'",
    ],
)
def test_another_date_style_is_no_false_alarm(
    session: Session, settings: AnchorSettings, setting: str
) -> None:
    _anchored(session, settings, 3)
    session.execute(text(f"SET LOCAL {setting}"))  # written and verified in another style
    session.execute(
        text(
            "INSERT INTO audit_log (actor, action, detail, prev_hash, hash) VALUES ('t', 'test.write', '{}', '', '')"
        )
    )
    verdict = verify_log(session=session, settings=settings)
    assert verdict.ok, verdict.problems
    session.execute(text("RESET DateStyle"))
    session.execute(text("RESET TimeZone"))
    assert verify_log(session=session, settings=settings).ok


def test_the_hash_input_is_unambiguous(session: Session) -> None:
    """Fields that concat_ws ran together (a NULL skipped, a '|' inside a value) now hash apart."""
    same = session.execute(
        text(
            "SELECT audit_log_hash('p', 1, '2026-01-01', 'a', 'b', NULL, 'c|d', '{}')"
            "     = audit_log_hash('p', 1, '2026-01-01', 'a', 'b', 'c', 'd', '{}') AS pipe,"
            "       audit_log_hash('p', 1, '2026-01-01', 'a', 'b', NULL, 'c', '{}')"
            "     = audit_log_hash('p', 1, '2026-01-01', 'a', 'b', 'c', NULL, '{}') AS null_moved"
        )
    ).one()
    assert (same.pipe, same.null_moved) == (False, False)


def test_anchors_are_json_lines_appended_owner_only(session: Session, settings: AnchorSettings) -> None:
    _chain(session, 2)
    first = write_anchor(session=session, settings=settings, key=KEY)
    _chain(session, 1)
    second = write_anchor(session=session, settings=settings, key=KEY)
    anchors, problems = read_anchors(settings.path)
    assert problems == [] and anchors == [first, second]
    assert settings.path.stat().st_mode & 0o777 == 0o600
    assert verify_log(session=session, settings=settings).anchors == 2


def test_the_migration_re_hashes_a_verified_log_and_refuses_a_tampered_one() -> None:
    from sqlalchemy import create_engine

    from registry.audit import verify_chain
    from registry.migrate import downgrade, upgrade
    from tests.conftest import migrated_database

    insert = (
        "INSERT INTO audit_log (actor, action, object_id, detail, prev_hash, hash)"
        " VALUES ('t', 'test.write', :i, '{\"a\": \"x|y\"}', '', '')"
    )
    with migrated_database("popex_auditmig") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                downgrade(conn, "0009_identifier_once")
            with engine.begin() as conn:
                for i in range(5):
                    conn.execute(text(insert), {"i": str(i)})
                old = conn.execute(text("SELECT id, hash FROM audit_log ORDER BY id")).all()
            with engine.begin() as conn:
                upgrade(conn)
            with Session(engine) as session:
                check = verify_chain(session=session)
                rows = session.execute(
                    text("SELECT id, hash, action, detail FROM audit_log ORDER BY id")
                ).all()
            assert check.ok and check.rows == 6
            assert [r.id for r in rows[:5]] == [r.id for r in old]
            assert all(new.hash != before.hash for new, before in zip(rows, old, strict=False))  # re-hashed
            assert (rows[-1].action, rows[-1].detail) == ("audit.canonical", {"rehashed": 5})

            with engine.begin() as conn:  # back: re-hashed with the old function, then tampered
                downgrade(conn, "0009_identifier_once")
                assert conn.execute(text("SELECT id, hash FROM audit_log ORDER BY id LIMIT 5")).all() == old
                conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
                conn.execute(text("UPDATE audit_log SET actor = 'm' WHERE id = :id"), {"id": old[1].id})
                conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
            with pytest.raises(Exception, match=f"id={old[1].id}"), engine.begin() as conn:
                upgrade(conn)
        finally:
            engine.dispose()


def test_popex_audit_anchor_and_verify(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import contextmanager

    from typer.testing import CliRunner

    from popex.cli import app

    @contextmanager
    def scope():  # type: ignore[no-untyped-def]
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)
    monkeypatch.setenv("POPEX_AUDIT_ANCHOR_DIR", str(tmp_path))
    runner = CliRunner()
    ids = _chain(session, 4)
    assert runner.invoke(app, ["audit", "anchor"]).exit_code == 2  # no key: says what to set
    monkeypatch.setenv("POPEX_AUDIT_ANCHOR_KEY", KEY.decode())
    anchored = runner.invoke(app, ["audit", "anchor"])
    assert anchored.exit_code == 0 and f"id={ids[-1]}" in anchored.output
    passed = runner.invoke(app, ["audit", "verify"])
    assert passed.exit_code == 0 and "与 1 个锚点相符" in passed.output and "已签新锚点" in passed.output
    _unguarded(session, "DELETE FROM audit_log WHERE id = :id", {"id": ids[-1]})
    failed = runner.invoke(app, ["audit", "verify"])
    assert failed.exit_code == 1 and "截短" in failed.output and f"id={ids[-1]}" in failed.output
    assert runner.invoke(app, ["audit", "anchor"]).exit_code == 1  # the shortened log is not anchored
