"""A fresh machine has no POPEX_DATABASE_URL: popex starts the embedded PostgreSQL and reuses it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from base.embedded import stop_embedded

pytestmark = pytest.mark.embedded

SCRIPT = """
from sqlalchemy import text
from base.db import get_engine
from registry.migrate import upgrade
upgrade()
with get_engine().begin() as conn:
    conn.execute(text("INSERT INTO department (code, name) VALUES ('t' || (SELECT count(*) FROM department), 'x')"))
    print(conn.execute(text("SELECT count(*) FROM department")).scalar())
"""


def run_fresh(data_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "POPEX_DATABASE_URL"}
    env["POPEX_EMBEDDED_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_embedded_database_starts_migrates_and_is_reused(tmp_path) -> None:
    data_dir = tmp_path / "pg"
    try:
        assert run_fresh(data_dir) == "1"
        assert (data_dir / "PG_VERSION").exists()
        # A second process finds the same server and the same data.
        assert run_fresh(data_dir) == "2"
        assert stop_embedded(data_dir) is True
        # Stopped, it starts again on the same data.
        assert run_fresh(data_dir) == "3"
    finally:
        stop_embedded(data_dir)
