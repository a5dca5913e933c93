"""A department still uploading into the landing folder: the run takes the file only once it is whole."""

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from base.settings import storage_settings
from exchange import flows, service
from registry.models import Batch, Delivery
from tests.conftest import migrated_database
from tests.feedfiles import hj, write_feed

DAY = date(2026, 11, 1)


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A landing file must be quiet for 1 s; a run waits up to 5 s for it."""
    monkeypatch.setenv("POPEX_LANDING_QUIET_SECONDS", "1")
    monkeypatch.setenv("POPEX_LANDING_PATIENCE_SECONDS", "5")
    storage_settings.cache_clear()
    yield monkeypatch
    storage_settings.cache_clear()


def _rows(n: int) -> list[dict[str, str]]:
    return [hj(f"H{i}", f"3301021980010{i:04d}", f"张{i}", "男", "1980-01-01") for i in range(n)]


def _upload(whole: bytes, target: Path, *, pieces: int, pause: float) -> threading.Thread:
    """Write `whole` into target in pieces, as a slow upload straight into the folder does."""

    def run() -> None:
        step = -(-len(whole) // pieces)
        with target.open("wb") as out:
            for start in range(0, len(whole), step):
                out.write(whole[start : start + step])
                out.flush()
                time.sleep(pause)

    writer = threading.Thread(target=run)
    writer.start()
    return writer


def test_a_file_still_being_uploaded_is_taken_whole(quiet, session, factory, areas, tmp_path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    whole = write_feed(tmp_path, "gaj_hj", DAY, _rows(40)).read_bytes()
    writer = _upload(whole, landing / "gaj_hj_20261101.csv", pieces=8, pause=0.25)  # ~2 s of writing
    try:
        time.sleep(0.3)  # the upload has begun: a part of the file is there
        assert 0 < (landing / "gaj_hj_20261101.csv").stat().st_size < len(whole)
        day = flows.receive_landing(factory, landing, DAY)
    finally:
        writer.join()

    [batch] = [session.get_one(Batch, b) for b in day]
    assert batch.sha256 == hashlib.sha256(whole).hexdigest()  # the whole file, not the part seen first
    assert Path(batch.archive_path).read_bytes() == whole
    assert (landing / flows.RECEIVED_DIR / "20261101" / "gaj_hj_20261101.csv").read_bytes() == whole


def test_a_file_that_keeps_changing_is_left_for_the_next_run(
    quiet, session, factory, areas, tmp_path, caplog
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    whole = write_feed(tmp_path, "gaj_hj", DAY, _rows(40)).read_bytes()
    writer = _upload(whole, landing / "gaj_hj_20261101.csv", pieces=40, pause=0.2)  # ~8 s: past patience
    try:
        time.sleep(0.3)
        with caplog.at_level(logging.WARNING, logger="exchange.flows"):
            started = time.monotonic()
            assert flows.receive_landing(factory, landing, DAY) == []
            waited = time.monotonic() - started
    finally:
        writer.join()

    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert (landing / "gaj_hj_20261101.csv").read_bytes() == whole  # still there, for the next run
    assert "gaj_hj_20261101.csv is still being written" in caplog.text
    assert waited < 6  # gave up within its patience, not at the end of the upload

    # The next run finds it quiet and takes it.
    old = time.time() - 60
    os.utime(landing / "gaj_hj_20261101.csv", (old, old))
    [batch_id] = flows.receive_landing(factory, landing, DAY)
    assert session.get_one(Batch, batch_id).sha256 == hashlib.sha256(whole).hexdigest()


def test_a_file_written_to_while_archived_is_not_kept(
    quiet, session, factory, areas, tmp_path, caplog
) -> None:
    """Quiet long enough, then written to during the receive (a writer that paused): nothing of it is
    kept, and it stays for the next run."""
    landing = tmp_path / "landing"
    landing.mkdir()
    path = write_feed(landing, "gaj_hj", DAY, _rows(3))
    old = time.time() - 60
    os.utime(path, (old, old))
    receive = service.receive_file

    def receive_while_written(**kwargs):
        received = receive(**kwargs)
        with path.open("ab") as out:  # the writer resumes while the file is being archived
            out.write(b"H9,1,330102198001019999,\n")
        return received

    quiet.setattr(service, "receive_file", receive_while_written)
    with caplog.at_level(logging.WARNING, logger="exchange.flows"):
        assert flows.receive_landing(factory, landing, DAY) == []

    assert session.scalar(select(func.count()).select_from(Batch)) == 0
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert path.exists() and "changed while it was archived" in caplog.text


def test_a_file_gone_since_the_listing_is_skipped(quiet, session, factory, areas, tmp_path, caplog) -> None:
    """A department takes a file back (or another run moves it) between the listing and its turn: the
    other files are received all the same."""
    landing = tmp_path / "landing"
    landing.mkdir()
    kept = write_feed(landing, "gaj_hj", DAY, _rows(2))
    gone = write_feed(landing, "wjw_sw", DAY, [])
    for path in (kept, gone):
        os.utime(path, (time.time() - 60, time.time() - 60))
    listed = flows.landing_files(landing)
    gone.unlink()
    quiet.setattr(flows, "landing_files", lambda folder: listed)

    with caplog.at_level(logging.WARNING, logger="exchange.flows"):
        [batch_id] = flows.receive_landing(factory, landing, DAY)

    assert session.get_one(Batch, batch_id).file_name == kept.name
    assert "wjw_sw_20261101.csv is gone since the folder was listed" in caplog.text


@pytest.mark.parametrize("overlap", [False, True], ids=["as-they-come", "both-receiving"])
def test_two_runs_at_once_take_a_file_being_uploaded_once(quiet, archive_dir, tmp_path, overlap) -> None:
    """The scheduler's run and an operator's (or two runs of the day) wait on the same upload, each
    with its own connections: one delivery of the whole file, one batch, and neither run fails. Left
    to themselves the first to wake moves the file before the other looks; `both-receiving` holds each
    run at the start of its receive until the other is there too."""
    landing = tmp_path / "landing"
    landing.mkdir()
    whole = write_feed(tmp_path, "gaj_hj", DAY, _rows(40)).read_bytes()
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    if overlap:
        receive, inside = service.receive_file, threading.Barrier(2, timeout=10)

        def receive_together(**kwargs):
            inside.wait()
            return receive(**kwargs)

        quiet.setattr(service, "receive_file", receive_together)
    with migrated_database("popex_landing_race") as url:
        engine = create_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)

        def run(name: str) -> None:
            try:
                start.wait()
                results[name] = flows.receive_landing(factory, landing, DAY)
            except BaseException as exc:  # reported below, with the run's name
                errors.append(exc)

        writer = _upload(whole, landing / "gaj_hj_20261101.csv", pieces=8, pause=0.25)
        try:
            time.sleep(0.3)
            runs = [threading.Thread(target=run, args=(name,)) for name in ("scheduler", "operator")]
            for thread in runs:
                thread.start()
            for thread in runs:
                thread.join()
        finally:
            writer.join()
        with factory() as session:
            batches = session.scalars(select(Batch)).all()
            deliveries = session.scalar(select(func.count()).select_from(Delivery))
        engine.dispose()

    assert errors == []
    [batch] = batches
    assert batch.sha256 == hashlib.sha256(whole).hexdigest()
    assert deliveries == 1
    assert sorted(results["scheduler"] + results["operator"]) in ([batch.id], [batch.id, batch.id])
    assert (landing / flows.RECEIVED_DIR / "20261101" / "gaj_hj_20261101.csv").read_bytes() == whole
    assert not (landing / "gaj_hj_20261101.csv").exists()
