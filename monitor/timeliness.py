"""Timeliness: each feed's daily file against its deadline, per feed and per department and day.

A feed's file for as-of date D is due at the spec's deadline (local time) on D + 1. Only deliveries
received by `now` count, so any past moment can be replayed. Every arrival counts (delivery rows), so a
day whose only delivery repeats earlier bytes (a duplicate) or holds just the header is received.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from schemas.feed_spec import load_feed_specs

STATUS_LABELS = {"on_time": "按时", "late": "迟报", "missing": "缺报", "pending": "未到期"}


@dataclass(frozen=True)
class FeedDay:
    """One feed's file for one as-of date, as known at `now`."""

    source: str
    title: str
    department_code: str
    department_name: str
    day: date
    deadline: datetime
    status: str  # on_time, late, missing, pending
    first_received_at: datetime | None = None
    deliveries: int = 0
    duplicates: int = 0
    batch_id: int | None = None

    @property
    def late_minutes(self) -> int:
        """How late the first delivery came (0 when on time or not received)."""
        if self.first_received_at is None or self.first_received_at <= self.deadline:
            return 0
        return int((self.first_received_at - self.deadline).total_seconds() // 60)


@dataclass
class Tally:
    """Counts of feed days by status: expected = every day whose deadline has passed or that arrived."""

    expected: int = 0
    received: int = 0
    on_time: int = 0
    late: int = 0
    missing: int = 0

    def add(self, status: str) -> None:
        """Count one feed day."""
        if status == "pending":
            return
        self.expected += 1
        self.received += status in ("on_time", "late")
        setattr(self, status, getattr(self, status) + 1)

    @property
    def on_time_rate(self) -> float | None:
        """On-time share of the expected days."""
        return self.on_time / self.expected if self.expected else None


@dataclass
class DepartmentDays:
    """One department's feed days over a range, tallied per day and in total."""

    code: str
    name: str
    total: Tally = field(default_factory=Tally)
    by_day: dict[date, Tally] = field(default_factory=dict)


def days_between(start: date, end: date) -> list[date]:
    """start … end inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def feed_days(*, session: Session, start: date, end: date, now: datetime) -> list[FeedDay]:
    """Every daily feed's status for each as-of date in start … end, as known at `now`."""
    arrived = {
        (r.source, r.as_of_date): r
        for r in session.execute(
            text(
                """
                SELECT source, as_of_date, min(received_at) AS first_at, count(*) AS n,
                       count(*) FILTER (WHERE duplicate) AS dups,
                       (array_agg(batch_id ORDER BY received_at, id))[1] AS batch_id
                FROM delivery
                WHERE as_of_date BETWEEN :start AND :end AND received_at <= :now
                GROUP BY source, as_of_date
                """
            ),
            {"start": start, "end": end, "now": now},
        )
    }
    out = []
    for spec in load_feed_specs().values():
        if not spec.schedule.daily:
            continue
        for day in days_between(start, end):
            deadline = datetime.combine(day + timedelta(days=1), spec.schedule.deadline)
            got = arrived.get((spec.source, day))
            if got is not None:
                status = "on_time" if got.first_at <= deadline else "late"
            else:
                status = "missing" if now >= deadline else "pending"
            out.append(
                FeedDay(
                    source=spec.source,
                    title=spec.title,
                    department_code=spec.department.code,
                    department_name=spec.department.name,
                    day=day,
                    deadline=deadline,
                    status=status,
                    first_received_at=got.first_at if got else None,
                    deliveries=got.n if got else 0,
                    duplicates=got.dups if got else 0,
                    batch_id=got.batch_id if got else None,
                )
            )
    return out


def by_department(days: list[FeedDay]) -> list[DepartmentDays]:
    """Feed days tallied per department (in spec order) and per as-of date."""
    departments: dict[str, DepartmentDays] = {}
    for fd in days:
        dept = departments.setdefault(
            fd.department_code, DepartmentDays(fd.department_code, fd.department_name)
        )
        dept.total.add(fd.status)
        dept.by_day.setdefault(fd.day, Tally()).add(fd.status)
    return list(departments.values())


def status_counts(days: list[FeedDay]) -> dict[date, Counter[str]]:
    """Per as-of date, how many feed days are in each status (for the chart)."""
    out: dict[date, Counter[str]] = {}
    for fd in days:
        out.setdefault(fd.day, Counter())[fd.status] += 1
    return out
