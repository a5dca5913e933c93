"""Worker counts come from settings (POPEX_PARSE_WORKERS, POPEX_SERVE_WORKERS), never from the host's cores."""

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from base.settings import WorkerSettings, worker_settings
from collection.config import collection_settings
from decision.config import decision_settings
from exchange import staging
from exchange.readers import open_feed_file
from schemas.feed_spec import get_feed_spec
from tests.feedfiles import hj, write_feed


@pytest.fixture
def workers_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment, with the cached worker settings read again after each change and at the end."""
    worker_settings.cache_clear()
    yield monkeypatch
    worker_settings.cache_clear()


def test_defaults_do_not_follow_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POPEX_PARSE_WORKERS", raising=False)
    monkeypatch.delenv("POPEX_SERVE_WORKERS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    settings = WorkerSettings()
    assert (settings.parse_workers, settings.serve_workers) == (2, 1)


def test_zero_workers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POPEX_PARSE_WORKERS", "0")
    with pytest.raises(ValueError, match="parse_workers"):
        WorkerSettings()


@pytest.mark.parametrize("configured", [1, 3])
def test_parse_starts_the_configured_number_of_processes(
    configured: int, workers_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[int] = []

    class CountingPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs: Any) -> None:
            started.append(max_workers)
            super().__init__(max_workers, **kwargs)

    workers_env.setenv("POPEX_PARSE_WORKERS", str(configured))
    workers_env.setattr(staging, "ProcessPoolExecutor", CountingPool)
    workers_env.setattr(staging, "PARALLEL_MIN_BYTES", 0)  # a small file goes to the pool too
    workers_env.setattr(staging, "CHUNK_ROWS", 2)
    rows = [hj(f"K{i}", f"33010219800101{i:03d}X", f"张{i}", "男", "1980-01-01") for i in range(7)]
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), rows)
    feed = open_feed_file(path, get_feed_spec("gaj_hj"))
    chunks = list(
        staging.staged_chunks(feed, batch_id=1, known_areas={"330102001001"}, today=date(2026, 11, 3))
    )

    assert started == ([] if configured == 1 else [configured])
    assert [n for _, n in chunks] == [2, 2, 2, 1]


@pytest.mark.parametrize(("env", "option", "expected"), [(None, None, 1), ("3", None, 3), ("3", "2", 2)])
def test_serve_starts_the_configured_number_of_processes(
    env: str | None, option: str | None, expected: int, workers_env: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from popex.cli import app

    runs: list[dict[str, Any]] = []
    workers_env.setattr(uvicorn, "run", lambda target, **kwargs: runs.append(kwargs))
    workers_env.setenv("POPEX_COLLECTION_SECRET_KEY", "test-key")  # no secret file written under var/
    workers_env.setenv("POPEX_DECISION_SECRET_KEY", "test-key")
    if env is None:
        workers_env.delenv("POPEX_SERVE_WORKERS", raising=False)
    else:
        workers_env.setenv("POPEX_SERVE_WORKERS", env)
    collection_settings.cache_clear()
    decision_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["serve", *(["--workers", option] if option else [])])
    finally:
        collection_settings.cache_clear()
        decision_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert [r["workers"] for r in runs] == [expected]
