"""Batch quality: row accounting, gate checks, rejection reasons ranked, review queue, resolution, step times."""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.models import Batch, Delivery, Department, Feed
from registry.quality import Reason, ranked_reasons
from schemas.canonical import BatchStep, Channel, ColumnKind, batch_state_label, label_of

RESOLUTION_LABELS = {
    "records": "参与识别的记录",
    "linked_by_id": "按证件号关联",
    "id_conflicts": "证件号冲突（待审核）",
    "linked_by_score": "按评分关联",
    "review": "疑似匹配（待审核）",
    "new_persons": "新建人员",
    "linked_to_new": "关联到新建人员",
}


@dataclass(frozen=True)
class ReviewQueue:
    """Open review items as of `now`: how many, the oldest one's age, how many are older than N days."""

    open: int
    oldest_days: float | None
    aged: int


@dataclass
class BatchSummary:
    """One batch as listed on the dashboard."""

    id: int
    source: str
    feed: str  # the feed's title
    department: str  # the department's name
    file_name: str
    as_of_date: date
    state: str
    rows_received: int
    rows_accepted: int
    rows_rejected: int
    rows_review: int
    gate_failed: list[str]
    error: str | None
    failed_step: str | None = None

    @property
    def reject_rate(self) -> float | None:
        """Rejected share of the received rows."""
        return self.rows_rejected / self.rows_received if self.rows_received else None

    @property
    def state_label(self) -> str:
        """The state in Chinese; a failed batch's names the step it failed in (a rerun resumes there)."""
        return batch_state_label(self.state, self.failed_step)


@dataclass
class BatchDetail:
    """Everything the monitor shows about one batch."""

    summary: BatchSummary
    received_at: datetime
    checks: list[dict[str, Any]]
    reasons: list[Reason]
    review: ReviewQueue
    resolution: list[tuple[str, int]]
    steps: list[tuple[str, float]]
    deliveries: list[tuple[Delivery, str]] = field(default_factory=list)  # each with its channel's label


def _summary(batch: Batch, feed: str, department: str) -> BatchSummary:
    failed = (batch.gate_result or {}).get("failed") or []
    return BatchSummary(
        id=batch.id,
        source=batch.source,
        feed=feed,
        department=department,
        file_name=batch.file_name,
        as_of_date=batch.as_of_date,
        state=batch.state,
        rows_received=batch.rows_received,
        rows_accepted=batch.rows_accepted,
        rows_rejected=batch.rows_rejected,
        rows_review=batch.rows_review,
        gate_failed=[
            f"{c.get('message')}{'：' + label_of(ColumnKind, c['column']) if c.get('column') else ''}"
            f"（实际 {c.get('observed')}）"
            for c in failed
        ],
        error=batch.error,
        failed_step=batch.failed_step,
    )


_STEP_ORDER = {step.value: i for i, step in enumerate(BatchStep)}
# A batch with its feed's title and its department's name.
_NAMED = (
    select(Batch, Feed.title, Department.name)
    .join(Feed, Feed.source == Batch.source)
    .join(Department, Department.code == Feed.department_code)
)


def batches_between(*, session: Session, start: date, end: date) -> list[BatchSummary]:
    """Batches with an as-of date in start … end, newest first."""
    rows = session.execute(
        _NAMED.where(Batch.as_of_date.between(start, end)).order_by(
            Batch.as_of_date.desc(), Batch.source, Batch.id
        )
    )
    return [_summary(*row) for row in rows]


def review_queue(
    *, session: Session, now: datetime, max_days: int, batch_id: int | None = None
) -> ReviewQueue:
    """The open review items created by `now` (of one batch, or all)."""
    row = session.execute(
        text(
            """
            SELECT count(*) AS n, min(created_at) AS oldest,
                   count(*) FILTER (WHERE created_at < :now - make_interval(days => :days)) AS aged
            FROM review_item
            WHERE state = 'open' AND created_at <= :now AND (CAST(:b AS bigint) IS NULL OR batch_id = :b)
            """
        ),
        {"now": now, "days": max_days, "b": batch_id},
    ).one()
    oldest = round((now - row.oldest).total_seconds() / 86400, 1) if row.oldest else None
    return ReviewQueue(open=row.n, oldest_days=oldest, aged=row.aged)


def batch_detail(
    *, session: Session, batch_id: int, now: datetime, review_max_days: int
) -> BatchDetail | None:
    """One batch's figures, or None when there is no such batch."""
    named = session.execute(_NAMED.where(Batch.id == batch_id)).one_or_none()
    if named is None:
        return None
    batch = named[0]
    gate, resolution = batch.gate_result or {}, batch.resolution or {}
    return BatchDetail(
        summary=_summary(*named),
        received_at=batch.received_at,
        # failed checks first: on a phone the gate's table is long and the failure is what to read
        checks=sorted(
            # a conformance check names a column kind (id_no …), a null check a column (姓名 …)
            ({**c, "column_label": label_of(ColumnKind, c.get("column"))} for c in gate.get("checks") or []),
            key=lambda c: bool(c["success"]),
        ),
        reasons=ranked_reasons(session=session, batch_ids=[batch_id]),
        review=review_queue(session=session, now=now, max_days=review_max_days, batch_id=batch_id),
        resolution=[(label, int(resolution[k])) for k, label in RESOLUTION_LABELS.items() if k in resolution],
        # in the pipeline's order (BatchStep's): JSONB keeps an object's keys shortest first
        steps=[
            (label_of(BatchStep, k), float(v))
            for k, v in sorted((batch.step_seconds or {}).items(), key=lambda kv: _STEP_ORDER.get(kv[0], 99))
        ],
        deliveries=[
            (d, Channel(d.channel).label)
            for d in session.scalars(
                select(Delivery).where(Delivery.batch_id == batch_id).order_by(Delivery.received_at)
            )
        ],
    )
