"""Units of work of the exchange: receive → parse → gate → resolve → merge → publish, and receipts.

Each function is one transaction keyed on a batch id and moves the batch from one state to the next;
called again on a batch already past that state it does nothing, so every step is safe to retry.
"""

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from base import clock, storage
from base.crashpoint import stop_point
from base.settings import storage_settings
from base.storage import file_sha256 as file_sha256

# FeedFileError and open_feed_file are public here: the collection platform reads officers' sq_cj uploads
# with the exchange standard's reader.
from base.tabular import safe_cell
from exchange.exceptions import FeedFileError as FeedFileError
from exchange.exceptions import IssueCode
from exchange.readers import FileName, identify_file
from exchange.readers import open_feed_file as open_feed_file
from exchange.staging import staged_chunks
from registry import batches, events, merge, resolve
from registry.audit import record_audit
from registry.feeds import sync_feeds
from registry.models import Area, Batch, Delivery
from registry.records import COPY_COLUMNS, describe
from schemas.canonical import BatchState, BatchStep
from schemas.feed_spec import FeedSpec, UnknownSourceError, get_feed_spec

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass
class Received:
    """A received file: its batch, and whether it repeats a delivery (the same bytes with rows, or under a
    name already delivered; a quiet feed's header-only file for a new day is that day's delivery)."""

    batch: Batch
    duplicate: bool


def archive_file(path: Path, sha256: str, folder: str) -> Path | str:
    """Copy the hashed file, read-only, to archive/<folder>/<sha256[:2]>/<sha256>/<name> (a local folder
    or a bucket: POPEX_ARCHIVE_DIR); keep an existing copy."""
    archive = storage.location(storage_settings().archive_dir)
    return storage.store_once(path, storage.join(archive, folder, sha256[:2], sha256, path.name))


def identify(path: Path, source: str | None, as_of: date | None) -> tuple[FileName, FeedSpec]:
    """Source and as-of date from the standard file name, or from the operator when the name lacks them."""
    try:
        name, spec = identify_file(path.name)
    except FeedFileError as exc:
        if source is None or exc.code != IssueCode.FILE_NAME:
            raise
        spec = get_feed_spec(source)
        return FileName(source, as_of or clock.today(), 1, path.suffix.lower().lstrip(".")), spec
    if source is not None and source != name.source:
        raise FeedFileError(
            IssueCode.FILE_NAME,
            f"文件 {path.name} 的名称表明来源是 {name.source}，与指定的来源 {source} 不符",
            file=path.name,
        )
    return name, spec


# A batch in these states has had its receipts written (by the step that settled it: write_receipts).
RECEIPTED = frozenset({BatchState.COMPLETED, BatchState.REJECTED, BatchState.QUARANTINED})


def receive_file(
    *,
    session: Session,
    path: Path,
    channel: str = "cli",
    actor: str = "operator",
    source: str | None = None,
    as_of: date | None = None,
    once_per_name: bool = False,
    any_channel: bool = False,
    outbox: Path | str | None = None,
) -> Received:
    """Archive the file with its hash first, then register it as a batch (once per distinct content).

    A file over the size limit is refused before anything is copied (it stays where it was sent, and
    the refusal is audited), as the push API refuses it while streaming. With `once_per_name`, the
    same name and content delivered before through the same channel add no delivery (a landing
    folder's file seen again by a retried run, its move interrupted: exchange.flows.receive_landing),
    or through any channel with `any_channel` too (an operator finishing a delivered file:
    exchange.flows.ingest_file). A new day's file joining a batch already settled gets its receipt in
    `outbox` (default POPEX_OUTBOX_DIR) at once.
    """
    size, limit = path.stat().st_size, storage_settings().max_upload_bytes
    if size > limit:
        record_audit(
            session=session,
            actor=actor,
            action="file.refused",
            object_type="file",
            object_id=path.name,
            detail={"code": "FILE_TOO_LARGE", "size": size, "limit": limit},
        )
        session.commit()
        raise FeedFileError(
            IssueCode.FILE_TOO_LARGE,
            f"文件 {path.name} 有 {size:,} 字节（{size / 2**20:,.0f} MiB），超过上限 {limit:,} 字节"
            f"（{limit / 2**20:,.0f} MiB，由 POPEX_MAX_UPLOAD_BYTES 设定；全市首次全量可临时调高），未接收",
            file=path.name,
        )
    sha256 = file_sha256(path)
    try:
        name, spec = identify(path, source, as_of)
    except (FeedFileError, UnknownSourceError) as exc:
        archived = archive_file(path, sha256, "_unidentified")
        record_audit(
            session=session,
            actor=actor,
            action="file.refused",
            object_type="file",
            object_id=path.name,
            detail={
                "sha256": sha256,
                "code": str(getattr(exc, "code", "UNKNOWN_SOURCE")),
                "archive": str(archived),
            },
        )
        session.commit()  # the refusal stays on record although the caller's unit of work fails
        if isinstance(exc, UnknownSourceError):
            raise FeedFileError(IssueCode.UNKNOWN_SOURCE, str(exc), file=path.name) from exc
        raise
    archived = archive_file(path, sha256, spec.source)
    sync_feeds(session=session)
    # A duplicate of this source's own earlier file only: another department's equal bytes say nothing
    # of its batches, and this file is processed as this source's.
    existing = session.scalar(select(Batch).where(Batch.source == spec.source, Batch.sha256 == sha256))
    if existing is not None and once_per_name:
        seen = select(Delivery.id).where(Delivery.batch_id == existing.id, Delivery.file_name == path.name)
        if not any_channel:
            seen = seen.where(Delivery.channel == channel)
        if session.scalar(seen.limit(1)) is not None:
            return Received(existing, True)
    batch = existing or Batch(
        source=spec.source,
        file_name=path.name,
        sha256=sha256,
        size_bytes=path.stat().st_size,
        archive_path=str(archived),
        as_of_date=name.as_of,
        seq=name.seq,
        channel=channel,
        state=BatchState.RECEIVED,
        step_seconds={},
    )
    if existing is None:
        session.add(batch)
        session.flush()
    # The same bytes again are a duplicate delivery when they carry rows, or come under a name already
    # delivered. A file with no data rows under a new day's name is that day's "nothing changed" file:
    # a quiet feed sends the same header-only bytes every day, and each is on time, not a duplicate.
    repeated = existing is not None and (
        existing.rows_received > 0
        or session.scalar(
            select(Delivery.id)
            .where(Delivery.batch_id == existing.id, Delivery.file_name == path.name)
            .limit(1)
        )
        is not None
    )
    session.add(
        Delivery(
            source=spec.source,
            file_name=path.name,
            as_of_date=name.as_of,
            seq=name.seq,
            sha256=sha256,
            size_bytes=path.stat().st_size,
            channel=channel,
            batch_id=batch.id,
            duplicate=repeated,
        )
    )
    record_audit(
        session=session,
        actor=actor,
        action="file.duplicate" if repeated else "file.received",
        object_type="batch",
        object_id=str(batch.id),
        detail={"file": path.name, "sha256": sha256, "channel": channel},
    )
    session.flush()
    if existing is not None and not repeated and existing.state in RECEIPTED:
        # A quiet day's file joining a batch whose receipts are already out: no step will run on the
        # batch again, so this day's file gets its receipt now.
        write_receipts(session=session, batch_id=existing.id, outbox=outbox)
    stop_point("receive")  # a test hook (base.crashpoint): nothing unless a test asks to stop here
    return Received(batch, repeated)


COPY_SQL = f"COPY source_record ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"


def parse_batch(
    *, session: Session, batch_id: int, progress: Progress | None = None, outbox: Path | str | None = None
) -> Batch:
    """Read the archived file, validate every row and stage it into source_record with COPY. A file
    that cannot be read is rejected, and its receipt (saying why) goes to the outbox at once.

    An archive in a bucket is read from a local copy made for this step (checked against the batch's
    SHA-256): a worker needs no disk shared with the one that received the file."""
    batch = session.get_one(Batch, batch_id, with_for_update=True)
    if batch.state != BatchState.RECEIVED:
        return batch
    spec = get_feed_spec(batch.source)
    with storage.local_copy(storage.location(batch.archive_path), sha256=batch.sha256) as path:
        try:
            feed = open_feed_file(path, spec, max_bytes=storage_settings().max_upload_bytes)
            batch.encoding, batch.file_format = feed.encoding, feed.format
            known = set(session.scalars(select(Area.code).where(Area.level == "community")))
            session.execute(text("DELETE FROM source_record WHERE batch_id = :b"), {"b": batch_id})
            cursor = session.connection().connection.cursor()
            # Dates after the extract's as-of day are impossible; using that day keeps a re-run identical.
            for copy_text, rows in staged_chunks(
                feed, batch_id=batch_id, known_areas=known, today=batch.as_of_date + timedelta(days=1)
            ):
                cursor.copy_expert(COPY_SQL, io.StringIO(copy_text))
                if progress:
                    progress(rows)
        except FeedFileError as exc:
            session.rollback()
            batch = batches.advance(
                session,
                batch_id,
                to=BatchState.REJECTED,
                expect=BatchState.RECEIVED,
                error=f"[{exc.code}] {exc.message}",
            )
            record_audit(
                session=session,
                actor="pipeline",
                action="batch.rejected",
                object_type="batch",
                object_id=str(batch_id),
                detail={"code": str(exc.code), "row": exc.row, "field": exc.field},
            )
            write_receipts(session=session, batch_id=batch_id, outbox=outbox)
            return batch
    batch.gate_result = {"warnings": [{"code": str(w.code), "message": w.message} for w in feed.warnings]}
    batches.advance(session, batch_id, to=BatchState.PARSED, expect=BatchState.RECEIVED)
    resolve.update_counts(session=session, batch_id=batch_id)
    session.refresh(batch)
    return batch


def _advance(session: Session, batch_id: int, step: BatchStep, work: Callable[..., object]) -> Batch:
    """Run a registry step on the batch when it is in the state that step starts from; else leave it
    (the step moves the batch on: registry.batches)."""
    batch = session.get_one(Batch, batch_id, with_for_update=True)
    if batch.state == step.starts:
        work(session=session, batch_id=batch_id)
        session.refresh(batch)
    return batch


def resolve_batch(*, session: Session, batch_id: int) -> Batch:
    """Link the batch's accepted records to persons (registry.resolve)."""
    return _advance(session, batch_id, BatchStep.RESOLVE, resolve.resolve_batch)


def merge_batch(*, session: Session, batch_id: int) -> Batch:
    """Recompute the golden records the batch touched (registry.merge)."""
    return _advance(session, batch_id, BatchStep.MERGE, merge.merge_batch)


def publish_batch(*, session: Session, batch_id: int) -> Batch:
    """Write the batch's change events for the sharing service (registry.events)."""
    return _advance(session, batch_id, BatchStep.PUBLISH, events.publish_batch)


def complete_batch(*, session: Session, batch_id: int, outbox: Path | str | None = None) -> Batch:
    """The receipt step: the counted batch's receipts into the outbox (default POPEX_OUTBOX_DIR), then
    it is completed."""
    batch = session.get_one(Batch, batch_id, with_for_update=True)
    if batch.state == BatchStep.RECEIPT.starts:
        write_receipts(session=session, batch_id=batch_id, outbox=outbox)
        batches.advance(session, batch_id, to=BatchState.COMPLETED, expect=BatchStep.RECEIPT.starts)
    return batch


def write_receipts(*, session: Session, batch_id: int, outbox: Path | str | None = None) -> list[Path | str]:
    """The batch's receipt CSV into outbox/<source>/<file name>.receipt.csv (default outbox:
    POPEX_OUTBOX_DIR), once for every name the batch was delivered under (an empty daily file has the
    bytes of the day before's: one batch, a receipt for each day's file); rewritten whole (same rows,
    same bytes) if it exists.

    Written by the step that settles the batch: the receipt step (completed), parse (a rejected file)
    and the gate (a quarantined batch). A quarantined batch an operator releases later gets its final
    receipt at completion, in place of the quarantine's (one receipt per delivered file, always the
    batch's latest outcome).

    The rows go from the database to the file as they are read (a city's first household snapshot has
    millions: held in memory, its receipt was the largest thing the pipeline ever held)."""
    folder = storage.location(outbox or storage_settings().outbox_dir)
    summary = build_receipt(session=session, batch_id=batch_id, rows=False)
    names = session.scalars(
        select(Delivery.file_name)
        .where(Delivery.batch_id == batch_id)
        .distinct()
        .order_by(Delivery.file_name)
    ).all()
    written: list[Path | str] = []
    for name in names or [summary.file_name]:
        target = storage.join(folder, summary.source, f"{name}.receipt.csv")
        # Written whole: a department never reads half a receipt.
        with (
            storage.writing_whole(target) as out,
            io.TextIOWrapper(out, encoding="utf-8-sig", newline="") as text_out,
        ):
            csv.writer(text_out).writerows(receipt_lines(session=session, receipt=summary))
        written.append(target)
    return written


RECEIPT_HEADER = ["row", "record_key", "status", "person_id", "reasons"]
RECEIPT_ROWS_SQL = """
    SELECT r.row_no, r.record_key, r.status, p.person_no, r.reasons
    FROM source_record r
    LEFT JOIN link l ON l.source_record_id = r.id
    LEFT JOIN person p ON p.id = l.person_id
    WHERE r.batch_id = :b AND r.row_no > :after ORDER BY r.row_no LIMIT :limit
"""


def receipt_rows(
    *, session: Session, batch_id: int, after_row: int = 0, limit: int | None = None
) -> Iterator[tuple[int, str | None, str, str | None, str]]:
    """A batch's receipt lines (row, record key, status, person number, reasons in words) after row
    `after_row`, at most `limit` of them, read from the database in chunks as they are consumed."""
    found = session.execute(
        text(RECEIPT_ROWS_SQL).execution_options(stream_results=True, yield_per=10_000),
        {"b": batch_id, "after": after_row, "limit": limit},
    )
    for n, key, status, person_no, reasons in found:
        yield n, key, status, person_no, "；".join(describe(code) for code in reasons)


def receipt_lines(*, session: Session, receipt: "Receipt") -> Iterator[list[Any]]:
    """Every CSV line of a receipt (its summary from `build_receipt(rows=False)`): the header, row 0 of
    a batch not taken in, then one line per row as it is read."""
    yield from receipt.csv_head()
    for row in receipt_rows(session=session, batch_id=receipt.batch_id):
        yield _cells(*row)


def _cells(n: int, key: str | None, status: str, person_no: str | None, reasons: str) -> list[Any]:
    """One receipt line as CSV cells: text cells safe for spreadsheets."""
    return [n, safe_cell(key or ""), status, person_no or "", safe_cell(reasons)]


@dataclass
class Receipt:
    """回执: the summary and one line per row."""

    batch_id: int
    file_name: str
    source: str
    state: str
    received: int
    accepted: int
    rejected: int
    review: int
    error: str | None
    gate: dict[str, Any] | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def held(self) -> str | None:
        """Why the batch as a whole was not taken in (a rejected file, a quarantined batch), else None."""
        if self.state == BatchState.REJECTED:
            return f"整文件拒收：{self.error or '文件无法读取'}"
        if self.state == BatchState.QUARANTINED:
            failed = "；".join(str(c.get("message")) for c in (self.gate or {}).get("failed") or [])
            return f"批次质量闸门未通过，整批已隔离，未入库，待平台核查后处理：{failed}"
        return None

    def csv_head(self) -> list[list[Any]]:
        """The receipt's header line, and for a rejected or quarantined batch row 0: the file as a
        whole, its state and why."""
        head: list[list[Any]] = [RECEIPT_HEADER]
        if self.held:
            head.append([0, "", self.state, "", safe_cell(self.held)])
        return head

    def csv_text(self) -> str:
        """row,record_key,status,person_id,reasons — text cells safe for spreadsheets (what
        `write_receipts` writes, for a receipt held in memory)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerows(self.csv_head())
        writer.writerows(
            _cells(r["row"], r["record_key"], r["status"], r["person_id"], r["reasons"]) for r in self.rows
        )
        return out.getvalue()


def find_batch(*, session: Session, ref: str) -> Batch | None:
    """A batch by id or by received file name (the newest with that name)."""
    if ref.isdigit():
        return session.get(Batch, int(ref))
    return session.scalar(select(Batch).where(Batch.file_name == ref).order_by(Batch.id.desc()).limit(1))


def build_receipt(
    *, session: Session, batch_id: int, rows: bool = True, after_row: int = 0, limit: int | None = None
) -> Receipt:
    """The receipt of a batch, straight from its records and links (so it always agrees with them);
    rows=False: the summary alone; after_row, limit: a page of its rows."""
    batch = session.get_one(Batch, batch_id)
    found = receipt_rows(session=session, batch_id=batch_id, after_row=after_row, limit=limit) if rows else ()
    lines = [
        {"row": n, "record_key": key, "status": status, "person_id": person_no, "reasons": reasons}
        for n, key, status, person_no, reasons in found
    ]
    return Receipt(
        batch_id=batch.id,
        file_name=batch.file_name,
        source=batch.source,
        state=batch.state,
        received=batch.rows_received,
        accepted=batch.rows_accepted,
        rejected=batch.rows_rejected,
        review=batch.rows_review,
        error=batch.error,
        gate=batch.gate_result,
        rows=lines,
    )
