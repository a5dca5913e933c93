"""Batch quality: row accounting, gate checks, rejection reasons ranked, review queue, resolution, step times."""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.models import Batch, Delivery
from registry.records import describe

STEP_LABELS = {"parse": "解析", "gate": "质量闸门", "resolve": "识别", "merge": "合并", "publish": "发布"}
STATE_LABELS = {
    "received": "已接收",
    "rejected": "文件被拒",
    "parsed": "已解析",
    "gated": "已通过闸门",
    "quarantined": "已隔离",
    "resolved": "已识别",
    "merged": "已合并",
    "published": "已发布",
    "failed": "失败",
}
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
class Reason:
    """One rejection reason of a batch (or of a range of batches) and how many rejected rows gave it."""

    code: str
    description: str
    rows: int


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
    file_name: str
    as_of_date: date
    state: str
    rows_received: int
    rows_accepted: int
    rows_rejected: int
    rows_review: int
    gate_failed: list[str]
    error: str | None

    @property
    def reject_rate(self) -> float | None:
        """Rejected share of the received rows."""
        return self.rows_rejected / self.rows_received if self.rows_received else None

    @property
    def state_label(self) -> str:
        """The state in Chinese."""
        return STATE_LABELS.get(self.state, self.state)


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
    deliveries: list[Delivery] = field(default_factory=list)


def _summary(batch: Batch) -> BatchSummary:
    failed = (batch.gate_result or {}).get("failed") or []
    return BatchSummary(
        id=batch.id,
        source=batch.source,
        file_name=batch.file_name,
        as_of_date=batch.as_of_date,
        state=batch.state,
        rows_received=batch.rows_received,
        rows_accepted=batch.rows_accepted,
        rows_rejected=batch.rows_rejected,
        rows_review=batch.rows_review,
        gate_failed=[
            f"{c.get('message')}{'：' + c['column'] if c.get('column') else ''}（实际 {c.get('observed')}）"
            for c in failed
        ],
        error=batch.error,
    )


def batches_between(*, session: Session, start: date, end: date) -> list[BatchSummary]:
    """Batches with an as-of date in start … end, newest first."""
    rows = session.scalars(
        select(Batch)
        .where(Batch.as_of_date.between(start, end))
        .order_by(Batch.as_of_date.desc(), Batch.source, Batch.id)
    )
    return [_summary(b) for b in rows]


def ranked_reasons(*, session: Session, batch_ids: list[int], limit: int = 20) -> list[Reason]:
    """Rejection reasons of the batches' rejected rows, most frequent first, with the zh-CN sentence."""
    if not batch_ids:
        return []
    rows = session.execute(
        text(
            """
            SELECT reason, count(*) AS n
            FROM source_record r, jsonb_array_elements_text(r.reasons) AS reason
            WHERE r.batch_id = ANY(:ids) AND r.status = 'rejected'
            GROUP BY reason ORDER BY n DESC, reason LIMIT :limit
            """
        ),
        {"ids": batch_ids, "limit": limit},
    )
    return [Reason(code=r.reason, description=describe(r.reason), rows=r.n) for r in rows]


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
    batch = session.get(Batch, batch_id)
    if batch is None:
        return None
    resolution = batch.resolution or {}
    return BatchDetail(
        summary=_summary(batch),
        received_at=batch.received_at,
        # failed checks first: on a phone the gate's table is long and the failure is what to read
        checks=sorted((batch.gate_result or {}).get("checks") or [], key=lambda c: bool(c["success"])),
        reasons=ranked_reasons(session=session, batch_ids=[batch_id]),
        review=review_queue(session=session, now=now, max_days=review_max_days, batch_id=batch_id),
        resolution=[(label, int(resolution[k])) for k, label in RESOLUTION_LABELS.items() if k in resolution],
        steps=[(STEP_LABELS.get(k, k), float(v)) for k, v in (batch.step_seconds or {}).items()],
        deliveries=list(
            session.scalars(
                select(Delivery).where(Delivery.batch_id == batch_id).order_by(Delivery.received_at)
            )
        ),
    )
