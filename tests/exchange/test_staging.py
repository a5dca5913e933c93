"""Parse workers: the same COPY text whichever way they start, and never forked beside other threads."""

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from exchange import staging
from exchange.readers import open_feed_file
from schemas.feed_spec import get_feed_spec
from tests.feedfiles import hj, write_feed

TODAY = date(2026, 11, 3)


@pytest.fixture
def feed_path(tmp_path: Path) -> Path:
    rows = [hj(f"K{i}", f"33010219800101{i:03d}X", f"张{i}", "男", "1980-01-01") for i in range(9)]
    rows.append(hj("K9", "330102198001019990", "李四", "女", "1980-02-30"))  # a rejected row travels too
    return write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), rows)


def _chunks(path: Path, workers: int) -> list[tuple[str, int]]:
    feed = open_feed_file(path, get_feed_spec("gaj_hj"))
    return list(
        staging.staged_chunks(feed, batch_id=7, known_areas={"330102001001"}, today=TODAY, workers=workers)
    )


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every file goes to the pool in chunks of 3; yields the start method of each pool made."""
    methods: list[str] = []

    class RecordingPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs: Any) -> None:
            methods.append(kwargs["mp_context"].get_start_method())
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(staging, "ProcessPoolExecutor", RecordingPool)
    monkeypatch.setattr(staging, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(staging, "CHUNK_ROWS", 3)
    yield methods


# Run in a process of its own: the test session may have threads of its own (a server a fixture keeps).
ONE_THREAD = """
import json, sys, threading
from exchange import staging
from tests.exchange.test_staging import _chunks
from pathlib import Path
staging.PARALLEL_MIN_BYTES, staging.CHUNK_ROWS = 0, 3
chunks = _chunks(Path(sys.argv[1]), workers=2)
print(json.dumps([threading.active_count(), staging.pool_context().get_start_method(), chunks]))
"""


def test_a_one_thread_process_forks_its_workers(feed_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "CHUNK_ROWS", 3)
    alone = _chunks(feed_path, workers=1)
    out = subprocess.run(
        [sys.executable, "-c", ONE_THREAD, str(feed_path)], capture_output=True, text=True, check=True
    ).stdout
    threads, method, chunks = json.loads(out)

    assert (threads, method) == (1, "fork")
    assert [tuple(c) for c in chunks] == alone
    assert [n for _, n in alone] == [3, 3, 3, 1]


def test_beside_other_threads_workers_come_from_a_fork_server(feed_path: Path, pooled: list[str]) -> None:
    alone = _chunks(feed_path, workers=1)
    # Another thread is alive while the pool starts, as a web server's or a scheduler's is: whatever lock
    # it holds at that moment a forked child would inherit held, with no thread left to release it.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _chunks(feed_path, workers=2) == alone
    finally:
        stop.set()
        other.join()

    assert pooled == ["forkserver"]
