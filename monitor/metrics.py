"""/metrics: the monitor's figures in Prometheus text format, collected fresh per scrape."""

from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session

from monitor import alerts, batches, health, timeliness
from monitor.config import MonitorSettings


def render(*, session: Session, now: datetime, settings: MonitorSettings) -> bytes:
    """The exposition text as of `now` (a registry per scrape: no state kept between requests)."""
    registry = CollectorRegistry()
    start, end = alerts.window(now, settings)
    feed_days = Gauge(
        "popex_feed_days",
        "Feed days in the alert window by status",
        ["department", "source", "status"],
        registry=registry,
    )
    for fd in timeliness.feed_days(session=session, start=start, end=end, now=now):
        feed_days.labels(fd.department_code, fd.source, fd.status).inc()
    last = Gauge(
        "popex_feed_last_received_timestamp_seconds",
        "Latest delivery of each feed (local time)",
        ["source"],
        registry=registry,
    )
    state = Gauge("popex_batches", "Batches by state", ["state"], registry=registry)
    rows = Gauge(
        "popex_batch_rows", "Rows of the window's batches by outcome", ["source", "status"], registry=registry
    )
    for r in session.execute(
        text(
            "SELECT source, extract(epoch FROM max(received_at)) AS at FROM delivery WHERE received_at <= :now GROUP BY source"
        ),
        {"now": now},
    ):
        last.labels(r.source).set(float(r.at))
    for r in session.execute(text("SELECT state, count(*) AS n FROM batch GROUP BY state")):
        state.labels(r.state).set(r.n)
    for r in session.execute(
        text(
            "SELECT source, sum(rows_accepted) AS a, sum(rows_rejected) AS j, sum(rows_review) AS v FROM batch "
            "WHERE as_of_date BETWEEN :s AND :e GROUP BY source"
        ),
        {"s": start, "e": end},
    ):
        for status, n in (("accepted", r.a), ("rejected", r.j), ("review", r.v)):
            rows.labels(r.source, status).set(float(n))
    queue = batches.review_queue(session=session, now=now, max_days=settings.review_max_days)
    Gauge("popex_review_open", "Open review items", registry=registry).set(queue.open)
    Gauge("popex_review_oldest_age_days", "Age of the oldest open review item", registry=registry).set(
        queue.oldest_days or 0
    )
    open_alerts = Gauge("popex_alerts_open", "Open alerts by rule", ["rule"], registry=registry)
    for rule in alerts.RULE_LABELS:
        open_alerts.labels(rule).set(0)
    for r in session.execute(
        text("SELECT rule, count(*) AS n FROM monitor_alert WHERE state = 'open' GROUP BY rule")
    ):
        open_alerts.labels(r.rule).set(r.n)
    Gauge("popex_audit_log_records", "Records in the audit log", registry=registry).set(
        health.audit_records(session=session)  # not count(*) of the whole log on every scrape
    )
    return generate_latest(registry)
