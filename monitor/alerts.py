"""Alert rules evaluated "as of" a moment, kept in monitor_alert (one open alert per condition), and
delivered to the log and a webhook.

Rules:
- feed_missing    a feed's file for an as-of date has not arrived by its deadline
- reject_rate     a batch rejected more than the threshold share of its rows
- gate_failed     a batch failed its gate (quarantined)
- review_aged     a batch has review items open for more than N days
- api_error_rate  an API client's refused share over the last hours is above the threshold
- api_failures    an API client's requests failed on the server's side (a fault, the database away)
- api_not_found   an API client's requests find no one often (numbers tried to learn who lives here)
- verify_guessing an API client's verifications fail like guesses: a claim failed as often as allowed,
                  or many claims failed (sharing_api/guessing.py)
- disk_low        the disk of a local archive, landing or outbox folder is nearly full (read now,
                  whatever moment the rules look at; a bucket is its provider's to watch)
A condition that clears (file arrives, batch released, reviews decided …) resolves its alert.
"""

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from base import storage
from base.settings import storage_settings
from monitor import health, timeliness
from monitor.config import MonitorSettings
from monitor.models import MonitorAlert
from sharing_api import service as sharing_service

log = logging.getLogger(__name__)
T = TypeVar("T")
RULE_LABELS = {
    "feed_missing": "缺报",
    "reject_rate": "拒收率过高",
    "gate_failed": "质量闸门未通过",
    "review_aged": "审核积压",
    "api_error_rate": "接口被拒率过高",
    "api_failures": "接口服务故障",
    "api_not_found": "疑似试号探测",
    "verify_guessing": "疑似猜测核验",
    "disk_low": "存储空间不足",
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


@dataclass(frozen=True)
class Look:
    """What the rules look at: the moment, the settings, and the as-of dates of the window."""

    session: Session
    now: datetime
    settings: MonitorSettings
    start: date
    end: date

    @property
    def dashboard_link(self) -> str:
        """The monitor's dashboard as of the moment."""
        return f"/monitor?now={self.now:%Y-%m-%dT%H:%M}"


@dataclass(frozen=True)
class RuleGroup(Generic[T]):
    """Rules over the same subjects (feed-days, batches, review backlogs, API clients), read once; each rule
    finds at most one condition per subject."""

    read: Callable[[Look], Iterable[T]]
    rules: tuple[Callable[[Look, T], Condition | None], ...]

    def conditions(self, look: Look) -> list[Condition]:
        """Subject by subject, every rule's condition."""
        return [c for item in self.read(look) for rule in self.rules if (c := rule(look, item)) is not None]


def _batch_link(batch_id: int) -> str:
    return f"/monitor/batches/{batch_id}"


def _feed_days(look: Look) -> list[timeliness.FeedDay]:
    return timeliness.feed_days(session=look.session, start=look.start, end=look.end, now=look.now)


def _feed_missing(look: Look, fd: timeliness.FeedDay) -> Condition | None:
    """A feed's file for an as-of date has not arrived by its deadline."""
    if fd.status != "missing":
        return None
    return Condition(
        rule="feed_missing",
        key=f"feed_missing:{fd.source}:{fd.day}",
        severity="critical",
        title=f"{fd.department_name}「{fd.title}」{fd.day} 的数据截至 {fd.deadline:%m-%d %H:%M} 未报送",
        link=f"{look.dashboard_link}#feed-{fd.source}",
        source=fd.source,
        as_of_date=fd.day,
        detail={"deadline": fd.deadline.isoformat()},
    )


def _delivered_batches(look: Look) -> Sequence[Row[Any]]:
    """Batches delivered by the moment with an as-of date in the window."""
    return look.session.execute(
        text(
            """
            SELECT b.id, b.source, b.as_of_date, b.state, b.rows_received, b.rows_rejected,
                   f.title AS feed, d.name AS department
            FROM batch b JOIN feed f ON f.source = b.source JOIN department d ON d.code = f.department_code
            WHERE b.as_of_date BETWEEN :start AND :end
              AND EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.received_at <= :now)
            ORDER BY b.id
            """
        ),
        {"start": look.start, "end": look.end, "now": look.now},
    ).all()


def _reject_rate(look: Look, b: Row[Any]) -> Condition | None:
    """A batch rejected more than the threshold share of its rows."""
    settings = look.settings
    if (
        b.rows_received < settings.reject_min_rows
        or b.rows_rejected <= settings.reject_rate * b.rows_received
    ):
        return None
    rate = b.rows_rejected / b.rows_received
    return Condition(
        rule="reject_rate",
        key=f"reject_rate:{b.id}",
        severity="warning",
        title=f"批次 {b.id}（{b.department}「{b.feed}」{b.as_of_date}）拒收 {b.rows_rejected}/{b.rows_received} 行（{rate:.0%}），超过 {settings.reject_rate:.0%}",
        link=_batch_link(b.id),
        source=b.source,
        as_of_date=b.as_of_date,
        batch_id=b.id,
        detail={"rows_received": b.rows_received, "rows_rejected": b.rows_rejected, "rate": round(rate, 4)},
    )


def _gate_failed(look: Look, b: Row[Any]) -> Condition | None:
    """A batch failed its gate (quarantined)."""
    if b.state != "quarantined":
        return None
    return Condition(
        rule="gate_failed",
        key=f"gate_failed:{b.id}",
        severity="critical",
        title=f"批次 {b.id}（{b.department}「{b.feed}」{b.as_of_date}）未通过质量闸门，已隔离",
        link=_batch_link(b.id),
        source=b.source,
        as_of_date=b.as_of_date,
        batch_id=b.id,
    )


def _aged_reviews(look: Look) -> Sequence[Row[Any]]:
    """Batches with review items open for more than the allowed days."""
    return look.session.execute(
        text(
            """
            SELECT i.batch_id, b.source, b.as_of_date, f.title AS feed, d.name AS department, count(*) AS n,
                   min(i.created_at) AS oldest
            FROM review_item i JOIN batch b ON b.id = i.batch_id
            JOIN feed f ON f.source = b.source JOIN department d ON d.code = f.department_code
            WHERE i.state = 'open' AND i.created_at < :now - make_interval(days => :days)
            GROUP BY i.batch_id, b.source, b.as_of_date, f.title, d.name ORDER BY i.batch_id
            """
        ),
        {"now": look.now, "days": look.settings.review_max_days},
    ).all()


def _review_aged(look: Look, r: Row[Any]) -> Condition:
    """A batch has review items open for more than N days."""
    return Condition(
        rule="review_aged",
        key=f"review_aged:{r.batch_id}",
        severity="warning",
        title=f"批次 {r.batch_id}（{r.department}「{r.feed}」{r.as_of_date}）有 {r.n} 条审核超过 {look.settings.review_max_days} 天未处理",
        link=_batch_link(r.batch_id),
        source=r.source,
        as_of_date=r.as_of_date,
        batch_id=r.batch_id,
        detail={"open": r.n, "oldest": r.oldest.isoformat()},
    )


def _api_clients(look: Look) -> list[health.ClientUsage]:
    """Each API client's requests over the last hours."""
    since = look.now - timedelta(hours=look.settings.api_window_hours)
    return health.api_usage(session=look.session, start=since, end=look.now)


def _api_error_rate(look: Look, usage: health.ClientUsage) -> Condition | None:
    """An API client's refused share over the last hours is above the threshold."""
    settings = look.settings
    if usage.requests < settings.api_min_requests or usage.error_rate <= settings.api_error_rate:
        return None
    return Condition(
        rule="api_error_rate",
        key=f"api_error_rate:{usage.client}",
        severity="warning",
        title=f"接口客户端 {usage.client} 近 {settings.api_window_hours} 小时被拒 {usage.refused}/{usage.requests} 次（{usage.error_rate:.0%}）",
        link=f"{look.dashboard_link}#api",
        detail={"requests": usage.requests, "refused": usage.refused},
    )


def _api_failures(look: Look, usage: health.ClientUsage) -> Condition | None:
    """An API client's requests failed on the server's side, however few they were: the service is at fault."""
    if usage.failed < look.settings.api_failures_min:
        return None
    return Condition(
        rule="api_failures",
        key=f"api_failures:{usage.client}",
        severity="critical",
        title=f"接口客户端 {usage.client} 近 {look.settings.api_window_hours} 小时有 {usage.failed}/{usage.requests} 次请求因服务故障未获答复",
        link=f"{look.dashboard_link}#api",
        detail={"requests": usage.requests, "failed": usage.failed},
    )


def _api_not_found(look: Look, usage: health.ClientUsage) -> Condition | None:
    """An API client's requests find no one often: someone trying numbers to learn who lives in the city
    (each miss answers that question; the service also limits misses per day, POPEX_SHARING_LOOKUP_MISSES_PER_DAY)."""
    settings = look.settings
    if (
        usage.not_found < settings.api_not_found_min
        or usage.not_found <= settings.api_not_found_rate * usage.requests
    ):
        return None
    return Condition(
        rule="api_not_found",
        key=f"api_not_found:{usage.client}",
        severity="warning",
        title=f"接口客户端 {usage.client} 近 {settings.api_window_hours} 小时查询未找到人员 {usage.not_found}/{usage.requests} 次"
        f"（{usage.not_found / usage.requests:.0%}）：疑似逐个试号探测人员是否在本市",
        link=f"{look.dashboard_link}#api",
        detail={"requests": usage.requests, "not_found": usage.not_found},
    )


def _verifying_clients(look: Look) -> list[sharing_service.GuessingPattern]:
    """Each API client's failed verifications over the last hours (sharing_api.service)."""
    since = look.now - timedelta(hours=look.settings.guessing_window_hours)
    return sharing_service.guessing_patterns(session=look.session, start=since, end=look.now)


def _verify_guessing(look: Look, p: sharing_service.GuessingPattern) -> Condition | None:
    """An API client's verifications fail like guesses: a document, or a name with a birth date, failed
    as often as allowed (its further tries were refused), or many different ones failed."""
    settings = look.settings
    if not p.exhausted and p.claims < settings.guessing_claims:
        return None
    return Condition(
        rule="verify_guessing",
        key=f"verify_guessing:{p.client}",
        severity="critical",
        title=f"接口客户端 {p.client} 近 {settings.guessing_window_hours} 小时核验不符涉及 {p.claims} 个证件或身份，"
        f"其中 {p.exhausted} 个已达上限：疑似以核验猜测未授权的信息",
        link=f"{look.dashboard_link}#api",
        detail={"claims": p.claims, "exhausted": p.exhausted, "failures": p.failures},
    )


@dataclass(frozen=True)
class Disk:
    """A disk holding some of the platform's local folders: where it is mounted, which folders, its space."""

    mount: Path
    folders: tuple[str, ...]
    total: int
    free: int


FOLDERS = {"archive_dir": "归档目录", "landing_dir": "落地目录", "outbox_dir": "回执目录"}


def _disks(look: Look) -> list[Disk]:
    """The disks of the local folders among POPEX_ARCHIVE_DIR, _LANDING_DIR and _OUTBOX_DIR, each once."""
    settings = storage_settings()
    found: dict[int, tuple[Path, list[str]]] = {}
    for name, label in FOLDERS.items():
        where = storage.location(getattr(settings, name))
        if not isinstance(where, Path):
            continue
        probe = where.resolve()
        while not probe.exists():  # not made yet: its disk is the nearest existing parent's
            probe = probe.parent
        mount = probe
        while not os.path.ismount(mount):
            mount = mount.parent
        found.setdefault(os.stat(probe).st_dev, (mount, []))[1].append(label)
    disks = []
    for mount, labels in found.values():
        usage = shutil.disk_usage(mount)
        disks.append(Disk(mount, tuple(labels), usage.total, usage.free))
    return disks


def _disk_low(look: Look, disk: Disk) -> Condition | None:
    settings = look.settings
    share, gib = 100.0 * disk.free / max(disk.total, 1), disk.free / 2**30
    if share >= settings.disk_free_percent and gib >= settings.disk_free_gb:
        return None
    critical = share < settings.disk_free_percent / 2 or gib < settings.disk_free_gb / 2
    return Condition(
        rule="disk_low",
        key=f"disk_low:{disk.mount}",
        severity="critical" if critical else "warning",
        title=f"{'、'.join(disk.folders)}所在磁盘（{disk.mount}）仅剩 {gib:.1f} GB（{share:.1f}%）："
        "写满后文件无法接收和归档，每日流程将失败",
        link=look.dashboard_link,
        detail={"mount": str(disk.mount), "free_bytes": disk.free, "total_bytes": disk.total},
    )


# Every rule, grouped by what it looks at; conditions are listed (and alerts raised) in this order.
RULES: tuple[RuleGroup[Any], ...] = (
    RuleGroup(_feed_days, (_feed_missing,)),
    RuleGroup(_delivered_batches, (_reject_rate, _gate_failed)),
    RuleGroup(_aged_reviews, (_review_aged,)),
    RuleGroup(_api_clients, (_api_error_rate, _api_failures, _api_not_found)),
    RuleGroup(_verifying_clients, (_verify_guessing,)),
    RuleGroup(_disks, (_disk_low,)),
)


def find_conditions(*, session: Session, now: datetime, settings: MonitorSettings) -> list[Condition]:
    """Every rule's conditions as of `now`."""
    look = Look(session, now, settings, *window(now, settings))
    return [c for group in RULES for c in group.conditions(look)]


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
