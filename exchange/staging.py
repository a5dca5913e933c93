"""Rows of a received file → COPY text for source_record, on POPEX_PARSE_WORKERS processes.

The reader streams rows in the main process (and spots repeated lines, which needs the whole file);
worker processes map, normalise and validate chunks of rows and hand back CSV text for COPY. At most
a few chunks are in flight, so memory stays flat whatever the file size. Small files are done in the
main process: starting workers would cost more than it saves.
"""

import csv
import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from multiprocessing.context import BaseContext

from base.settings import worker_settings
from exchange.readers import FeedFile
from registry.records import DuplicateRows, RecordBuilder, Row
from schemas.feed_spec import get_feed_spec

# Small chunks keep both workers and the COPY busy to the end: with 20,000 rows a 65,000-row file was
# four chunks, and a worker idled while the other built the last one and its rows were copied. The
# household snapshot of the 100,000-person city (65,094 rows, 2 workers, 6 alternate runs): parse and
# COPY 5.0-5.9 s (median 5.8) with 2,000-row chunks, 5.8-7.5 s (median 6.6) with 20,000.
CHUNK_ROWS = 2_000
# From this size the workers start (forked: milliseconds, everything is imported). With 8 MiB, files of a
# few MB were built by one process: the 100,000-person city's 35,063-row floating-population snapshot
# (6.5 MB) parsed and copied in 6.1-6.9 s alone, 3.9-4.1 s on two workers; a 5,500-row file (1 MB)
# 1.0-1.3 s against 0.9 s; at 280 KB (1,500 rows) no difference.
PARALLEL_MIN_BYTES = 512 * 1024

_builder: RecordBuilder | None = None  # one per worker process


def _init(source: str, known_areas: set[str], today: date) -> None:
    global _builder
    _builder = RecordBuilder(get_feed_spec(source), known_areas=known_areas, today=today)


def _build(batch_id: int, rows: list[Row]) -> tuple[str, int]:
    """CSV text (COPY format) of a chunk of rows, and the number of rows."""
    assert _builder is not None
    out = io.StringIO()
    csv.writer(out).writerows(_builder.build_chunk(rows).copy_rows(batch_id, _builder.spec.source))
    return out.getvalue(), len(rows)


def _chunks(feed: FeedFile) -> Iterator[list[Row]]:
    duplicates = DuplicateRows()
    columns = feed.spec.column_names
    chunk: list[Row] = []
    for row in feed.rows():
        notes = [f"{n.code}:{n.field}" if n.field else str(n.code) for n in row.notes]
        cells = tuple(map(row.values.get, columns))  # plain tuples travel to the workers faster than dicts
        chunk.append((row.number, cells, notes, duplicates.first(row.number, cells)))
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pool_context() -> BaseContext:
    """How the workers start. Forked when this process runs one thread: a worker starts in milliseconds
    with everything imported, only builds text and ends with os._exit, so it never touches the database
    connections it inherited. From a process with other threads (a web server's, a scheduler's) a
    forked child would inherit every lock those threads held at that moment (logging's, an import's, a
    pool's) with no thread to release it, and could wait forever: the workers are then forked from a
    fork server, a fresh one-thread process that imported this module (once per process, ~0.3 s)."""
    if threading.active_count() == 1:
        return get_context("fork")
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def staged_chunks(
    feed: FeedFile, *, batch_id: int, known_areas: set[str], today: date, workers: int | None = None
) -> Iterator[tuple[str, int]]:
    """(COPY text, rows) per chunk of the file, in file order; `workers` processes (default
    POPEX_PARSE_WORKERS) build them, or this process alone when that is 1 or the file is small."""
    args = (feed.spec.source, known_areas, today)
    workers = workers or worker_settings().parse_workers
    if workers < 2 or feed.path.stat().st_size < PARALLEL_MIN_BYTES:
        _init(*args)
        for chunk in _chunks(feed):
            yield _build(batch_id, chunk)
        return
    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=_init, initargs=args) as pool:
        pending: list[Future[tuple[str, int]]] = []
        for chunk in _chunks(feed):
            pending.append(pool.submit(_build, batch_id, chunk))
            if len(pending) > workers * 2:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
