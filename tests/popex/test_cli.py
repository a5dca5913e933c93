"""The popex command as a user runs it: a database it cannot reach is one clear line, not a traceback."""

import os
import subprocess
import sys

from sqlalchemy import make_url

from tests.conftest import admin_url, create_database, drop_database


def _db_check(database_url: str) -> subprocess.CompletedProcess[str]:
    """`popex db check` as the installed command runs it (popex.cli.run), on this database."""
    return subprocess.run(
        [sys.executable, "-c", "from popex.cli import run; run()", "db", "check"],
        env={**os.environ, "POPEX_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_database_is_said_in_one_line() -> None:
    missing = make_url(admin_url()).set(database="popex_no_such_database")
    done = _db_check(missing.render_as_string(hide_password=False))
    assert done.returncode == 2
    assert "无法连接数据库" in done.stderr and "popex_no_such_database" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_database_not_yet_migrated_is_said_in_one_line() -> None:
    empty = create_database("popex_cli_empty")
    try:
        done = _db_check(empty)
    finally:
        drop_database(empty)
    assert done.returncode == 2
    assert "popex db upgrade" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
