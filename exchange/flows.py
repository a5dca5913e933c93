"""Multi-step jobs: a received file through every step, each step its own transaction (what DAGs call)."""

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select, text

from base.db import SessionFactory, transaction
from exchange import gate, service
from exchange.readers import parse_file_name
from registry.models import Batch, Delivery

log = logging.getLogger(__name__)
STEPS: dict[str, Callable[..., object]] = {
    "parse": service.parse_batch,
    "gate": gate.run_gate,
    "resolve": service.resolve_batch,
    "merge": service.merge_batch,
    "publish": service.publish_batch,
}


# Tables a step writes in bulk. After a large batch their planner statistics are refreshed at once:
# autovacuum comes later, and a plan made for the table as it was before a 500,000-row load was
# measured 30 times slower (a full scan and sort where an index lookup per person was right).
STEP_TABLES = {
    "parse": ("source_record",),
    "resolve": ("person", "person_identifier", "link"),
    "merge": ("person", "person_version"),
    "publish": ("change_event",),
}
ANALYZE_MIN_ROWS = 20_000


def run_step(factory: SessionFactory, step: str, batch_id: int, **kwargs: object) -> str:
    """Run one step on a batch in its own transaction, record its duration; returns the batch state."""
    started = time.perf_counter()
    with transaction(factory) as session:
        STEPS[step](session=session, batch_id=batch_id, **kwargs)
        rows = session.scalars(select(Batch.rows_received).where(Batch.id == batch_id)).one()
        if rows >= ANALYZE_MIN_ROWS:
            for table in STEP_TABLES.get(step, ()):
                session.execute(text(f"ANALYZE {table}"))
        seconds = round(time.perf_counter() - started, 3)
        session.execute(
            text(
                "UPDATE batch SET step_seconds = step_seconds || jsonb_build_object(CAST(:s AS text), CAST(:t AS float8)) "
                "WHERE id = :b"
            ),
            {"s": step, "t": seconds, "b": batch_id},
        )
        return session.scalars(select(Batch.state).where(Batch.id == batch_id)).one()


def process_batch(factory: SessionFactory, batch_id: int, progress: service.Progress | None = None) -> str:
    """Every step in order; stops at a state that needs a person (rejected, quarantined)."""
    state = ""
    for step in STEPS:
        state = run_step(
            factory, step, batch_id, **({"progress": progress} if step == "parse" and progress else {})
        )
        if state in ("rejected", "quarantined"):
            break
    return state


@dataclass
class Ingested:
    """What ingesting one file did."""

    batch_id: int
    file_name: str
    duplicate: bool
    state: str


def ingest_file(
    factory: SessionFactory,
    path: Path,
    *,
    channel: str = "cli",
    source: str | None = None,
    as_of: date | None = None,
    progress: service.Progress | None = None,
) -> Ingested:
    """Receive a file and run it through every step (a file already received is not applied twice)."""
    with transaction(factory) as session:
        received = service.receive_file(
            session=session, path=path, channel=channel, source=source, as_of=as_of
        )
        batch_id, duplicate = received.batch.id, received.duplicate
    state = process_batch(factory, batch_id, progress)
    return Ingested(batch_id, path.name, duplicate, state)


def landing_files(folder: Path) -> list[Path]:
    """Files in a landing folder in delivery order: as-of date, then source, then sequence."""
    found = []
    for path in folder.iterdir():
        if not path.is_file():
            continue
        try:
            name = parse_file_name(path.name)
        except service.FeedFileError:
            log.warning("landing: ignoring %s (name does not follow the standard)", path.name)
            continue
        found.append(((name.as_of, name.source, name.seq), path))
    return [p for _, p in sorted(found)]


RECEIVED_DIR = "_received"  # where a landing folder's files go once received: <folder>/_received/<as-of>/
REFUSED_DIR = "_refused"  # … and those the intake refused (source, size): <folder>/_refused/<run's as-of>/
UNFINISHED = ("received", "parsed", "gated", "resolved", "merged")  # states a later step moves on


def receive_landing(factory: SessionFactory, folder: Path, as_of: date) -> list[int]:
    """The batches a day's run works on, in delivery order: the landing folder's files for this day or
    an earlier one (late files too), each archived, registered and then moved out of the folder to
    _received/<as-of>/, and every batch of this day or earlier that no run has finished (pushed
    through the API, or left by a run that failed part-way).

    A file the intake refuses (a source it does not know, over the size limit) is archived and audited
    as refused there and moved to _refused/: it does not stop the other departments' files. (A file
    whose name breaks the standard is left where it is, with a warning: it may still be being written.)

    Safe to retry: a file already received from a landing folder (same name and content, its move
    interrupted) gives its batch without a second delivery, and moved files are not seen again.
    """
    refused = folder / REFUSED_DIR / as_of.strftime("%Y%m%d")
    batch_ids: list[int] = []
    for path in landing_files(folder):
        name = parse_file_name(path.name)
        if name.as_of > as_of:
            continue
        try:
            with transaction(factory) as session:
                received = service.receive_file(
                    session=session, path=path, channel="landing", once_per_name=True
                )
                known = received.batch.id
        except service.FeedFileError as exc:
            log.warning("landing: %s refused (%s)", path.name, exc.code)
            _move(path, refused)
            continue
        batch_ids.append(known)
        _move(path, folder / RECEIVED_DIR / name.as_of.strftime("%Y%m%d"))
    with transaction(factory) as session:
        ordered = session.scalars(
            text(
                "SELECT id FROM batch WHERE id = ANY(:ids) OR (state = ANY(:open) AND as_of_date <= :d) "
                "ORDER BY as_of_date, source, seq, id"
            ),
            {"ids": batch_ids, "open": list(UNFINISHED), "d": as_of},
        ).all()
    return list(ordered)


def _move(path: Path, target_dir: Path) -> None:
    """Out of the landing folder (it is archived by hash): a same-named file moved earlier is kept."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():
        n += 1
        target = target_dir / f"{path.stem}.{n}{path.suffix}"
    shutil.move(path, target)


def run_step_all(factory: SessionFactory, step: str, batch_ids: list[int]) -> dict[int, str]:
    """One step over the batches in order; batches stopped earlier (rejected, quarantined) are left alone."""
    return {batch_id: run_step(factory, step, batch_id) for batch_id in batch_ids}


def write_receipts(factory: SessionFactory, batch_ids: list[int], outbox: Path) -> list[Path]:
    """Each batch's receipt CSV into outbox/<source>/<file name>.receipt.csv, once for every name the
    batch was delivered under (an empty daily file has the bytes of the day before's: one batch, a
    receipt for each day's file); rewritten if it exists."""
    written = []
    for batch_id in batch_ids:
        with transaction(factory) as session:
            receipt = service.build_receipt(session=session, batch_id=batch_id)
            names = session.scalars(
                select(Delivery.file_name)
                .where(Delivery.batch_id == batch_id)
                .distinct()
                .order_by(Delivery.file_name)
            ).all()
        for name in names or [receipt.file_name]:
            target = outbox / receipt.source / f"{name}.receipt.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(receipt.csv_text(), encoding="utf-8-sig")
            written.append(target)
    return written
