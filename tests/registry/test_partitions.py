"""The time-partitioned tables: partitions made ahead by the daily run, rows in the right one, keys kept."""

import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from base.settings import partition_settings
from exchange.flows import receive_landing
from registry.audit import record_audit, verify_chain
from registry.consistency import check_consistency
from registry.feeds import sync_feeds
from registry.migrate import downgrade, upgrade
from registry.partitions import TABLES, attached, detach, ensure_partitions, expired_partitions, newest, table
from tests.conftest import migrated_database
from tests.factories import stage_audit_clock

VERSION = (
    "INSERT INTO person_version (person_id, valid_from, changed, status, recorded_at) "
    "VALUES (:p, '2020-01-01', '[]', 'active', CAST(:at AS timestamp)) RETURNING tableoid::regclass::text"
)
EVENT = (
    "INSERT INTO change_event (person_id, event_type, version_id, payload, recorded_at) "
    "VALUES (1, 'born', :v, '{}', CAST(:at AS timestamp)) RETURNING tableoid::regclass::text"
)


def _today(session: Session) -> date:
    today: date = session.execute(text("SELECT CAST(localtimestamp AS date)")).scalar_one()
    return today


def _names(first: date, through: date) -> set[str]:
    """Every table's partition names from `first`'s period through `through`'s."""
    names = set()
    for spec in TABLES:
        start = spec.start(first)
        while start <= through:
            names.add(spec.name(start))
            start = spec.after(start)
    return names


def test_daily_run_creates_the_partitions_ahead(session, factory, tmp_path: Path, monkeypatch) -> None:
    """The day's run (exchange.flows.receive_landing, the DAG's first task) makes every table's
    partitions through POPEX_PARTITION_AHEAD_DAYS from today; a second run makes none."""
    today = _today(session)
    monkeypatch.setenv("POPEX_PARTITION_AHEAD_DAYS", str(3 * 366))
    partition_settings.cache_clear()
    try:
        receive_landing(factory, tmp_path, today)
    finally:
        partition_settings.cache_clear()
    have = {name for spec in TABLES for name in attached(session.connection(), spec)}
    through = date.fromordinal(today.toordinal() + 3 * 366)
    assert _names(today, through) | {spec.default for spec in TABLES} <= have
    assert "audit_log_m" + f"{through:%Y%m}" in have and f"change_event_y{through.year}" in have
    assert ensure_partitions(session, through=through) == []


def test_rows_land_in_their_year_and_strays_move_out_of_the_default(session) -> None:
    """A row of a year with no partition waits in the default one; ensuring partitions moves it into
    its year's, whose bounds then hold it."""
    today = _today(session)
    now = f"{today} 12:00"
    assert session.execute(text(VERSION), {"p": 1, "at": now}).scalar_one() == f"person_version_y{today.year}"
    assert (
        session.execute(text(VERSION), {"p": 2, "at": "2003-05-01"}).scalar_one() == "person_version_default"
    )
    assert session.execute(text(EVENT), {"v": 7, "at": "2003-05-01"}).scalar_one() == "change_event_default"

    created = ensure_partitions(session, through=today)
    assert created == ["person_version_y2003", "change_event_y2003"]
    where = session.execute(
        text("SELECT person_id, tableoid::regclass::text FROM person_version WHERE person_id IN (1, 2)")
    ).all()
    assert sorted(where) == [(1, f"person_version_y{today.year}"), (2, "person_version_y2003")]
    assert session.scalar(text("SELECT count(*) FROM person_version_default")) == 0
    assert session.scalar(text("SELECT tableoid::regclass::text FROM change_event WHERE version_id = 7")) == (
        "change_event_y2003"
    )


def test_keys_and_grants_survive(session) -> None:
    """An event's (version, type) twice in one year is refused by the key; across years the key (which
    must include recorded_at) lets it in and `popex db check` counts it. popex_sharing still reads
    change_event; nobody else was granted person_version."""
    session.execute(text(EVENT), {"v": 42, "at": "2026-03-01"})
    with (
        pytest.raises(IntegrityError, match=r"Key \(version_id, event_type, recorded_at\)"),
        session.begin_nested(),
    ):
        session.execute(text(EVENT), {"v": 42, "at": "2026-03-01"})
    assert check_consistency(session=session)["change event of one type twice for a version"] == 0
    session.execute(text(EVENT), {"v": 42, "at": "2025-03-01"})
    found = check_consistency(session=session)
    assert found["change event of one type twice for a version"] == 1
    assert (
        found["change_event id twice"] == found["person_version id twice"] == found["audit_log id twice"] == 0
    )
    assert session.scalar(text("SELECT has_table_privilege('popex_sharing', 'change_event', 'SELECT')"))
    assert not session.scalar(text("SELECT has_table_privilege('popex_sharing', 'person_version', 'SELECT')"))


def test_retention_lists_and_detaches_only_expired_partitions(session) -> None:
    """With change events kept 2 years, on 2030-06-15 the partitions of 2027 and before are expired
    (2028 is not: it ended less than 2 years before June 2030); versions are never listed."""
    ensure_partitions(session, through=date(2029, 1, 1))
    for year in (2026, 2027, 2028):
        session.execute(text(EVENT), {"v": year, "at": f"{year}-06-01"})
    expired = expired_partitions(session, {"change_event": 2}, today=date(2030, 6, 15))
    names = [p.name for p in expired]
    assert "change_event_y2027" in names and "change_event_y2028" not in names
    assert all(p.table == "change_event" and p.end <= date(2028, 6, 1) for p in expired)
    detach(session, next(p for p in expired if p.name == "change_event_y2027"))
    assert "change_event_y2027" not in attached(session.connection(), table("change_event"))
    assert session.scalar(text("SELECT count(*) FROM change_event WHERE version_id = 2027")) == 0
    assert session.scalar(text("SELECT count(*) FROM change_event_y2027")) == 1  # kept, for the archive


def _plan_nodes(plan: dict[str, object]) -> list[dict[str, object]]:
    nodes = [plan]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        nodes.extend(_plan_nodes(child))
    return nodes


def test_the_newest_row_is_read_newest_first_and_is_the_plain_look_ups(session) -> None:
    """registry.partitions.newest gives what ORDER BY recorded_at DESC, id DESC LIMIT 1 gives — a
    person's versions over four yearly partitions, one whose latest waits in the default partition, two
    recorded at the same moment (the id decides), a condition that skips the latest — and reads the
    partitions newest first, stopping soon after the first holding such a row, where the plain look-up
    reads every partition. The
    default partition stays locked against a partition being attached until the transaction ends."""
    year = _today(session).year
    rows = {  # person: the times of its versions, in the order they are written
        1: [f"{year - 3}-02-01", f"{year - 1}-05-01", f"{year}-01-15"],
        2: [f"{year - 2}-03-01"],
        3: [f"{year - 3}-07-01"],  # and one where no partition is yet, below
        4: [f"{year - 1}-09-09 10:00", f"{year - 1}-09-09 10:00"],
        5: [f"{year}-03-03", f"{year - 2}-04-04"],  # written later, recorded earlier
    }
    for person, times in rows.items():
        for at in times:
            session.execute(text(VERSION), {"p": person, "at": at})
    ensure_partitions(session, through=date(year + 1, 1, 1))  # moves the years before out of the default
    session.execute(text(VERSION), {"p": 3, "at": f"{year + 6}-01-01"})  # no partition that far ahead
    session.execute(  # a city's worth of others, so that PostgreSQL plans as it would for a real history
        text(
            "INSERT INTO person_version (person_id, valid_from, changed, status, recorded_at) "
            "SELECT 100 + g, '2020-01-01', '[]', 'active', make_timestamp(y, 6, 1, 0, 0, 0) "
            "FROM generate_series(1, 5000) g, generate_series(:y - 3, :y) y"
        ),
        {"y": year},
    )
    assert session.scalar(text("SELECT count(*) FROM person_version_default")) == 1
    for where in ("TRUE", f"u.recorded_at < TIMESTAMP '{year}-01-01'"):
        plain = session.execute(
            text(
                "SELECT p, (SELECT u.id FROM person_version u WHERE u.person_id = p AND "
                f"{where} ORDER BY u.recorded_at DESC, u.id DESC LIMIT 1) FROM generate_series(1, 6) p ORDER BY p"
            )
        ).all()
        newest_sql = newest(
            session.connection(),
            "person_version",
            alias="u",
            where=f"u.person_id = p AND {where}",
            columns=("id",),
        )
        found = session.execute(text(f"SELECT p, {newest_sql} FROM generate_series(1, 6) p ORDER BY p")).all()
        assert found == plain
        assert None not in {i for p, i in plain if p <= 5} and plain[-1][1] is None
    newest_sql = newest(
        session.connection(), "person_version", alias="u", where="u.person_id = 1", columns=("id",)
    )
    for query, reads_the_older_years in (
        (f"SELECT {newest_sql}", False),
        (
            "SELECT (SELECT u.id FROM person_version u WHERE u.person_id = 1 ORDER BY u.recorded_at DESC, u.id DESC LIMIT 1)",
            True,
        ),
    ):
        plan = session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) {query}")).scalar_one()
        loops = {
            node["Relation Name"]: int(str(node["Actual Loops"]))
            for node in _plan_nodes(plan[0]["Plan"])
            if str(node.get("Relation Name", "")).startswith("person_version_y")
        }
        # Person 1's latest is this year's; the year before is read for one row (the sort by id of the
        # versions recorded at the same moment needs the next one), the years before that not at all.
        older = [loops.get(f"person_version_y{y}", 0) for y in (year - 3, year - 2)]
        assert (sum(older) > 0) == reads_the_older_years, loops
    locked = session.scalar(
        text(
            "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted"
            " AND relation = CAST('person_version_default' AS regclass) AND mode = 'AccessShareLock'"
        )
    )
    assert locked == "AccessShareLock"


def test_two_runs_at_once_both_succeed() -> None:
    """Two processes' daily runs at the same moment: both complete, each partition is made once."""
    with migrated_database("popex_part") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            today = _today(session)
            before = {name for spec in TABLES for name in attached(session.connection(), spec)}
        through = date(today.year + 6, 1, 1)
        barrier, results, errors = threading.Barrier(2), [], []

        def run() -> None:
            try:
                with Session(engine) as session, session.begin():
                    barrier.wait()
                    results.append(ensure_partitions(session, through=through))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.dispose()
        assert errors == []
        made = [name for created in results for name in created]
        wanted = _names(today, through) - before
        assert len(wanted) >= 60 and sorted(made) == sorted(wanted)  # each once, by one run or the other


def test_audit_records_land_in_their_month_and_the_chain_verifies(session) -> None:
    """The audit log's records go to the month they were written in and the chain verifies; a writer
    cannot file a record under another day. (The refusal of a transaction begun in the month before
    is not staged here: now() cannot be moved back.)"""
    today = _today(session)
    for i in range(3):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i))
    rows = session.execute(
        text("SELECT id, hash, tableoid::regclass::text AS part FROM audit_log ORDER BY id")
    ).all()
    assert {r.part for r in rows} == {f"audit_log_m{today:%Y%m}"}
    assert verify_chain(session=session).ok
    with pytest.raises(DBAPIError, match="记录日期只能是写入当天"), session.begin_nested():
        session.execute(
            text(
                "INSERT INTO audit_log (logged_on, actor, action, detail, prev_hash, hash)"
                " VALUES ('2020-01-01', 't', 'test.write', '{}', '', '')"
            )
        )


def test_a_transaction_begun_in_an_earlier_month_still_audits(session) -> None:
    """A step whose transaction began before a month's last midnight writes its audit records after it:
    they go to the month they are written in (was: refused with 40001, the step failed) and the chain,
    including the next record, verifies."""
    record_audit(session=session, actor="tester", action="test.write", object_id="before")
    # This transaction began today; its clock now reads the first day of the next month (and goes on).
    stage_audit_clock(
        session, "SELECT date_trunc('month', now()) + interval '1 month 1 hour' + (clock_timestamp() - now())"
    )
    for i in range(2):
        record_audit(session=session, actor="tester", action="test.write", object_id=str(i))
    rows = session.execute(
        text("SELECT logged_on, at, tableoid::regclass::text AS part FROM audit_log ORDER BY id DESC LIMIT 2")
    ).all()
    today = _today(session)
    later = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    assert [r.part for r in rows] == [f"audit_log_m{later:%Y%m}"] * 2
    assert all(r.logged_on == r.at.date() == later for r in rows)
    assert verify_chain(session=session).ok


def test_a_record_formed_before_a_months_end_and_chained_after_it_is_retried(session) -> None:
    """The one case left: the row's day is read (its default) before the month's last midnight and the
    chain's lock comes after it. The record would belong to the month it is not in: refused with
    SQLSTATE 40001, and the same insert goes through when retried."""
    # Odd calls (the default) read the month's last second, even calls (the trigger) the next month's first.
    session.execute(text("CREATE TEMPORARY SEQUENCE clock_calls"))
    stage_audit_clock(
        session,
        "SELECT date_trunc('month', now()) + interval '1 month'"
        " + CASE WHEN nextval('clock_calls') % 2 = 1 THEN interval '-1 second' ELSE interval '1 second' END",
    )
    with pytest.raises(DBAPIError, match="零点后才取得审计链锁") as refused, session.begin_nested():
        record_audit(session=session, actor="tester", action="test.write")
    assert refused.value.orig.pgcode == "40001"  # type: ignore[union-attr]
    stage_audit_clock(session, "SELECT date_trunc('month', now()) + interval '1 month 1 second'")
    record_audit(session=session, actor="tester", action="test.write")
    assert verify_chain(session=session).ok


def test_audit_partitions_made_ahead_are_guarded(session) -> None:
    """A month created by the daily run refuses TRUNCATE on its own and keeps no UPDATE, DELETE or
    TRUNCATE right for its owner, as the log itself."""
    today = _today(session)
    through = date.fromordinal(today.toordinal() + 200)
    ensure_partitions(session, through=through)
    name = f"audit_log_m{through:%Y%m}"
    owner_rights = session.scalar(
        text(
            "SELECT string_agg(a.privilege_type, ',' ORDER BY a.privilege_type) FROM pg_class c, aclexplode(c.relacl) a"
            " WHERE c.oid = CAST(:t AS regclass) AND a.grantee = c.relowner"
        ),
        {"t": name},
    )
    # PostgreSQL 17 and later add MAINTAIN (VACUUM, ANALYZE …), which changes no row.
    assert set(owner_rights.split(",")) - {"MAINTAIN"} == {"INSERT", "REFERENCES", "SELECT", "TRIGGER"}
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text(f"TRUNCATE {name}"))
    expired = expired_partitions(session, {"audit_log": 1}, today=date(today.year + 2, 1, 15))
    assert f"audit_log_m{today:%Y%m}" in [p.name for p in expired]


def test_the_audit_migration_keeps_the_chain() -> None:
    """0013 copies the log unchanged (ids, times, hashes): the chain verifies after it, the next record
    links to the last one copied, and after a downgrade the chain still verifies."""
    insert = (
        "INSERT INTO audit_log (actor, action, object_id, detail, prev_hash, hash)"
        " VALUES ('t', 'test.write', :i, '{}', '', '')"
    )
    with migrated_database("popex_auditpart") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                downgrade(conn, "0012_partitioned_history")
                for i in range(5):
                    conn.execute(text(insert), {"i": str(i)})
                before = conn.execute(text("SELECT id, at, hash FROM audit_log ORDER BY id")).all()
            with engine.begin() as conn:
                upgrade(conn)
            with Session(engine) as session, session.begin():
                assert session.execute(text("SELECT id, at, hash FROM audit_log ORDER BY id")).all() == before
                record_audit(session=session, actor="tester", action="test.write")
                assert session.scalar(text("SELECT prev_hash FROM audit_log ORDER BY id DESC LIMIT 1")) == (
                    before[-1].hash
                )
                assert verify_chain(session=session).ok
            with engine.begin() as conn:
                downgrade(conn, "0012_partitioned_history")
                conn.execute(text(insert), {"i": "after"})
            with Session(engine) as session:
                check = verify_chain(session=session)
                assert check.ok and check.rows == 7
        finally:
            engine.dispose()


RECORD = (
    "INSERT INTO source_record (batch_id, row_no, source, raw, status, reasons, id_valid, extra{at})"
    " VALUES (:b, :n, 'gaj_hj', '{{}}', 'accepted', '[]', false, '{{}}'{value})"
    " RETURNING id"
)


def test_the_source_record_migration_keeps_rows_and_keys() -> None:
    """0015 copies source_record into yearly partitions: each row keeps everything and takes its batch's
    receipt time; review_item's foreign key goes and `popex db check` counts what it and the narrower
    keys no longer refuse; a downgrade brings the plain table and the foreign key back."""
    columns = "id, batch_id, row_no, source, raw, status, reasons, extra"
    with migrated_database("popex_srcpart") as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                downgrade(conn, "0014_audit_clock")
                sync_feeds(session=Session(bind=conn))
                batch = conn.execute(
                    text(
                        "INSERT INTO batch (source, file_name, sha256, size_bytes, archive_path, as_of_date, seq,"
                        " channel, received_at, state, rows_received, rows_accepted, rows_rejected, rows_review,"
                        " step_seconds) VALUES ('gaj_hj', 'gaj_hj_20250301.csv', repeat('a', 64), 1, 'x',"
                        " '2025-03-01', 1, 'landing', '2025-03-01 08:00', 'merged', 2, 2, 0, 0, '{}')"
                        " RETURNING id"
                    )
                ).scalar_one()
                ids = [
                    conn.execute(text(RECORD.format(at="", value="")), {"b": batch, "n": n}).scalar_one()
                    for n in (1, 2)
                ]
                conn.execute(
                    text(
                        "INSERT INTO review_item (kind, source_record_id, batch_id, state)"
                        " VALUES ('probable_match', :r, :b, 'open')"
                    ),
                    {"r": ids[0], "b": batch},
                )
                before = conn.execute(text(f"SELECT {columns} FROM source_record ORDER BY id")).all()
            with engine.begin() as conn:
                upgrade(conn)
            with Session(engine) as session:
                after = session.execute(
                    text(
                        f"SELECT {columns}, recorded_at, tableoid::regclass::text AS part FROM source_record ORDER BY id"
                    )
                ).all()
                assert [tuple(r)[:8] for r in after] == [tuple(r) for r in before]
                assert {(str(r.recorded_at), r.part) for r in after} == {
                    ("2025-03-01 08:00:00", "source_record_y2025")
                }
                # A new row is written now, into this year's partition.
                new = session.execute(text(RECORD.format(at="", value="")), {"b": batch, "n": 3}).scalar_one()
                assert (
                    session.scalar(
                        text("SELECT tableoid::regclass::text FROM source_record WHERE id = :i"), {"i": new}
                    )
                    == f"source_record_y{_today(session).year}"
                )
                with (
                    pytest.raises(IntegrityError, match=r"Key \(batch_id, row_no, recorded_at\)"),
                    session.begin_nested(),
                ):
                    session.execute(text(RECORD.format(at="", value="")), {"b": batch, "n": 3})
                found = check_consistency(session=session)
                assert found["batch row number twice"] == found["source_record id twice"] == 0
                assert found["review_item.source_record_id → source_record"] == 0
                # What the narrower key and the dropped foreign key let in, `popex db check` counts.
                session.execute(
                    text(RECORD.format(at=", recorded_at", value=", '2024-06-01'")), {"b": batch, "n": 1}
                )
                assert check_consistency(session=session)["batch row number twice"] == 1
                session.execute(text("DELETE FROM source_record WHERE id = :i"), {"i": ids[0]})
                assert check_consistency(session=session)["review_item.source_record_id → source_record"] == 1
                session.rollback()
            with engine.begin() as conn:
                downgrade(conn, "0014_audit_clock")
                assert conn.execute(text(f"SELECT {columns} FROM source_record ORDER BY id")).all() == before
                with pytest.raises(IntegrityError, match="fk_review_item_source_record_id_source_record"):
                    conn.execute(text("DELETE FROM source_record WHERE id = :i"), {"i": ids[0]})
        finally:
            engine.dispose()


def test_the_first_record_of_a_month_links_to_the_last_of_an_earlier_one(session) -> None:
    """The chain trigger looks for the head in the month being written, then in the whole log."""
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_chain"))
    session.execute(
        text(
            "INSERT INTO audit_log (id, logged_on, at, actor, action, detail, prev_hash, hash) VALUES "
            "(nextval('audit_log_id_seq'), CAST(localtimestamp AS date) - 40, localtimestamp - interval '40 days',"
            " 't', 'test.write', '{}', repeat('0', 64), repeat('a', 64))"
        )
    )
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_chain"))
    record_audit(session=session, actor="tester", action="test.write")
    record_audit(session=session, actor="tester", action="test.write")
    links = session.execute(text("SELECT prev_hash, hash FROM audit_log ORDER BY id")).all()
    assert links[1].prev_hash == "a" * 64 and links[2].prev_hash == links[1].hash


def _yearly_table(conn: Connection, name: str) -> None:
    """A table partitioned by year (2024, 2025) of 3,000 rows of 2024 (batch 1), analyzed."""
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    conn.execute(text(f"CREATE TABLE {name} (id int, at date, batch_id int) PARTITION BY RANGE (at)"))
    for year in (2024, 2025):
        conn.execute(
            text(
                f"CREATE TABLE {name}_y{year} PARTITION OF {name} "
                f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
            )
        )
    conn.execute(text(f"INSERT INTO {name} SELECT g, '2024-06-01', 1 FROM generate_series(1, 3000) g"))
    conn.execute(text(f"ANALYZE {name}"))


def test_a_large_batch_analyzes_the_partitions_it_wrote_and_the_table_once_it_has_grown(engine) -> None:
    """ANALYZE on a partitioned table samples and analyzes every partition again (ten years' worth, for
    one written): after a batch, the written partitions only, and the table itself once its rows have
    drifted by more than TABLE_STATISTICS_DRIFT from its statistics."""
    from registry.partitions import TABLE_STATISTICS_DRIFT, analyze_written

    name = "tp_analyze_written"
    # Setup and counts on backends of their own: a backend's writes of a moment before are still in its
    # transaction statistics (as the function's docstring says), which would name them as written.
    other = create_engine(engine.url, poolclass=NullPool)
    with other.connect() as setup:
        _yearly_table(setup, name)
        setup.commit()

    def analyze_counts() -> dict[str, int]:
        with other.connect() as c:
            c.execute(text("SELECT pg_stat_clear_snapshot()"))
            rows = c.execute(
                text("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname LIKE :n"),
                {"n": f"{name}%"},
            )
            return {r: int(n) for r, n in rows}

    try:
        before = analyze_counts()
        with engine.connect() as conn:
            # 100 rows (3 % of the table): the written partition only.
            conn.execute(text(f"INSERT INTO {name} SELECT g, '2025-03-01' FROM generate_series(1, 100) g"))
            assert analyze_written(conn, name) == [f"{name}_y2025"]
            conn.commit()
            after = analyze_counts()
            assert after[f"{name}_y2024"] == before[f"{name}_y2024"]  # the old partition was not read again
            assert after[name] == before[name]
            assert after[f"{name}_y2025"] == before[f"{name}_y2025"] + 1
            # 300 more: 3,400 rows against the table's 3,000 at its last ANALYZE, more than the drift:
            # the table is analyzed, and its partitions with it (the written one once, not twice).
            assert 400 / 3000 > TABLE_STATISTICS_DRIFT > 100 / 3000
            conn.execute(text(f"INSERT INTO {name} SELECT g, '2025-04-01' FROM generate_series(1, 300) g"))
            assert analyze_written(conn, name) == [name]
            assert conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = :n"), {"n": name}) == 3400
            conn.commit()
            final = analyze_counts()
            assert final[name] == after[name] + 1 and final[f"{name}_y2025"] == after[f"{name}_y2025"] + 1
            # A table that is not partitioned is analyzed whole.
            assert analyze_written(conn, f"{name}_y2024") == [f"{name}_y2024"]
            conn.rollback()
    finally:
        with other.connect() as c:
            c.execute(text(f"DROP TABLE {name}"))
            c.commit()
        other.dispose()


def test_a_batch_written_by_an_earlier_transaction_has_its_partitions_analyzed(engine) -> None:
    """`batch_rows` names the partitions holding a batch's rows, with how many, for analyze_written to
    analyze in a later transaction (publish analyzing merge's versions): the written partition only,
    the table itself once the batch's rows make it drift."""
    from registry.partitions import analyze_written, batch_rows

    name = "tp_batch_rows"
    with engine.connect() as setup:
        _yearly_table(setup, name)
        setup.execute(text(f"INSERT INTO {name} SELECT g, '2025-03-01', 2 FROM generate_series(1, 100) g"))
        setup.execute(text(f"INSERT INTO {name} SELECT g, '2024-07-01', 3 FROM generate_series(1, 400) g"))
        setup.commit()
    try:
        with engine.connect() as conn:
            assert batch_rows(conn, name, 2) == [(f"{name}_y2025", 100)]
            assert analyze_written(conn, name, batch_rows(conn, name, 2)) == [f"{name}_y2025"]
            assert batch_rows(conn, name, 3) == [(f"{name}_y2024", 400)]
            # 3,000 + 100 analyzed, 400 more: 3,500 rows against the table's 3,000, more than the drift.
            assert analyze_written(conn, name, batch_rows(conn, name, 3)) == [name]
            assert batch_rows(conn, name, 4) == []
            conn.rollback()
    finally:
        with engine.connect() as c:
            c.execute(text(f"DROP TABLE {name}"))
            c.commit()


def test_partitions_made_later_leave_the_json_columns_out_of_analyze(session) -> None:
    """Migration 0021 sets a statistics target of 0 on the JSON columns no query filters on; a partition
    made later (with strays moved out of the default one, or empty ahead) takes the table's targets, so
    ANALYZE keeps no statistics of them there either, and keeps those of the other columns."""
    today = _today(session)
    session.execute(
        text(
            "INSERT INTO source_record (batch_id, row_no, source, raw, status, reasons, id_valid, extra, recorded_at)"
            " VALUES (1, 1, 'gaj_hj', '{\"姓名\": \"张三\"}', 'accepted', '[]', false, '{}', '2003-05-01')"
        )
    )
    created = ensure_partitions(session, through=date(today.year + 2, 1, 1))
    made = [name for name in created if name.startswith("source_record_")]
    assert "source_record_y2003" in made and f"source_record_y{today.year + 2}" in made
    targets = text(
        "SELECT c.relname, a.attname, coalesce(a.attstattarget, -1) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid"
        " WHERE c.relname = ANY(:t) AND a.attname IN ('raw', 'reasons', 'extra', 'name')"
    )
    found = {(r, a): int(n) for r, a, n in session.execute(targets, {"t": ["source_record", *made]})}
    assert len(found) == 4 * (1 + len(made))
    for (_, column), target in found.items():
        assert target == (-1 if column == "name" else 0), (column, target)
    session.execute(text("ANALYZE source_record_y2003"))
    analyzed = set(
        session.scalars(text("SELECT attname FROM pg_stats WHERE tablename = 'source_record_y2003'"))
    )
    assert {"batch_id", "source", "status"} <= analyzed
    assert not analyzed & {"raw", "reasons", "extra"}


def test_change_events_payload_is_left_out_of_analyze(session) -> None:
    """Migration 0023 does for a change event's payload what 0021 did for the other JSON columns: the
    table and the partitions made later keep no statistics of it, and keep those of the other columns."""
    today = _today(session)
    created = ensure_partitions(session, through=date(today.year + 2, 1, 1))
    made = [name for name in created if name.startswith("change_event_")]
    assert made
    targets = text(
        "SELECT c.relname, a.attname, coalesce(a.attstattarget, -1) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = ANY(:t) AND a.attname IN ('payload', 'person_id')"
    )
    found = {(r, a): int(n) for r, a, n in session.execute(targets, {"t": ["change_event", *made]})}
    assert len(found) == 2 * (1 + len(made))
    for (_, column), target in found.items():
        assert target == (0 if column == "payload" else -1), (column, target)
    session.execute(
        text(
            "INSERT INTO change_event (person_id, event_type, version_id, payload)"
            " VALUES (1, 'person_created', 1, '{\"scope\": null}')"
        )
    )
    session.execute(text("ANALYZE change_event"))
    analyzed = set(session.scalars(text("SELECT attname FROM pg_stats WHERE tablename = 'change_event'")))
    assert "person_id" in analyzed and "payload" not in analyzed
