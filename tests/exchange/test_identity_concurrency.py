"""Two departments' files ingested at the same moment give what ingesting them one after the other gives.

Issue 15: `popex ingest gaj_hj… & popex ingest rsj_cb…` on a fresh city gave one person per department
for 770 of 3,000 people, each pair holding one ID number. The interleaving that did it is forced here:
the test holds a lock that both ingests' first identifier write waits for, until both are waiting, then
lets them race. On the old code (no identity lock) both resolves have read an empty register by then.
"""

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from base import bulk
from exchange import flows
from registry import resolve
from registry.areas import load_areas
from synth import generate_city
from tests.conftest import migrated_database

pytestmark = pytest.mark.slow
FILES = ("gaj_hj_20261101.csv", "rsj_cb_20261101.csv")  # two departments, most persons in both


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    generate_city(out, persons=800, days=0, seed=15)
    return out


@pytest.fixture
def fresh(city: Path) -> Iterator[str]:
    """A migrated database holding the city's areas: nobody known yet."""
    with migrated_database("popex_race") as url:
        _load_areas(url, city)
        yield url


def _load_areas(url: str, city: Path) -> None:
    """The city's areas into a migrated database: nobody known yet."""
    engine = create_engine(url)
    with Session(engine) as session:
        load_areas(session=session, path=city / "areas.csv")
        session.commit()
    engine.dispose()


def _popex(url: str, *args: str) -> subprocess.Popen[str]:
    """The installed command (popex.cli.run) on this database, archiving under the test's folder."""
    return subprocess.Popen(
        [sys.executable, "-c", "from popex.cli import run; run()", *args],
        env={**os.environ, "POPEX_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def identity(url: str) -> dict[str, object]:
    """The identity core without its arbitrary numbers: how many of each thing, who holds which number
    with which attributes, and which source rows were found to be one person."""
    engine = create_engine(url)
    with engine.connect() as conn:
        count = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        holders = conn.execute(
            text(
                "SELECT x.id_no, p.name, p.sex, p.birth_date, p.status, p.community_code, p.population_type "
                "FROM person_identifier x JOIN person p ON p.id = x.person_id"
            )
        ).all()
        groups = conn.execute(
            text(
                "SELECT array_agg(r.source || ':' || r.row_no ORDER BY r.source, r.row_no) "
                "FROM link l JOIN source_record r ON r.id = l.source_record_id GROUP BY l.person_id"
            )
        ).scalars()
        found = {
            "persons": count("SELECT count(*) FROM person WHERE status <> 'retired'"),
            "identifiers": count("SELECT count(*) FROM person_identifier"),
            "links": count("SELECT count(*) FROM link"),
            "review": count("SELECT count(*) FROM review_item"),
            "versions": count("SELECT count(*) FROM person_version"),
            "events": Counter(
                dict(conn.execute(text("SELECT event_type, count(*) FROM change_event GROUP BY 1")).all())
            ),
            "holders": {h[0]: tuple(h[1:]) for h in holders},
            "same_person": {tuple(g) for g in groups},
            "states": sorted(conn.execute(text("SELECT state FROM batch")).scalars()),
        }
    engine.dispose()
    return found


def _serial(url: str, city: Path, files: tuple[str, ...]) -> dict[str, object]:
    engine = create_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    for name in files:
        flows.ingest_file(factory, city / "landing" / name)
    engine.dispose()
    return identity(url)


def _waiting(conn: Connection, database: str) -> int:
    """Sessions of the database waiting for the identity lock or for the identifier table."""
    waiting: int = conn.execute(
        text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = :d "
            "AND (l.locktype = 'advisory' OR l.relation = 'person_identifier'::regclass)"
        ),
        {"d": database},
    ).scalar_one()
    return waiting


def test_two_ingests_at_once_equal_one_after_the_other(city, fresh, archive_dir) -> None:
    with migrated_database("popex_serial") as first, migrated_database("popex_serial") as second:
        for url in (first, second):
            _load_areas(url, city)
        serial = [_serial(first, city, FILES), _serial(second, city, FILES[::-1])]

    engine = create_engine(fresh)
    database = engine.url.database
    assert database is not None
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE person_identifier IN EXCLUSIVE MODE"))  # reads pass, writes wait
        runs = [_popex(fresh, "ingest", str(city / "landing" / name)) for name in FILES]
        deadline = time.monotonic() + 120
        # Each poll in a transaction of its own: pg_stat_activity is read once per transaction, so
        # one long transaction never sees the ingests' sessions.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            while _waiting(watcher, database) < 2:
                assert time.monotonic() < deadline, watcher.execute(
                    text("SELECT wait_event, left(query, 60) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": database},
                ).all()
                assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
                time.sleep(0.1)
        holder.commit()  # both go on from here
        outcomes = [r.communicate(timeout=300) for r in runs]
    engine.dispose()
    assert [r.returncode for r in runs] == [0, 0], outcomes
    concurrent = identity(fresh)
    assert concurrent in serial, {
        k: (concurrent[k], serial[0][k]) for k in ("persons", "identifiers", "links")
    }


def test_two_ingests_of_folders_at_once_equal_their_files_one_after_the_other(
    city, fresh, archive_dir, tmp_path
) -> None:
    """Two `popex ingest --dir` at once: each keeps the identity lock from file to file, publishing one
    file while it resolves the next (exchange.flows.IdentitySeries), and lets the other in between two
    files when it waits. Every file is completed, and the identity core is the one a run of the same
    files one after the other gives, in the order their identity steps went (read off the versions' ids)."""
    import shutil

    folders = {
        "a": ("gaj_hj_20261101.csv", "jyj_xj_20261101.csv"),
        "b": ("gaj_ld_20261101.csv", "rsj_cb_20261101.csv"),
    }
    for folder, names in folders.items():
        (tmp_path / folder).mkdir()
        for name in names:
            shutil.copy(city / "landing" / name, tmp_path / folder / name)
    runs = [_popex(fresh, "ingest", "--dir", str(tmp_path / folder)) for folder in folders]
    outcomes = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outcomes
    engine = create_engine(fresh)
    with engine.connect() as conn:
        order = (
            conn.execute(
                text(
                    "SELECT b.file_name FROM batch b JOIN person_version v ON v.batch_id = b.id"
                    " GROUP BY b.id ORDER BY min(v.id)"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert sorted(order) == sorted(folders["a"] + folders["b"])
    concurrent = identity(fresh)
    assert concurrent["states"] == ["completed"] * 4
    with migrated_database("popex_serial") as url:
        _load_areas(url, city)
        serial = _serial(url, city, tuple(order))
    assert concurrent == serial, order


def test_a_lock_whose_connection_is_lost_is_free_and_hides_no_error(fresh) -> None:
    """The database restarted under a holder: the step's own error comes out, not the failed unlock,
    and the next batch takes the lock at once."""
    engine = create_engine(fresh)
    factory = sessionmaker(engine)
    held = (
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with pytest.raises(RuntimeError, match="the step's error"), flows.identity_lock(factory):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            pid = other.execute(text(held)).scalar_one()
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            while other.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            ).scalar():
                time.sleep(0.05)
        raise RuntimeError("the step's error")
    with engine.connect() as other:
        assert other.execute(text(held)).all() == []
    with flows.identity_lock(factory):
        pass
    engine.dispose()


def test_the_bulk_paths_find_the_same_persons(city: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paths taken only at scale give the same identity core as the everyday ones: candidates found
    with hash joins (resolve.HASH_PROBE_ROWS) and an initial load's indexes built after its rows
    (base.bulk), both switched on here for every batch, however small."""
    with migrated_database("popex_paths") as url:
        _load_areas(url, city)
        everyday = _serial(url, city, FILES)
    monkeypatch.setattr(resolve, "HASH_PROBE_ROWS", 1)
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    with migrated_database("popex_paths") as url:
        _load_areas(url, city)
        at_scale = _serial(url, city, FILES)
        with create_engine(url).connect() as conn:
            scored = conn.execute(text("SELECT count(*) FROM link WHERE rule = 'score'")).scalar_one()
            deferred = conn.execute(
                text("SELECT resolution -> 'indexes_built_after' FROM batch ORDER BY id LIMIT 1")
            ).scalar_one()
    assert scored > 0 and deferred == ["person", "person_identifier", "link"]  # both paths were taken
    assert at_scale == everyday
