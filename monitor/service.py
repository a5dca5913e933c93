"""The monitor's units of work: the dashboard as of a moment, and alert evaluation / delivery (the DAG's)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from collection import service as collection_service
from monitor import alerts, batches, health, timeliness
from monitor.config import MonitorSettings
from monitor.models import MonitorAlert
from registry import quality
from registry.models import Area


@dataclass
class Dashboard:
    """Everything on /monitor, as known at `now`."""

    now: datetime
    start: date
    end: date
    days: list[date]
    feeds: list[tuple[str, str, list[timeliness.FeedDay]]]  # source, title, one FeedDay per day
    departments: list[timeliness.DepartmentDays]
    chart: dict[str, list[object]]
    batch_rows: list[batches.BatchSummary]
    reasons: list[quality.Reason]
    review: batches.ReviewQueue
    open_alerts: list[MonitorAlert]
    pending_alerts: list[alerts.Condition]  # found on this view, not yet raised by the monitor_alerts DAG
    gone_alerts: set[str]  # keys of open alerts whose condition is no longer found (resolved at its next run)
    resolved_alerts: list[MonitorAlert]
    api: list[health.ClientUsage]
    audit: list[health.AuditDay]
    airflow: list[health.DagRunRow] | None
    airflow_note: str
    clearance: list[tuple[str, str, list[collection_service.Clearance | None]]]  # None: cut-off ahead
    clearance_problems: int  # the first rows of clearance: communities with a day not cleared


def build_dashboard(*, session: Session, now: datetime, settings: MonitorSettings) -> Dashboard:
    """The dashboard over the alert window ending the day before `now` (moves the audit roll-up on)."""
    health.roll_up(session=session)
    start, end = alerts.window(now, settings)
    feed_days = timeliness.feed_days(session=session, start=start, end=end, now=now)
    days = timeliness.days_between(start, end)
    feeds: dict[str, tuple[str, str, list[timeliness.FeedDay]]] = {}
    for fd in feed_days:
        feeds.setdefault(fd.source, (fd.source, fd.title, []))[2].append(fd)
    counts = timeliness.status_counts(feed_days)
    chart: dict[str, list[object]] = {"days": [f"{d:%m-%d}" for d in days]}
    for status in ("on_time", "late", "missing"):
        chart[status] = [counts[d][status] if d in counts else 0 for d in days]
    listed = batches.batches_between(session=session, start=start, end=end)
    airflow_runs, note = None, "未配置 Airflow（POPEX_AIRFLOW_API_URL），无法读取流程运行状态"
    if health.airflow_configured():
        try:
            airflow_runs, note = health.airflow_runs(), ""
        except Exception as exc:  # the page still renders when Airflow's API is away or refuses
            note = f"读取 Airflow 运行状态失败（REST API）：{type(exc).__name__}"
    recent = now - timedelta(days=settings.window_days)
    open_alerts = list(
        session.scalars(
            select(MonitorAlert)
            .where(MonitorAlert.state == "open", MonitorAlert.raised_at <= now)
            .order_by(MonitorAlert.severity, MonitorAlert.raised_at, MonitorAlert.id)
        )
    )
    # The rules evaluated on view as well: the page never says "no alerts" beside a missing delivery
    # the DAG has not looked at yet (nothing is written here; raising and notifying stay the DAG's).
    found = alerts.find_conditions(session=session, now=now, settings=settings)
    raised = {a.key for a in open_alerts}
    clearance = community_clearance(session=session, days=days, now=now)
    return Dashboard(
        now=now,
        start=start,
        end=end,
        days=days,
        feeds=list(feeds.values()),
        departments=timeliness.by_department(feed_days),
        chart=chart,
        batch_rows=listed,
        reasons=quality.ranked_reasons(session=session, batch_ids=[b.id for b in listed], limit=10),
        review=batches.review_queue(session=session, now=now, max_days=settings.review_max_days),
        open_alerts=open_alerts,
        pending_alerts=[c for c in found if c.key not in raised],
        gone_alerts=raised - {c.key for c in found},
        resolved_alerts=list(
            session.scalars(
                select(MonitorAlert)
                .where(MonitorAlert.state == "resolved", MonitorAlert.resolved_at.between(recent, now))
                .order_by(MonitorAlert.resolved_at.desc(), MonitorAlert.id)
                .limit(20)
            )
        ),
        api=health.api_usage(session=session, start=now - timedelta(days=1), end=now),
        audit=health.audit_volume(session=session, start=recent, end=now),
        airflow=airflow_runs,
        airflow_note=note,
        clearance=clearance,
        clearance_problems=sum(1 for _, _, row in clearance if _not_cleared(row)),
    )


def _not_cleared(row: list[collection_service.Clearance | None]) -> int:
    return sum(1 for c in row if c is not None and not c.cleared)


def community_clearance(
    *, session: Session, days: list[date], now: datetime
) -> list[tuple[str, str, list[collection_service.Clearance | None]]]:
    """一日一清 per community and day, from the collection platform (None where the cut-off is ahead);
    communities with days not cleared first, most such days first. A fixed number of statements
    whatever the number of communities and days."""
    areas = session.execute(
        select(Area.code, Area.name).where(Area.level == "community").order_by(Area.code)
    ).all()
    computed = collection_service.clearances(
        session=session, community_codes=[a.code for a in areas], days=days
    )
    out = []
    for code, name in areas:
        row: list[collection_service.Clearance | None] = []
        for day in days:
            c = computed[(code, day)]
            row.append(c if c.cutoff_at <= now else None)
        out.append((code, name, row))
    return sorted(out, key=lambda r: -_not_cleared(r[2]))


def evaluate_alerts(*, now: datetime, settings: MonitorSettings) -> dict[str, list[str]]:
    """One evaluation in its own transaction (the DAG's first task); the keys raised, resolved, open."""
    from base.db import session_scope

    with session_scope() as session:
        health.roll_up(session=session)
        done = alerts.evaluate(session=session, now=now, settings=settings)
        return {
            "raised": [a.key for a in done.raised],
            "resolved": [a.key for a in done.resolved],
            "open": [a.key for a in done.still_open + done.raised],
        }


def notify_alerts(*, settings: MonitorSettings) -> int:
    """Deliver undelivered alert states to the webhook in its own transaction (the DAG's second task)."""
    from base.db import session_scope

    with session_scope() as session:
        return alerts.notify(session=session, settings=settings)
