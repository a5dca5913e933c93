"""Landing, archive and outbox in an S3-compatible bucket (base/storage.py), on a real HTTP server.

The server is moto's ThreadedMotoServer (moto's S3 behind Flask, in this process on a free port), not
MinIO: s3fs speaks S3 over HTTP to it exactly as to a bucket in production.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from base import storage
from base.settings import storage_settings
from exchange import flows, service
from registry.models import Batch
from tests.conftest import migrated_database
from tests.factories import make_areas
from tests.feedfiles import hj, write_feed

moto_server = pytest.importorskip("moto.server")
BUCKET = "s3://popex"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """An S3-compatible server on a free port with the bucket popex."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in KEYS}
    os.environ.update(KEYS)
    try:
        import boto3

        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="popex")
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Archive and outbox in the bucket under a prefix of this test's own."""
    prefix = f"{BUCKET}/{tmp_path.name}"
    monkeypatch.setenv("POPEX_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("POPEX_ARCHIVE_DIR", f"{prefix}/archive")
    monkeypatch.setenv("POPEX_OUTBOX_DIR", f"{prefix}/outbox")
    storage_settings.cache_clear()
    yield prefix
    storage_settings.cache_clear()


def _put(local: Path, uri: str) -> None:
    storage.write_whole(uri, local.read_bytes())


def _names(folder: str) -> list[str]:
    return sorted(storage.name(f) for f in storage.files(folder))


ZHANG = hj("H1", "330102198001010018", "张伟", "男", "1980-01-01")
LI = hj("H2", "330102198505050021", "李娜", "女", "1985-05-05")


def test_locations_old_rows_and_uris() -> None:
    # Rows written before URIs hold absolute paths; a file:// URI is the same local file.
    assert storage.location("/srv/popex/archive/gaj_hj/ab/x.csv") == Path(
        "/srv/popex/archive/gaj_hj/ab/x.csv"
    )
    assert storage.location("file:///srv/popex/archive") == Path("/srv/popex/archive")
    assert storage.location("s3://popex/archive/") == "s3://popex/archive/"
    assert storage.join("s3://popex/archive/", "gaj_hj", "x.csv") == "s3://popex/archive/gaj_hj/x.csv"
    assert storage.join(Path("/a"), "b") == Path("/a/b")


def test_a_days_run_through_a_bucket(session, factory, areas, bucket, tmp_path) -> None:
    landing = f"{bucket}/landing"
    drop = tmp_path / "drop"
    drop.mkdir()
    _put(write_feed(drop, "gaj_hj", date(2026, 11, 1), [ZHANG, LI]), f"{landing}/gaj_hj_20261101.csv")
    _put(write_feed(drop, "gaj_hj", date(2026, 11, 3), [ZHANG], seq=2), f"{landing}/gaj_hj_20261103_2.csv")
    (drop / "xyz_ab_20261101.csv").write_text("a,b\n1,2\n")
    _put(drop / "xyz_ab_20261101.csv", f"{landing}/xyz_ab_20261101.csv")

    day = flows.receive_landing(factory, landing, date(2026, 11, 2))
    assert len(day) == 1
    batch = session.get_one(Batch, day[0])
    digest = service.file_sha256(drop / "gaj_hj_20261101.csv")
    assert batch.archive_path == f"{bucket}/archive/gaj_hj/{digest[:2]}/{digest}/gaj_hj_20261101.csv"
    assert _names(landing) == ["gaj_hj_20261103_2.csv"]  # tomorrow's stays
    assert _names(f"{landing}/_received/20261101") == ["gaj_hj_20261101.csv"]
    assert _names(f"{landing}/_refused/20261102") == ["xyz_ab_20261101.csv"]  # archived as unidentified
    refused = service.file_sha256(drop / "xyz_ab_20261101.csv")
    assert storage.exists(f"{bucket}/archive/_unidentified/{refused[:2]}/{refused}/xyz_ab_20261101.csv")
    assert not (tmp_path / "archive").exists() and not (tmp_path / "outbox").exists()

    assert flows.process_batch(factory, batch.id) == "completed"
    receipt = f"{bucket}/outbox/gaj_hj/gaj_hj_20261101.csv.receipt.csv"
    with storage.local_copy(receipt) as local:
        lines = local.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,record_key,status,person_id,reasons" and len(lines) == 3

    # A retried run finds nothing new in the folder and the batch done.
    assert flows.receive_landing(factory, landing, date(2026, 11, 2)) == []


def test_an_archived_object_that_changed_is_not_parsed(session, factory, areas, bucket, tmp_path) -> None:
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [ZHANG])
    batch = service.receive_file(session=session, path=path).batch
    storage.write_whole(batch.archive_path, path.read_bytes() + b"\n")  # altered in the bucket
    with pytest.raises(OSError, match="SHA-256"):
        service.parse_batch(session=session, batch_id=batch.id)


@pytest.mark.slow
def test_a_worker_with_no_shared_disk_parses_from_the_bucket(endpoint, bucket, tmp_path) -> None:
    """Received here; parsed to completed in another process whose own archive folder does not exist."""
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [ZHANG, LI])
    with migrated_database("popex_s3") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            make_areas(session)
            batch_id = service.receive_file(session=session, path=path).batch.id
            session.commit()
        path.unlink()  # nothing of the file left on this machine's disk
        elsewhere = tmp_path / "worker" / "archive"
        env = {
            **os.environ,
            **KEYS,
            "POPEX_DATABASE_URL": url,
            "POPEX_S3_ENDPOINT_URL": endpoint,
            "POPEX_ARCHIVE_DIR": str(elsewhere),
            "POPEX_OUTBOX_DIR": f"{bucket}/outbox",
        }
        code = (
            "from base.db import session_factory; from exchange import flows; "
            f"print(flows.process_batch(session_factory(), {batch_id}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "completed"
        assert not elsewhere.exists()
        with Session(engine) as session:
            batch = session.get_one(Batch, batch_id)
            assert batch.archive_path.startswith(f"{bucket}/archive/gaj_hj/")
            assert session.scalars(select(Batch.state)).all() == ["completed"]
        engine.dispose()
    assert _names(f"{bucket}/outbox/gaj_hj") == ["gaj_hj_20261101.csv.receipt.csv"]


@pytest.mark.slow
def test_popex_ingest_takes_a_landing_folder_in_a_bucket(endpoint, bucket, tmp_path) -> None:
    """`popex ingest --dir s3://…` (and one file by its URI), as an operator types it, in a process of its own."""
    landing = f"{bucket}/landing"
    drop = tmp_path / "drop"
    drop.mkdir()
    _put(write_feed(drop, "gaj_hj", date(2026, 11, 1), [ZHANG]), f"{landing}/gaj_hj_20261101.csv")
    _put(write_feed(drop, "gaj_hj", date(2026, 11, 2), [LI]), f"{landing}/gaj_hj_20261102.csv")
    later = f"{bucket}/elsewhere/gaj_hj_20261103.csv"
    _put(write_feed(drop, "gaj_hj", date(2026, 11, 3), [ZHANG, LI]), later)
    with migrated_database("popex_s3_cli") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            make_areas(session)
            session.commit()
        env = {
            **os.environ,
            **KEYS,
            "POPEX_DATABASE_URL": url,
            "POPEX_S3_ENDPOINT_URL": endpoint,
            "POPEX_ARCHIVE_DIR": f"{bucket}/archive",
            "POPEX_OUTBOX_DIR": f"{bucket}/outbox",
            "COLUMNS": "200",
        }
        popex = str(Path(sys.executable).with_name("popex"))
        for args in (["--dir", landing], [later], [f"{bucket}/landing/gaj_hj_20261109.csv"]):
            done = subprocess.run(
                [popex, "ingest", *args], env=env, capture_output=True, text=True, timeout=300, check=False
            )
            if args[0].endswith("20261109.csv"):  # a URI with nothing behind it: said in words
                assert done.returncode == 2 and "不存在" in done.stderr, done.stderr
                assert "Traceback" not in done.stderr
            else:
                assert done.returncode == 0, done.stdout + done.stderr
                assert done.stdout.count("状态 已完成") == (2 if args[0] == "--dir" else 1), done.stdout
        with Session(engine) as session:
            rows = session.execute(
                select(Batch.file_name, Batch.state, Batch.archive_path).order_by(Batch.id)
            )
            got = [(name, state, path.startswith(f"{bucket}/archive/gaj_hj/")) for name, state, path in rows]
        engine.dispose()
    assert got == [
        ("gaj_hj_20261101.csv", "completed", True),
        ("gaj_hj_20261102.csv", "completed", True),
        ("gaj_hj_20261103.csv", "completed", True),
    ]
    assert len(_names(f"{bucket}/outbox/gaj_hj")) == 3
    assert not (tmp_path / "archive").exists()
