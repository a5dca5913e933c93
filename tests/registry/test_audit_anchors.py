"""The audit log cannot be shortened, emptied, forged or re-chained unnoticed (issue 16.4): each tamper
the probe found is performed and `verify_log` fails and names it; a session's DateStyle is no alarm."""

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry.anchors import (
    Anchor,
    AnchorRefused,
    AnchorSettings,
    Restore,
    RestoreRefused,
    RetentionRefused,
    detach_audit_month,
    kept,
    read_anchors,
    record_restore,
    verify_log,
    write_anchor,
)
from registry.audit import record_audit
from registry.partitions import Expired, detach, expired_partitions
from tests.factories import stage_audit_clock

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


def test_the_hash_function_is_inlined_where_it_is_called(session: Session) -> None:
    """Declared IMMUTABLE over STABLE functions, it was run as an SQL function, its body parsed and planned
    again in every transaction that wrote a record (migration 0022_audit_hash_stable)."""
    plan = session.execute(
        text(
            "EXPLAIN VERBOSE SELECT audit_log_hash(prev_hash, id, at, actor, action, object_type, object_id,"
            " detail) FROM audit_log"
        )
    ).scalars()
    output = next(line for line in plan if "Output:" in line)
    assert "sha256(" in output and "audit_log_hash(" not in output


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
    def scope():
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


def _month(day: date, ahead: int) -> date:
    """The first day of the month `ahead` months after `day`'s."""
    m = day.month - 1 + ahead
    return date(day.year + m // 12, m % 12 + 1, 1)


def _months_of_records(session: Session, settings: AnchorSettings) -> tuple[list[int], list[int], date]:
    """Records in this month, the next and the one after (the chain's clock moved forward), an anchor
    after each month's records: the ids written in the next month and in the one after, and the first
    day of the next month."""
    _chain(session, 2)
    assert write_anchor(session=session, settings=settings, key=KEY) is not None
    months = []
    for ahead in (1, 2):
        stage_audit_clock(
            session,
            f"SELECT date_trunc('month', now()) + interval '{ahead} month 1 hour' + (clock_timestamp() - now())",
        )
        first = session.scalar(text("SELECT max(id) FROM audit_log"))
        _chain(session, 3)
        months.append(
            list(session.scalars(text("SELECT id FROM audit_log WHERE id > :f ORDER BY id"), {"f": first}))
        )
        assert write_anchor(session=session, settings=settings, key=KEY) is not None
    today = session.scalar(text("SELECT CAST(localtimestamp AS date)"))
    return months[0], months[1], _month(today, 1)


def _expired(session: Session, before: date) -> list[Expired]:
    """The audit months a one-year retention lets go a year after `before`: every month before it."""
    return expired_partitions(session, {"audit_log": 1}, today=date(before.year + 1, before.month, 15))


def test_retention_detaches_audit_months_and_the_log_still_verifies(
    session: Session, settings: AnchorSettings
) -> None:
    """Detaching the oldest months through retention moves the log's signed start past them: the rest
    verifies, with its anchors' positions counted on from the start, and new anchors count the
    detached records too. A run cut off between the start and the DETACH is run again safely."""
    next_month, after_next, first_day = _months_of_records(session, settings)
    total = session.scalar(text("SELECT count(*) FROM audit_log"))
    expired = _expired(session, _month(first_day, 1))
    assert expired[-1].name == f"audit_log_m{first_day:%Y%m}" and expired[-1].start == first_day
    with pytest.raises(ZeroDivisionError), session.begin_nested():  # the DETACH rolled back, the start kept
        for part in expired:
            detach_audit_month(session=session, settings=settings, part=part)
        raise ZeroDivisionError
    starts = read_anchors(settings.start_path)[0]
    assert starts[-1].id == next_month[-1] and verify_log(session=session, settings=settings).ok
    for part in expired:
        detach_audit_month(session=session, settings=settings, part=part)
    assert read_anchors(settings.start_path)[0] == starts  # no second start for the same months
    assert session.scalar(text("SELECT min(id) FROM audit_log")) == after_next[0]
    assert _expired(session, _month(first_day, 1)) == []
    verdict = verify_log(session=session, settings=settings)
    assert verdict.ok, verdict.problems
    assert verdict.start is not None and verdict.start.id == next_month[-1]
    assert verdict.start.count == total - len(after_next) and verdict.check.rows == total
    assert (verdict.anchors, verdict.archived) == (3, 2)  # two anchors fell in the detached months
    record_audit(session=session, actor="tester", action="test.write")
    anchor = write_anchor(session=session, settings=settings, key=KEY)
    assert anchor is not None and anchor.count == total + 1
    assert verify_log(session=session, settings=settings).ok


def test_a_month_detached_without_a_start_is_found(session: Session, settings: AnchorSettings) -> None:
    """What retention must not look like: the oldest month detached outside it leaves the log starting
    past the zero hash: the chain breaks at the first record left."""
    next_month, _, first_day = _months_of_records(session, settings)
    for part in _expired(session, first_day):  # this month and any before it
        detach(session, part)
    verdict = verify_log(session=session, settings=settings)
    assert verdict.check.first_bad_id == next_month[0] and verdict.start is None
    assert any(f"id={next_month[0]} 处断开" in p for p in verdict.problems)


def test_a_forged_or_edited_start_is_found(session: Session, settings: AnchorSettings) -> None:
    """The start is signed like an anchor: one signed with another key is not used (the detached months
    then show as a break), and one whose count was changed contradicts the later anchors."""
    _, after_next, first_day = _months_of_records(session, settings)
    for part in _expired(session, _month(first_day, 1)):
        detach_audit_month(session=session, settings=settings, part=part)
    assert verify_log(session=session, settings=settings).ok
    lines = settings.start_path.read_text().splitlines()
    start = json.loads(lines[-1])
    forged = Anchor(start["id"], start["hash"], start["count"] - 5, start["signed_at"]).signed(b"another key")
    settings.start_path.write_text("\n".join([*lines, json.dumps(forged.__dict__)]) + "\n")
    verdict = verify_log(session=session, settings=settings)
    assert any("起点" in p and "签名不符" in p for p in verdict.problems)
    assert any(f"id={after_next[0]}" in p and "断开" in p for p in verdict.problems)
    edited = Anchor(start["id"], start["hash"], start["count"] - 5, start["signed_at"]).signed(KEY)
    settings.start_path.write_text("\n".join([*lines, json.dumps(edited.__dict__)]) + "\n")
    verdict = verify_log(session=session, settings=settings)
    assert any("之前的记录数现为" in p for p in verdict.problems) and any(
        "起点" in p for p in verdict.problems
    )
    with pytest.raises(AnchorRefused):  # nor is a new anchor signed over an edited start
        settings.start_path.write_text("\n".join([*lines, json.dumps(forged.__dict__)]) + "\n")
        write_anchor(session=session, settings=settings, key=KEY)


def test_retention_refuses_what_it_cannot_prove(session: Session, settings: AnchorSettings) -> None:
    """No month leaves out of order, with a record in it changed, or without a signing key."""
    next_month, _, first_day = _months_of_records(session, settings)
    expired = _expired(session, _month(first_day, 1))
    with pytest.raises(RetentionRefused, match="之前的月份还有"):
        detach_audit_month(session=session, settings=settings, part=expired[-1])
    unkeyed = AnchorSettings(audit_anchor_dir=settings.audit_anchor_dir)
    with pytest.raises(RetentionRefused, match="未配置锚点密钥"):
        detach_audit_month(session=session, settings=unkeyed, part=expired[0])
    _unguarded(session, "UPDATE audit_log SET actor = 'someone else' WHERE id = :id", {"id": next_month[1]})
    for part in expired[:-1]:
        detach_audit_month(session=session, settings=settings, part=part)
    with pytest.raises(RetentionRefused, match=f"id={next_month[1]}"):
        detach_audit_month(session=session, settings=settings, part=expired[-1])
    assert not settings.start_path.exists() or all(
        a.id < next_month[0] for a in read_anchors(settings.start_path)[0]
    )


def _restored_to(session: Session, head: int) -> None:
    """What restoring a backup taken when `head` was the newest record leaves: the later records gone,
    the id sequence back where it was (their ids are given again)."""
    _unguarded(session, "DELETE FROM audit_log WHERE id > :id", {"id": head})
    session.execute(text("SELECT setval('audit_log_id_seq', :id)"), {"id": head})


def test_a_restore_from_a_backup_is_recorded_and_the_log_is_checked_on(
    session: Session, settings: AnchorSettings
) -> None:
    backup_head = _anchored(session, settings)[-1]  # anchored, then the nightly backup
    _chain(session, 4)
    lost = write_anchor(session=session, settings=settings, key=KEY)  # anchored after the backup
    assert lost is not None and lost.id > backup_head
    _restored_to(session, backup_head)  # the server died; the backup is restored

    found = verify_log(session=session, settings=settings)
    assert not found.ok and any("截短" in p and f"id={lost.id}" in p for p in found.problems)
    with pytest.raises(AnchorRefused):  # nor may anchoring bless it unrecorded
        write_anchor(session=session, settings=settings, key=KEY)

    point, given_up = record_restore(session=session, settings=settings, actor="dba", note="从备份恢复")
    assert (point.id, given_up) == (backup_head, 1)
    verdict = verify_log(session=session, settings=settings)
    assert verdict.ok and verdict.lost == 1 and [r.id for r in verdict.restores] == [backup_head]
    assert session.scalar(text("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")) == "audit.restored"

    # The platform goes on: new records take the lost ones' ids, and are anchored and checked as before.
    ids = _chain(session, 6)
    assert lost.id in ids
    newer = write_anchor(session=session, settings=settings, key=KEY)
    assert newer is not None and newer.id == ids[-1]
    assert verify_log(session=session, settings=settings).ok
    # A restore point guards nothing less: the newest records removed after it are found again.
    _unguarded(session, "DELETE FROM audit_log WHERE id >= :id", {"id": ids[-2]})
    after = verify_log(session=session, settings=settings)
    assert not after.ok and any("截短" in p and f"id={newer.id}" in p for p in after.problems)


def test_a_restore_is_recorded_only_for_the_log_as_it_was(session: Session, settings: AnchorSettings) -> None:
    ids = _anchored(session, settings)
    with pytest.raises(RestoreRefused, match="无需签恢复记录"):  # nothing newer than the head was lost
        record_restore(session=session, settings=settings, actor="dba", note="")
    _chain(session, 3)
    assert write_anchor(session=session, settings=settings, key=KEY) is not None
    _restored_to(session, ids[-1])
    _unguarded(session, "UPDATE audit_log SET detail = '{\"i\": 99}' WHERE id = :id", {"id": ids[2]})
    with pytest.raises(
        RestoreRefused, match="恢复后的审计日志与恢复点之前的锚点不符"
    ):  # not the backup as taken
        record_restore(session=session, settings=settings, actor="dba", note="")
    assert not settings.restore_path.exists()
    no_key = AnchorSettings(audit_anchor_dir=settings.audit_anchor_dir)
    with pytest.raises(RestoreRefused, match="未配置锚点密钥"):
        record_restore(session=session, settings=no_key, actor="dba", note="")


def test_a_forged_restore_record_is_found(session: Session, settings: AnchorSettings) -> None:
    """Someone who shortened the log writes a restore record to excuse it, without the key."""
    ids = _anchored(session, settings)
    _chain(session, 3)
    assert write_anchor(session=session, settings=settings, key=KEY) is not None
    _restored_to(session, ids[-1])
    forged = Restore(ids[-1], "0" * 64, len(ids), 2, "2026-12-06T00:00:00+00:00", "f" * 64)
    settings.restore_path.write_text(json.dumps(forged.__dict__) + "\n", encoding="utf-8")
    verdict = verify_log(session=session, settings=settings)
    assert not verdict.ok
    assert any("恢复记录" in p and "签名不符" in p for p in verdict.problems)
    assert any("截短" in p for p in verdict.problems)  # the forged record excuses nothing


def test_what_each_restore_gives_up() -> None:
    """Anchors (by id) and restores (back to a head, after the anchors made before them), twice over."""

    def anchor(i: int) -> Anchor:
        return Anchor(i, f"h{i}", i, "2026-12-01T00:00:00+00:00")

    def restore(i: int, anchors: int) -> Restore:
        return Restore(i, f"h{i}", i, anchors, "2026-12-01T00:00:00+00:00")

    a10, a20, a30, a25, a40 = anchor(10), anchor(20), anchor(30), anchor(25), anchor(40)
    back_to_15 = restore(15, 2)  # after a10 and a20: a20's record is gone
    assert kept([a10, a20], [back_to_15]) == ([a10, back_to_15], [a20])
    back_to_12 = restore(12, 4)  # later still, to an older backup: a30, a25 and the first restore go too
    points, lost = kept([a10, a20, a30, a25, a40], [back_to_15, back_to_12])
    assert points == [a10, back_to_12, a40] and lost == [a20, a30, a25]
