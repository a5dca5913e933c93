"""The batch state machine: the one place a batch's state is written.

The states and the moves allowed between them are schemas.canonical's (BatchState, BatchStep,
BATCH_MOVES); every step moves its batch with `advance`, a step that raises leaves it `fail`ed (in a
transaction of its own, after the step's was rolled back) and a rerun `resume`s the failed step.
"""

import logging
import traceback
from collections.abc import Iterable

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from base.crashpoint import stop_point
from registry.audit import record_audit
from registry.models import Batch
from schemas.canonical import BATCH_MOVES, BatchState, BatchStep

log = logging.getLogger(__name__)


class ForbiddenMove(Exception):
    """A move the table beside BatchState does not allow, or a batch not in the state a step expects."""

    def __init__(self, batch_id: int, current: BatchState, to: BatchState) -> None:
        self.batch_id, self.current, self.to = batch_id, current, to
        self.message = f"批次 {batch_id} 处于「{current.label}」，不能转为「{to.label}」"
        super().__init__(self.message)


def advance(
    session: Session,
    batch_id: int,
    *,
    to: BatchState,
    expect: BatchState | Iterable[BatchState] | None = None,
    error: str | None = None,
) -> Batch:
    """Move the batch, its row locked, to `to` (with `error`, for a rejected file); ForbiddenMove when
    it is not in `expect` or the table forbids the move. Leaving `failed` clears its error and step."""
    if to == BatchState.FAILED:
        raise ValueError("a batch fails through registry.batches.fail, which records the step")
    return _move(session, batch_id, to=to, expect=expect, error=error)


def fail(session: Session, batch_id: int, *, step: BatchStep, exc: BaseException) -> Batch:
    """Leave the batch failed in `step` with what happened, audited (call after the step's rollback)."""
    sqlstate = _sqlstate(exc)
    log.error("batch %s: step %s failed: %s (SQLSTATE %s)", batch_id, step, type(exc).__name__, sqlstate)
    # Where, for the service log (Airflow's task log is at INFO); a CLI user sees it only with -v.
    log.info(
        "batch %s: step %s failed at\n%s", batch_id, step, "".join(traceback.format_tb(exc.__traceback__))
    )
    batch = _move(
        session, batch_id, to=BatchState.FAILED, expect=step.starts, error=failure_text(step, exc), step=step
    )
    record_audit(
        session=session,
        actor="pipeline",
        action="batch.failed",
        object_type="batch",
        object_id=str(batch_id),
        detail={"step": str(step), "type": type(exc).__name__, "sqlstate": sqlstate},
    )
    return batch


def resume(session: Session, batch_id: int) -> BatchStep | None:
    """A failed batch back to the state its failed step starts from; returns that step (None: not failed)."""
    batch = session.get_one(Batch, batch_id, with_for_update=True, populate_existing=True)
    if batch.state != BatchState.FAILED or batch.failed_step is None:
        return None
    step = BatchStep(batch.failed_step)
    _move(session, batch_id, to=step.starts, expect=BatchState.FAILED, error=None)
    return step


def failure_text(step: BatchStep, exc: BaseException) -> str:
    """What batch.error says of a step that raised: the exception's type and a Chinese sentence. Never
    the message of a database error (it carries the statement's values: ID numbers, names), nor of any
    exception not ours."""
    if connection_lost(exc):
        what = "与数据库的连接中断"
    elif isinstance(exc, SQLAlchemyError):
        sqlstate = _sqlstate(exc)
        what = f"数据库错误（SQLSTATE {sqlstate}）" if sqlstate else "数据库错误"
    elif isinstance(exc, ForbiddenMove):
        what = exc.message
    else:
        what = "程序错误，详见服务日志"
    return f"[{type(exc).__name__}] 步骤「{step.label}」失败：{what}；重新运行即从该步骤继续"


def connection_lost(exc: BaseException) -> bool:
    """Whether the exception says the database connection went away (the server was restarted, the
    backend terminated, the network dropped), not that a statement failed."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # 08: connection exceptions; 57P0x: the server shut the session down (admin, crash, restarting)
    return (_sqlstate(exc) or "").startswith(("08", "57P0"))


class Interrupted(Exception):
    """A step lost its database connection and its failure could not be recorded either: the step's
    transaction was rolled back, so the batch is still where the step found it (`state`)."""

    def __init__(self, batch_id: int, step: BatchStep) -> None:
        self.batch_id, self.step, self.state = batch_id, step, step.starts
        self.message = (
            f"与数据库的连接中断：批次 {batch_id} 在步骤「{step.label}」中断，仍处于「{step.starts.label}」；"
            "数据库恢复后重新运行即从该步骤继续"
        )
        super().__init__(self.message)


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "pgcode", None)


def _move(
    session: Session,
    batch_id: int,
    *,
    to: BatchState,
    expect: BatchState | Iterable[BatchState] | None,
    error: str | None,
    step: BatchStep | None = None,
) -> Batch:
    """The move itself; `step` is the failed step when `to` is failed. A failed batch moves only back to
    where its failed step starts."""
    session.flush()  # pending changes first: the row is read again, locked
    batch = session.get_one(Batch, batch_id, with_for_update=True, populate_existing=True)
    current = BatchState(batch.state)
    expected = {expect} if isinstance(expect, BatchState) else set(expect or BatchState)
    elsewhere = batch.failed_step is not None and to != BatchStep(batch.failed_step).starts
    if current not in expected or to not in BATCH_MOVES[current] or elsewhere:
        raise ForbiddenMove(batch_id, current, to)
    batch.state = to
    if to == BatchState.FAILED:
        batch.failed_step = step
    elif current == BatchState.FAILED:
        batch.failed_step, batch.error = None, None
    if error is not None:
        batch.error = error
    session.flush()
    moved_by = BatchStep.starting_from(current)
    if moved_by is not None and to in moved_by.ends:
        stop_point(moved_by)  # a test hook (base.crashpoint): nothing unless a test asks to stop here
    return batch
