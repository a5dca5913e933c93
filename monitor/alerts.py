"""Alert rules evaluated "as of" a moment, kept in monitor_alert (one open alert per condition), and
delivered to the log and a webhook.

Rules:
- feed_missing    a feed's file for an as-of date has not arrived by its deadline
- reject_rate     a batch rejected more than the threshold share of its rows
- gate_failed     a batch failed its gate (quarantined)
- review_aged     a batch has review items open for more than N days
- api_error_rate  an API client's refused share over the last hours is above the threshold
- api_failures    an API client's requests failed on the server's side (a fault, the database away)
A condition that clears (file arrives, batch released, reviews decided …) resolves its alert.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor import health, timeliness
from monitor.config import MonitorSettings
from monitor.models import MonitorAlert

log = logging.getLogger(__name__)
RULE_LABELS = {
    "feed_missing": "缺报",
    "reject_rate": "拒收率过高",
    "gate_failed": "质量闸门未通过",
    "review_aged": "审核积压",
    "api_error_rate": "接口被拒率过高",
    "api_failures": "接口服务故障",
}


@dataclass(frozen=True)
class Condition:
    """A rule's finding: what an alert is raised for, keyed so the same condition is one alert."""

    rule: str
    key: str
    severity: str
    title: str
    link: str
    source: str | None = None
    as_of_date: date | None = None
    batch_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """What one evaluation changed."""

    raised: list[MonitorAlert]
    resolved: list[MonitorAlert]
    still_open: list[MonitorAlert]


def window(now: datetime, settings: MonitorSettings) -> tuple[date, date]:
    """The as-of dates the rules look at: the window_days before `now`'s date (none before expected_from)."""
    end = now.date() - timedelta(days=1)
    start = end - timedelta(days=settings.window_days - 1)
    return (max(start, settings.expected_from) if settings.expected_from else start), end


def _batch_link(batch_id: int) -> str:
    return f"/monitor/batches/{batch_id}"


def find_conditions(*, session: Session, now: datetime, settings: MonitorSettings) -> list[Condition]:
    """Every rule's conditions as of `now`."""
    start, end = window(now, settings)
    found = [
        Condition(
            rule="feed_missing",
            key=f"feed_missing:{fd.source}:{fd.day}",
            severity="critical",
            title=f"{fd.department_name}「{fd.title}」{fd.day} 的数据截至 {fd.deadline:%m-%d %H:%M} 未报送",
            link=f"/monitor?now={now:%Y-%m-%dT%H:%M}#feed-{fd.source}",
            source=fd.source,
            as_of_date=fd.day,
            detail={"deadline": fd.deadline.isoformat()},
        )
        for fd in timeliness.feed_days(session=session, start=start, end=end, now=now)
        if fd.status == "missing"
    ]
    # Batches delivered by `now` with an as-of date in the window.
    batches = session.execute(
        text(
            """
            SELECT b.id, b.source, b.as_of_date, b.state, b.rows_received, b.rows_rejected
            FROM batch b
            WHERE b.as_of_date BETWEEN :start AND :end
              AND EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.received_at <= :now)
            ORDER BY b.id
            """
        ),
        {"start": start, "end": end, "now": now},
    ).all()
    for b in batches:
        if (
            b.rows_received >= settings.reject_min_rows
            and b.rows_rejected > settings.reject_rate * b.rows_received
        ):
            rate = b.rows_rejected / b.rows_received
            found.append(
                Condition(
                    rule="reject_rate",
                    key=f"reject_rate:{b.id}",
                    severity="warning",
                    title=f"批次 {b.id}（{b.source} {b.as_of_date}）拒收 {b.rows_rejected}/{b.rows_received} 行（{rate:.0%}），超过 {settings.reject_rate:.0%}",
                    link=_batch_link(b.id),
                    source=b.source,
                    as_of_date=b.as_of_date,
                    batch_id=b.id,
                    detail={
                        "rows_received": b.rows_received,
                        "rows_rejected": b.rows_rejected,
                        "rate": round(rate, 4),
                    },
                )
            )
        if b.state == "quarantined":
            found.append(
                Condition(
                    rule="gate_failed",
                    key=f"gate_failed:{b.id}",
                    severity="critical",
                    title=f"批次 {b.id}（{b.source} {b.as_of_date}）未通过质量闸门，已隔离",
                    link=_batch_link(b.id),
                    source=b.source,
                    as_of_date=b.as_of_date,
                    batch_id=b.id,
                )
            )
    aged = session.execute(
        text(
            """
            SELECT i.batch_id, b.source, b.as_of_date, count(*) AS n, min(i.created_at) AS oldest
            FROM review_item i JOIN batch b ON b.id = i.batch_id
            WHERE i.state = 'open' AND i.created_at < :now - make_interval(days => :days)
            GROUP BY i.batch_id, b.source, b.as_of_date ORDER BY i.batch_id
            """
        ),
        {"now": now, "days": settings.review_max_days},
    )
    for r in aged:
        found.append(
            Condition(
                rule="review_aged",
                key=f"review_aged:{r.batch_id}",
                severity="warning",
                title=f"批次 {r.batch_id}（{r.source} {r.as_of_date}）有 {r.n} 条审核超过 {settings.review_max_days} 天未处理",
                link=_batch_link(r.batch_id),
                source=r.source,
                as_of_date=r.as_of_date,
                batch_id=r.batch_id,
                detail={"open": r.n, "oldest": r.oldest.isoformat()},
            )
        )
    since = now - timedelta(hours=settings.api_window_hours)
    for usage in health.api_usage(session=session, start=since, end=now):
        if usage.requests >= settings.api_min_requests and usage.error_rate > settings.api_error_rate:
            found.append(
                Condition(
                    rule="api_error_rate",
                    key=f"api_error_rate:{usage.client}",
                    severity="warning",
                    title=f"接口客户端 {usage.client} 近 {settings.api_window_hours} 小时被拒 {usage.refused}/{usage.requests} 次（{usage.error_rate:.0%}）",
                    link=f"/monitor?now={now:%Y-%m-%dT%H:%M}#api",
                    detail={"requests": usage.requests, "refused": usage.refused},
                )
            )
        if usage.failed >= settings.api_failures_min:  # however few the requests: the service is at fault
            found.append(
                Condition(
                    rule="api_failures",
                    key=f"api_failures:{usage.client}",
                    severity="critical",
                    title=f"接口客户端 {usage.client} 近 {settings.api_window_hours} 小时有 {usage.failed}/{usage.requests} 次请求因服务故障未获答复",
                    link=f"/monitor?now={now:%Y-%m-%dT%H:%M}#api",
                    detail={"requests": usage.requests, "failed": usage.failed},
                )
            )
    return found


def evaluate(*, session: Session, now: datetime, settings: MonitorSettings) -> Evaluation:
    """Raise an alert per new condition, keep those still true, resolve those that cleared."""
    conditions = {c.key: c for c in find_conditions(session=session, now=now, settings=settings)}
    open_alerts = {
        a.key: a
        for a in session.scalars(select(MonitorAlert).where(MonitorAlert.state == "open").with_for_update())
    }
    raised, resolved, still = [], [], []
    for key, alert in open_alerts.items():
        if key in conditions:
            alert.last_seen_at = now
            alert.title, alert.detail = conditions[key].title, conditions[key].detail
            still.append(alert)
        else:
            alert.state, alert.resolved_at = "resolved", now
            resolved.append(alert)
    for key, c in conditions.items():
        if key in open_alerts:
            continue
        alert = MonitorAlert(
            rule=c.rule,
            key=key,
            state="open",
            severity=c.severity,
            title=c.title,
            link=c.link,
            source=c.source,
            as_of_date=c.as_of_date,
            batch_id=c.batch_id,
            detail=c.detail,
            raised_at=now,
            last_seen_at=now,
        )
        session.add(alert)
        raised.append(alert)
    session.flush()
    for alert in raised:
        log.warning("告警 [%s] %s %s", alert.rule, alert.title, alert.link)
    for alert in resolved:
        log.info("告警解除 [%s] %s", alert.rule, alert.title)
    return Evaluation(raised, resolved, still)


def payload(alert: MonitorAlert, base_url: str) -> dict[str, Any]:
    """The webhook's JSON body for an alert's current state."""
    return {
        "event": "raised" if alert.state == "open" else "resolved",
        "id": alert.id,
        "rule": alert.rule,
        "rule_label": RULE_LABELS[alert.rule],
        "key": alert.key,
        "severity": alert.severity,
        "title": alert.title,
        "link": base_url + alert.link,
        "source": alert.source,
        "as_of_date": alert.as_of_date.isoformat() if alert.as_of_date else None,
        "batch_id": alert.batch_id,
        "raised_at": alert.raised_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "detail": alert.detail,
    }


def notify(*, session: Session, settings: MonitorSettings) -> int:
    """POST every alert whose state the webhook has not yet been told (raised or resolved); returns how
    many were delivered. A failed POST is kept for the next run (notify_error says why)."""
    if not settings.webhook_url:
        return 0
    pending = session.scalars(
        select(MonitorAlert)
        .where(MonitorAlert.notified_state.is_distinct_from(MonitorAlert.state))
        .order_by(MonitorAlert.id)
        .with_for_update(skip_locked=True)
    ).all()
    delivered = 0
    with httpx.Client(timeout=settings.webhook_timeout) as client:
        for alert in pending:
            try:
                response = client.post(settings.webhook_url, json=payload(alert, settings.base_url))
                response.raise_for_status()
            except httpx.HTTPError as exc:
                alert.notify_error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("告警推送失败 %s: %s", alert.key, alert.notify_error)
                continue
            alert.notified_state, alert.notify_error = alert.state, None
            delivered += 1
    session.flush()
    return delivered
