"""Test fixtures: a throwaway PostgreSQL database per test session, a rolled-back transaction per test."""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from base import db
from base.db import database_url
from base.settings import storage_settings
from registry.migrate import upgrade
from tests.factories import make_areas

# No per-example deadline: a test here checks results, never time (a loaded CI machine is not a failure).
settings.register_profile("popex", deadline=None)
settings.load_profile("popex")
# The statistics' cell keys (decision.protection) hash a secret that a migration draws at random for each
# database: the test databases get this one instead, so that a run's published figures are the same in
# every run. POPEX_TEST_CELL_KEY_SECRET runs the tests under another (a sweep over several finds a test
# that holds only under some draws).
TEST_CELL_KEY_SECRET = os.environ.get("POPEX_TEST_CELL_KEY_SECRET", "popex-tests")
# A landing file is taken once it has been quiet for POPEX_LANDING_QUIET_SECONDS (exchange.flows): the
# tests write theirs whole just before the run, so they are taken at once; tests/exchange/test_landing_quiet.py
# sets its own, and the real scheduler's run (tests/dags/test_scheduler.py) keeps the default.
os.environ.setdefault("POPEX_LANDING_QUIET_SECONDS", "0")
# The monitor's disk rule reads the real disk: off in the tests whose alerts are counted exactly (a CI
# machine with little space left would add an alert they do not expect); tests/monitor/test_disk.py sets
# its own thresholds.
os.environ.setdefault("POPEX_MONITOR_DISK_FREE_PERCENT", "0")
os.environ.setdefault("POPEX_MONITOR_DISK_FREE_GB", "0")


def admin_url() -> str:
    """The database tests connect to for creating and dropping their own."""
    return os.environ.get("POPEX_DATABASE_URL") or database_url()


def create_database(prefix: str = "popex_test") -> str:
    """Create an empty database on the test server and return its URL."""
    return db.create_database(f"{prefix}_{uuid.uuid4().hex[:8]}", admin_url())


def drop_database(url: str, admin: str | None = None) -> None:
    """Drop a database made by create_database (admin: the URL to connect with, default admin_url())."""
    db.drop_database(str(make_url(url).database), admin or admin_url())


def migrate(conn: Connection) -> None:
    """The whole schema, with the tests' cell-key secret."""
    upgrade(conn)
    conn.execute(
        text("UPDATE decision.publication SET cell_key_secret = :secret WHERE id = 1"),
        {"secret": TEST_CELL_KEY_SECRET},
    )


@contextmanager
def migrated_database(prefix: str = "popex_test") -> Iterator[str]:
    """A new database with the whole schema, dropped afterwards; yields its URL."""
    url = create_database(prefix)
    engine = create_engine(url)
    with engine.begin() as conn:
        migrate(conn)
    engine.dispose()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A migrated throwaway database for this test session."""
    with migrated_database() as url:
        yield url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    """The engine of the session's database."""
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    """An ORM session joined to the outer transaction; its commits become savepoints."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as sess:
        yield sess


@pytest.fixture
def factory(connection: Connection, archive_dir: Path) -> Callable[[], Session]:
    """Sessions that join the test's outer transaction: each step's commit is a savepoint."""
    return lambda: Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Received files are archived under the test's tmp_path, and receipts written to its outbox/."""
    folder = tmp_path / "archive"
    monkeypatch.setenv("POPEX_ARCHIVE_DIR", str(folder))
    monkeypatch.setenv("POPEX_OUTBOX_DIR", str(tmp_path / "outbox"))
    storage_settings.cache_clear()
    yield folder
    storage_settings.cache_clear()


@pytest.fixture
def areas(session: Session) -> list[str]:
    """Two communities of one street of one district."""
    return make_areas(session)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium for the browser tests (tests/browser.py), one per test module: Playwright's
    sync API keeps an event loop running in this thread while it is open, and asyncio.run() (the
    sharing service's audit writer tests) refuses to start inside one."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched
