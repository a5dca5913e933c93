"""Multi-step jobs: a received file through every step, each step its own transaction (what DAGs call)."""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from base import storage
from base.db import SessionFactory, transaction
from base.progress import say_waiting
from base.settings import storage_settings
from decision import service as decision_service  # the statistics step (pyproject: the one allowed import)
from exchange import gate, service
from exchange.readers import parse_file_name
from registry import batches, partitions
from registry.audit import record_audit
from registry.models import Batch
from schemas.canonical import UNFINISHED_STATES, BatchState, BatchStep

log = logging.getLogger(__name__)


def count_batch(*, session: Session, batch_id: int) -> Batch:
    """The decision statistics take the published batch in (decision.service: a batch counted before,
    e.g. by a rebuild, is not counted twice), and it is counted.

    The batch's row is locked only after the statistics' own lock: a rebuild holding that lock marks
    every merged batch applied, which waits for a lock on the batch's row (the foreign key), and two
    counts at once deadlocked when this step locked the row first.
    """
    batch = session.get_one(Batch, batch_id)
    if batch.state != BatchStep.STATISTICS.starts:
        return batch
    decision_service.refresh_after_batch(session=session, batch_id=batch_id)
    batch = session.get_one(Batch, batch_id, with_for_update=True, populate_existing=True)
    if batch.state == BatchStep.STATISTICS.starts:  # else another run counted it meanwhile
        batches.advance(session, batch_id, to=BatchState.COUNTED, expect=BatchStep.STATISTICS.starts)
    return batch


STEPS: dict[BatchStep, Callable[..., object]] = {
    BatchStep.PARSE: service.parse_batch,
    BatchStep.GATE: gate.run_gate,
    BatchStep.RESOLVE: service.resolve_batch,
    BatchStep.MERGE: service.merge_batch,
    BatchStep.PUBLISH: service.publish_batch,
    BatchStep.STATISTICS: count_batch,
    BatchStep.RECEIPT: service.complete_batch,
}


# Tables a step writes in bulk. After a large batch their planner statistics are refreshed at once:
# autovacuum comes later, and a plan made for the table as it was before a 500,000-row load was
# measured 30 times slower (a full scan and sort where an index lookup per person was right). Of a
# partitioned table, the partitions the step wrote (registry.partitions.analyze_written). Merge
# rewrites persons resolve has just analyzed (their number unchanged, their fields much as resolve
# wrote them from the same records): analyzing `person` again cost 0.22-0.26 s a large batch, and
# without it the identity steps took no longer (BENCHMARKS.md, sixteenth session).
STEP_TABLES = {
    BatchStep.PARSE: ("source_record",),
    BatchStep.RESOLVE: ("person", "person_identifier", "link"),
    BatchStep.PUBLISH: ("change_event",),
}
# Tables a step reads that the step before it wrote in bulk, analyzed as the step begins rather than as
# the writer ends: merge's versions, which publish reads first, are analyzed while the next batch is
# resolved (IdentitySeries), not before its resolve can begin.
STEP_READS = {BatchStep.PUBLISH: ("person_version",)}
ANALYZE_MIN_ROWS = 20_000


# The identity steps read and write the whole register (persons, numbers, links, golden records): two
# batches' steps interleaved would resolve against each other's uncommitted or unmerged persons (issue
# 15: two ingests at once gave 3,182 persons for 3,000 people). One batch at a time per database goes
# through them, under this session-level advisory lock, held from its resolve to its publish.
IDENTITY_STEPS = (BatchStep.RESOLVE, BatchStep.MERGE, BatchStep.PUBLISH)
IDENTITY_LOCK = "hashtext('popex.identity')"
_holding_identity: ContextVar[bool] = ContextVar("holding_identity", default=False)


@contextmanager
def identity_lock(factory: SessionFactory) -> Iterator[None]:
    """Hold the database's identity lock (waiting for it) on a connection of its own, outside the
    steps' transactions; reentrant in this thread. A process that dies releases it with its connection."""
    if _holding_identity.get():
        yield
        return
    with factory() as session:
        bind = session.get_bind()
    # A factory bound to a connection (tests: an outer transaction) locks on that connection.
    conn = (
        bind
        if isinstance(bind, Connection)
        else bind.connect().execution_options(isolation_level="AUTOCOMMIT")
    )
    try:
        if not conn.execute(text(f"SELECT pg_try_advisory_lock({IDENTITY_LOCK})")).scalar_one():
            log.info("identity steps: waiting for another batch's resolve → merge → publish")
            say_waiting("另一批次正在识别、合并与发布（身份锁），本次等待其完成后自动继续……")
            conn.execute(text(f"SELECT pg_advisory_lock({IDENTITY_LOCK})"))
        token = _holding_identity.set(True)
        try:
            yield
        finally:
            _holding_identity.reset(token)
            try:
                conn.execute(text(f"SELECT pg_advisory_unlock({IDENTITY_LOCK})"))
            except DBAPIError:  # the connection went (and the lock with it): the step's error counts
                log.warning("identity lock: its connection was lost before the unlock")
                if conn is not bind:
                    conn.invalidate()  # closed, not pooled: whatever it held goes
    finally:
        if conn is not bind:
            conn.close()


def run_step(factory: SessionFactory, step: str, batch_id: int, **kwargs: object) -> str:
    """Run one step on a batch in its own transaction, record its duration; returns the batch state.

    A failed batch first goes back to where its failed step starts (registry.batches.resume). A step
    that raises leaves the batch failed, with the step and a Chinese error, in a transaction of its own
    after the step's rollback, and gives "failed" (when even that cannot be written, the step's
    exception is raised, or registry.batches.Interrupted when the database connection was lost: the
    batch is still where the step found it). A step called on a batch it does not work on changes
    nothing. An identity step holds the identity lock (identity_lock) unless
    its caller does.
    """
    step = BatchStep(step)
    if step in IDENTITY_STEPS and not _holding_identity.get():
        with identity_lock(factory):
            return run_step(factory, step, batch_id, **kwargs)
    with transaction(factory) as session:
        batches.resume(session, batch_id)
    started = time.perf_counter()
    try:
        with transaction(factory) as session:
            before, received = session.execute(
                select(Batch.state, Batch.rows_received).where(Batch.id == batch_id)
            ).one()
            if before == step.starts and (received or 0) >= ANALYZE_MIN_ROWS:
                for table in STEP_READS.get(step, ()):
                    _analyze(session, batch_id, table, of_batch=True)
            STEPS[step](session=session, batch_id=batch_id, **kwargs)
            state, rows = session.execute(
                select(Batch.state, Batch.rows_received).where(Batch.id == batch_id)
            ).one()
            if state != before:
                if rows >= ANALYZE_MIN_ROWS:
                    for table in STEP_TABLES.get(step, ()):
                        _analyze(session, batch_id, table)
                _record_seconds(session, batch_id, step, time.perf_counter() - started)
            return str(state)
    except Exception as exc:
        try:
            with transaction(factory) as session:
                batches.fail(session, batch_id, step=step, exc=exc)
        except Exception as recording:
            log.error(
                "batch %s: its failure in %s could not be recorded (%s)",
                batch_id,
                step,
                type(recording).__name__,
            )
            if batches.connection_lost(exc) or batches.connection_lost(recording):
                raise batches.Interrupted(batch_id, step) from None
            raise exc from None
        return str(BatchState.FAILED)


def _analyze(session: Session, batch_id: int, table: str, *, of_batch: bool = False) -> None:
    """Refresh a table's planner statistics after a large batch: what this transaction wrote into it, or
    (of_batch) the batch's rows an earlier step's transaction wrote (registry.partitions)."""
    conn = session.connection()
    written = partitions.batch_rows(conn, table, batch_id) if of_batch else None
    analyzed = partitions.analyze_written(conn, table, written)
    log.info("batch %s: %s analyzed (%s)", batch_id, table, ", ".join(analyzed))


def _record_seconds(session: Session, batch_id: int, step: BatchStep, seconds: float) -> None:
    session.execute(
        text(
            "UPDATE batch SET step_seconds = step_seconds || jsonb_build_object(CAST(:s AS text), CAST(:t AS float8)) "
            "WHERE id = :b"
        ),
        {"s": str(step), "t": round(seconds, 3), "b": batch_id},
    )


@dataclass
class Processed:
    """Where processing left a batch, and the steps that moved it on this time; `through`: every step it
    was to run went (it did not stop for a failure or for a person to act)."""

    state: str
    steps: list[BatchStep]
    through: bool = True


def run_to_end(
    factory: SessionFactory,
    batch_id: int,
    progress: service.Progress | None = None,
    *,
    until: BatchStep | None = None,
    on_step: Callable[[BatchStep], None] | None = None,
) -> Processed:
    """Every step the batch still needs, in order, up to completed or up to `until` (it and the steps
    after it are left); a failed batch resumes its failed step. Stops where a person must act (rejected,
    quarantined) or a step failed. Its identity steps run one after the other under one hold of the
    identity lock. `on_step(step)` is told of each step as it begins."""
    with factory() as session:
        batch = session.get_one(Batch, batch_id)
        state = BatchState(batch.state)
        step = BatchStep(batch.failed_step) if batch.failed_step else BatchStep.starting_from(state)
    done: list[BatchStep] = []
    with ExitStack() as held:
        while step is not None and not (until is not None and step in (until, *until.later)):
            if step not in IDENTITY_STEPS:
                held.close()  # the batch is past publish (or before resolve): the lock goes
            elif not _holding_identity.get():
                held.enter_context(identity_lock(factory))
            kwargs = {"progress": progress} if step == BatchStep.PARSE and progress else {}
            if on_step is not None:
                on_step(step)
            after = BatchState(run_step(factory, step, batch_id, **kwargs))
            if after == BatchState.FAILED or after == state:
                return Processed(str(after), done, through=False)
            done.append(step)
            state, step = after, BatchStep.starting_from(after)
    return Processed(str(state), done)


def process_batch(factory: SessionFactory, batch_id: int, progress: service.Progress | None = None) -> str:
    """Run the batch to completed (run_to_end); returns its state."""
    return run_to_end(factory, batch_id, progress).state


@dataclass
class Ingested:
    """What ingesting one file did: `steps` are those this call ran (a rerun finishes what was left)."""

    batch_id: int
    file_name: str
    duplicate: bool
    state: str
    steps: list[BatchStep]
    through: bool = True  # every step ran that was to (as Processed.through)


def _receive(
    factory: SessionFactory, path: Path, *, channel: str, source: str | None, as_of: date | None
) -> tuple[int, bool]:
    """Receive a file (archived, registered); its batch and whether it was received before."""
    with transaction(factory) as session:
        received = service.receive_file(
            session=session,
            path=path,
            channel=channel,
            source=source,
            as_of=as_of,
            once_per_name=True,
            any_channel=True,
        )
        return received.batch.id, received.duplicate


def _audit_recovery(factory: SessionFactory, done: Ingested, channel: str) -> None:
    """A rerun that finished a file received before is audited as batch.recovered with the steps it ran."""
    if done.duplicate and done.steps:
        with transaction(factory) as session:
            record_audit(
                session=session,
                actor="operator",
                action="batch.recovered",
                object_type="batch",
                object_id=str(done.batch_id),
                detail={"file": done.file_name, "channel": channel, "steps": [str(s) for s in done.steps]},
            )


def ingest_file(
    factory: SessionFactory,
    path: Path,
    *,
    channel: str = "cli",
    source: str | None = None,
    as_of: date | None = None,
    progress: service.Progress | None = None,
) -> Ingested:
    """Receive a file and run its batch to completed (a file already received is not applied twice).

    A name and content delivered before, through this channel or any other (a landing folder's file a
    killed run left unfinished), add no delivery: an operator's rerun is a recovery, not a second
    delivery by the department (which the scorecards count). A rerun that finished work is audited as
    batch.recovered with the steps it ran. One file through `ingest_files`; the FeedFileError its
    intake refuses it with is raised.
    """
    [done] = ingest_files(
        factory,
        [path],
        channel=channel,
        source=source,
        as_of=as_of,
        progress=None if progress is None else lambda _name: progress,
    )
    if isinstance(done, service.FeedFileError):
        raise done
    return done


def ingest_files(
    factory: SessionFactory,
    files: Sequence[storage.Location],
    *,
    channel: str = "cli",
    source: str | None = None,
    as_of: date | None = None,
    progress: Callable[[str], service.Progress | None] | None = None,
    stepping: Callable[[str, BatchStep | BatchState | None], None] | None = None,
) -> list[Ingested | service.FeedFileError]:
    """Ingest several files in the order given (a landing folder's: delivery order) the way the daily
    DAG takes a day's files, and say what became of each: what ingesting it did, or the FeedFileError
    its intake refused it with.

    Each file is received, parsed and gated, then resolved, merged and published (under the identity
    lock, in the files' order), then counted into the statistics and receipted. Four threads keep the
    two cores busy (IdentitySeries): while a file is resolved and merged (the database's work), the next one
    is received, parsed and gated (this process's and its parse workers' work, and a COPY), the one
    before is published, and the one before that counted and receipted (decision.service takes batches
    in any order: each refresh adds what its batch changes to what the aggregates hold).

    `progress(file name)` gives a file's parse progress callback; `stepping(file name, step)` is told of
    each step as it begins, with the batch's state (published) while it waits for the file before it
    to be counted, and with None when the file is done with. A batch that fails or stops for a
    person (rejected, quarantined) goes no further; the others go on. batches.Interrupted (the database
    went away) stops the run: a rerun finishes what it left, as for one file. One file, or a factory
    bound to one connection (tests: an outer transaction), goes without threads: each file to its end.
    """
    names = [storage.name(where) for where in files]

    def told(name: str) -> Callable[[BatchStep], None] | None:
        return None if stepping is None else partial(stepping, name)

    def front(i: int) -> Ingested:
        with storage.local_copy(files[i]) as path:
            batch_id, duplicate = _receive(factory, path, channel=channel, source=source, as_of=as_of)
        feed = progress(names[i]) if progress else None
        processed = run_to_end(factory, batch_id, feed, until=BatchStep.RESOLVE, on_step=told(names[i]))
        return Ingested(batch_id, names[i], duplicate, processed.state, processed.steps, processed.through)

    def go(done: Ingested, until: BatchStep | None = None) -> Ingested:
        return _advance(factory, done, until, told(done.file_name))

    def finish(done: Ingested) -> None:
        go(done)
        _audit_recovery(factory, done, channel)
        if stepping is not None:
            stepping(done.file_name, None)

    with factory() as session:
        # One file gains nothing from threads (and its parse workers then fork, in milliseconds, rather
        # than come from a fork server: exchange.staging.pool_context); a factory bound to one connection
        # (tests: an outer transaction) cannot serve two.
        alone = len(files) < 2 or isinstance(session.get_bind(), Connection)
    if alone:
        return _one_at_a_time(len(files), front, go, finish)
    out: list[Ingested | service.FeedFileError] = []
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="popex-ahead")
    behind = ThreadPoolExecutor(max_workers=1, thread_name_prefix="popex-behind")
    finishing: list[Future[None]] = []

    def counted_in_turn(done: Ingested) -> None:
        # Its publish done, it waits for the one before to be counted: its line says so (已发布).
        if stepping is not None and done.through:
            stepping(done.file_name, BatchState(done.state))
        finishing.append(behind.submit(finish, done))

    try:
        with IdentitySeries(factory, go, counted_in_turn) as series:
            coming = [ahead.submit(front, 0)]
            for i in range(len(files)):
                if i + 1 < len(files):
                    coming.append(ahead.submit(front, i + 1))
                try:
                    done = coming[i].result()
                except service.FeedFileError as exc:
                    out.append(exc)
                    continue
                out.append(done)
                series.take(done)
                if not done.through:
                    finishing.append(behind.submit(finish, done))
        for f in finishing:
            f.result()
    finally:
        # On an error, a job already running in the other threads (a file's read and check, a batch's
        # counting and receipt) runs to its end; those not begun are cancelled.
        ahead.shutdown(wait=True, cancel_futures=True)
        behind.shutdown(wait=True, cancel_futures=True)
    return out


def _one_at_a_time(
    count: int,
    front: Callable[[int], Ingested],
    go: Callable[[Ingested, BatchStep], Ingested],
    finish: Callable[[Ingested], None],
) -> list[Ingested | service.FeedFileError]:
    """`ingest_files` without threads: each file through every step before the next is received."""
    out: list[Ingested | service.FeedFileError] = []
    for i in range(count):
        try:
            done = front(i)
        except service.FeedFileError as exc:
            out.append(exc)
            continue
        out.append(go(done, BatchStep.STATISTICS))
        finish(done)
    return out


def _advance(
    factory: SessionFactory,
    done: Ingested,
    until: BatchStep | None = None,
    on_step: Callable[[BatchStep], None] | None = None,
) -> Ingested:
    """The batch's steps up to `until` (run_to_end), unless it stopped before; `done` brought up to date."""
    if done.through:
        more = run_to_end(factory, done.batch_id, until=until, on_step=on_step)
        done.state, done.through = more.state, more.through
        done.steps += more.steps
    return done


class IdentitySeries:
    """Batches through the identity steps in their order, under one hold of the identity lock: each is
    resolved and merged in the calling thread while the one before is published in a thread of its own
    (publish only reads the persons, which resolve only adds to, and writes events; a merge waits for
    the publish before it, which reads the persons merge rewrites). The hold is let go between two
    batches when another session (a batch, a clerk) waits for the lock, which then goes first.

    `go(done, until)` runs a batch's steps up to `until`; `published(done)` is told of each batch once
    its publish has run (failed or not), in the calling thread. Leaving the block waits for the last
    publish; on an error, for the one under way, before the lock goes. A factory bound to one connection
    (tests: an outer transaction) cannot serve two threads: each batch is then published at once.
    """

    def __init__(
        self,
        factory: SessionFactory,
        go: Callable[[Ingested, BatchStep], Ingested],
        published: Callable[[Ingested], None],
    ) -> None:
        self.factory, self.go, self.published = factory, go, published
        self.publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="popex-publish")
        self.publishing: Future[Ingested] | None = None
        self.hold = ExitStack()  # this series' hold of the lock (none when its caller holds it)
        self.held = False
        with factory() as session:
            self.inline = isinstance(session.get_bind(), Connection)

    def __enter__(self) -> "IdentitySeries":
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._wait()
        finally:
            self.publisher.shutdown(wait=True, cancel_futures=True)
            self.hold.close()

    def take(self, done: Ingested) -> None:
        """Resolve and merge the batch (it stops there when a step fails: done.through is then false)
        and hand it to the publisher."""
        if not done.through:
            return
        if self.held and _identity_wanted(self.factory):
            self._wait()
            self.hold.close()
            self.held = False
        if not _holding_identity.get():
            self.hold.enter_context(identity_lock(self.factory))
            self.held = True
        self.go(done, BatchStep.MERGE)
        self._wait()
        self.go(done, BatchStep.PUBLISH)
        if done.through and self.inline:
            self.published(self.go(done, BatchStep.STATISTICS))
        elif done.through:
            # The publisher runs as this thread holding the lock (its context: _holding_identity).
            self.publishing = self.publisher.submit(copy_context().run, self.go, done, BatchStep.STATISTICS)

    def _wait(self) -> None:
        """Wait for the publish under way and tell of it."""
        if self.publishing is not None:
            done, self.publishing = self.publishing.result(), None
            self.published(done)


def run_identities(factory: SessionFactory, batch_ids: Sequence[int]) -> list[int]:
    """The identity steps the batches still need, resolve → merge → publish, in their order (what the
    daily DAG's identity task calls; IdentitySeries); stops at the first batch a step fails, and
    returns the batches that failed (none: all published)."""
    failed: list[int] = []

    def published(done: Ingested) -> None:
        if not done.through:
            failed.append(done.batch_id)

    with IdentitySeries(factory, partial(_advance, factory), published) as series:
        for batch_id in batch_ids:
            with factory() as session:
                batch = session.get_one(Batch, batch_id)
                state, failed_step = BatchState(batch.state), batch.failed_step
            if (
                BatchStep(failed_step) if failed_step else BatchStep.starting_from(state)
            ) not in IDENTITY_STEPS:
                continue  # through them already (or not yet at them: not this task's)
            done = Ingested(batch_id, "", False, state, [])
            series.take(done)
            if not done.through:
                failed.append(batch_id)
            if failed:
                break
    return sorted(set(failed))


# Another session waiting for this database's identity lock (a bigint advisory lock: its high half in
# classid; pg_locks shows every database's).
IDENTITY_WAITERS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    f" AND ((classid::bigint << 32) | objid::bigint) = {IDENTITY_LOCK})"
)


def _identity_wanted(factory: SessionFactory) -> bool:
    with factory() as session:
        return bool(session.scalar(IDENTITY_WAITERS))


def waiting_for(factory: SessionFactory, step: BatchStep) -> list[int]:
    """The batches this step is next for (in its start state, or failed in it), in delivery order."""
    with factory() as session:
        return list(
            session.scalars(
                select(Batch.id)
                .where((Batch.state == step.starts) | (Batch.failed_step == step))
                .order_by(Batch.as_of_date, Batch.source, Batch.seq, Batch.id)
            )
        )


def landing_files(folder: storage.Location) -> list[storage.Location]:
    """Files in a landing folder (a local one, or a bucket's prefix) in delivery order: as-of date, then
    source, then sequence."""
    found = []
    for path in storage.files(folder):
        try:
            name = parse_file_name(storage.name(path))
        except service.FeedFileError:
            log.warning("landing: ignoring %s (name does not follow the standard)", storage.name(path))
            continue
        found.append(((name.as_of, name.source, name.seq), path))
    return [p for _, p in sorted(found)]


LEFT_FOR_NEXT_RUN = "landing: %s is still being written (it kept changing for %s s); left for the next run"
RECEIVED_DIR = "_received"  # where a landing folder's files go once received: <folder>/_received/<as-of>/
REFUSED_DIR = "_refused"  # … and those the intake refused (source, size): <folder>/_refused/<run's as-of>/


def prepare_partitions(factory: SessionFactory) -> list[str]:
    """The day's run first creates the partitions the coming days' rows need (registry.partitions); a
    table busy past the lock timeout is left to the next run (they are made POPEX_PARTITION_AHEAD_DAYS
    ahead, and a row with no partition yet waits in the default one)."""
    try:
        with transaction(factory) as session:
            return partitions.ensure_ahead(session)
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available
            raise
        log.warning("partitions: a table was busy, none created this run; the next run tries again")
        return []


def wait_until_quiet(found: storage.Location, deadline: float) -> bool:
    """Whether a landing file has stopped changing: its size and modification time unchanged for
    POPEX_LANDING_QUIET_SECONDS, waited for until `deadline` (time.monotonic(); a run's files share
    POPEX_LANDING_PATIENCE_SECONDS). A department that uploads straight into the folder (not under
    another name renamed at the end) is still writing while it changes; taken then, the day's extract
    would be cut short. An object in a bucket is whole."""
    settings = storage_settings()
    while (found_signature := storage.signature(found)) is not None:
        quiet_for = time.time() - found_signature[1] / 1e9
        if quiet_for >= settings.landing_quiet_seconds:
            return True
        pause = settings.landing_quiet_seconds - quiet_for
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)
    return True


class ChangedWhileReceivedError(Exception):
    """The landing file changed while it was being archived: it was still being written."""


def receive_landing(
    factory: SessionFactory, folder: Path | str, as_of: date, outbox: Path | str | None = None
) -> list[int]:
    """The batches a day's run works on, in delivery order: the landing folder's files for this day or
    an earlier one (late files too), each archived, registered and then moved out of the folder to
    _received/<as-of>/, and every batch of this day or earlier that no run has finished (pushed
    through the API, or left by a run that failed part-way).

    A file the intake refuses (a source it does not know, over the size limit) is archived and audited
    as refused there and moved to _refused/: it does not stop the other departments' files. (A file
    whose name breaks the standard is left where it is, with a warning: it may still be being written.)

    Safe to retry: a file already received from a landing folder (same name and content, its move
    interrupted) gives its batch without a second delivery, and moved files are not seen again.

    A landing folder in a bucket (a URI): each file is received from a local copy, then moved within the bucket.
    `outbox`: where a quiet day's file that joins a settled batch gets its receipt (default
    POPEX_OUTBOX_DIR).
    """
    prepare_partitions(factory)
    folder = storage.location(folder)
    refused = storage.join(folder, REFUSED_DIR, as_of.strftime("%Y%m%d"))
    batch_ids: list[int] = []
    deadline = time.monotonic() + storage_settings().landing_patience_seconds
    for found in landing_files(folder):
        name = parse_file_name(storage.name(found))
        if name.as_of > as_of:
            continue
        try:
            if not wait_until_quiet(found, deadline):
                log.warning(
                    LEFT_FOR_NEXT_RUN, storage.name(found), storage_settings().landing_patience_seconds
                )
                continue
            before = storage.signature(found)
            with transaction(factory) as session, storage.local_copy(found) as path:
                received = service.receive_file(
                    session=session, path=path, channel="landing", once_per_name=True, outbox=outbox
                )
                if storage.signature(found) != before:  # written to while archived: nothing is kept
                    raise ChangedWhileReceivedError(storage.name(found))
                known = received.batch.id
        except service.FeedFileError as exc:
            log.warning("landing: %s refused (%s)", storage.name(found), exc.code)
            storage.move(found, refused)
            continue
        except FileNotFoundError:
            if storage.exists(found):  # something else is missing: not for this loop to hide
                raise
            # Taken back by its sender, or moved by another run, since the folder was listed.
            log.warning("landing: %s is gone since the folder was listed; skipped", storage.name(found))
            continue
        except ChangedWhileReceivedError:
            log.warning(
                "landing: %s changed while it was archived (still being written); left for the next run",
                storage.name(found),
            )
            continue
        batch_ids.append(known)
        # Out of the landing folder (it is archived by hash): a same-named file moved earlier is kept.
        storage.move(found, storage.join(folder, RECEIVED_DIR, name.as_of.strftime("%Y%m%d")))
    with transaction(factory) as session:
        ordered = session.scalars(
            text(
                "SELECT id FROM batch WHERE id = ANY(:ids) OR (state = ANY(:open) AND as_of_date <= :d) "
                "ORDER BY as_of_date, source, seq, id"
            ),
            {"ids": batch_ids, "open": [str(s) for s in UNFINISHED_STATES], "d": as_of},
        ).all()
    return list(ordered)
