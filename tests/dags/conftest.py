"""Airflow for tests: a throwaway AIRFLOW_HOME with a SQLite metadata database, set before airflow loads."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from base import db
from base.settings import database_settings, storage_settings
from registry.migrate import upgrade
from tests.conftest import admin_url, create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Airflow configured offline and quiet, its metadata database migrated."""
    home = tmp_path_factory.mktemp("airflow")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=os.environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return home


@pytest.fixture
def popex_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A committed, migrated database that the DAG's tasks reach through POPEX_DATABASE_URL."""
    admin = admin_url()
    url = create_database("popex_dag")
    engine = create_engine(url)
    with engine.begin() as conn:
        upgrade(conn)
    engine.dispose()
    monkeypatch.setenv("POPEX_DATABASE_URL", url)
    monkeypatch.setenv("POPEX_ARCHIVE_DIR", str(tmp_path / "archive"))
    for cached in (database_settings, storage_settings, db.get_engine, db.session_factory):
        cached.cache_clear()
    yield url
    db.get_engine().dispose()
    for cached in (database_settings, storage_settings, db.get_engine, db.session_factory):
        cached.cache_clear()
    drop_database(url, admin)


AREAS = (
    "code,name,level,parent_code\n330102,上城区,district,\n330102001,清波街道,street,330102\n"
    "330102001001,清波社区,community,330102001\n"
)


def load_test_areas(tmp_path: Path) -> None:
    """One district, one street, one community (清波社区 330102001001) into the configured database."""
    from base.db import session_scope
    from registry.areas import load_areas

    areas = tmp_path / "areas.csv"
    areas.write_text(AREAS, encoding="utf-8")
    with session_scope() as session:
        load_areas(session=session, path=areas)
