"""The time-partitioned tables: partitions made ahead by the daily run, rows in the right one, keys kept."""

import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from base.settings import partition_settings
from exchange.flows import receive_landing
from registry.consistency import check_consistency
from registry.partitions import TABLES, attached, detach, ensure_partitions, expired_partitions
from tests.conftest import migrated_database

VERSION = (
    "INSERT INTO person_version (person_id, valid_from, changed, status, recorded_at) "
    "VALUES (:p, '2020-01-01', '[]', 'active', CAST(:at AS timestamp)) RETURNING tableoid::regclass::text"
)
EVENT = (
    "INSERT INTO change_event (person_id, event_type, version_id, payload, recorded_at) "
    "VALUES (1, 'born', :v, '{}', CAST(:at AS timestamp)) RETURNING tableoid::regclass::text"
)


def _today(session: Session) -> date:
    return session.execute(text("SELECT CAST(localtimestamp AS date)")).scalar_one()


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
    for spec in TABLES:
        have = attached(session.connection(), spec)
        assert {f"{spec.table}_y{today.year + n}" for n in range(4)} <= have
        assert spec.default in have
    assert ensure_partitions(session, through=date(today.year + 3, 12, 31)) == []


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
    assert found["change_event id twice"] == 0 and found["person_version id twice"] == 0
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
    assert "change_event_y2027" not in attached(session.connection(), TABLES[1])
    assert session.scalar(text("SELECT count(*) FROM change_event WHERE version_id = 2027")) == 0
    assert session.scalar(text("SELECT count(*) FROM change_event_y2027")) == 1  # kept, for the archive


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
        wanted = {f"{t.table}_y{y}" for t in TABLES for y in range(today.year, through.year + 1)} - before
        assert len(wanted) >= 10 and sorted(made) == sorted(wanted)  # each once, by one run or the other
