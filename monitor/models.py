"""The monitor's own table: alerts raised by the rules, open until their condition clears."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base

ALERT_STATES = ("open", "resolved")


class MonitorAlert(Base):
    """One alert: a rule's condition on one feed day or batch, from raised to resolved.

    `key` names the condition (rule + what it is about); at most one open alert per key, so a condition
    seen again by a later evaluation is the same alert, not a new one.
    """

    __tablename__ = "monitor_alert"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'resolved')", name="state"),
        Index("ux_monitor_alert_open_key", "key", unique=True, postgresql_where=text("state = 'open'")),
        Index("ix_monitor_alert_state_raised", "state", "raised_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(160))
    state: Mapped[str] = mapped_column(String(8), default="open")
    severity: Mapped[str] = mapped_column(String(8))  # critical, warning
    title: Mapped[str]
    link: Mapped[str]
    source: Mapped[str | None] = mapped_column(String(32))
    as_of_date: Mapped[date | None]
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    raised_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    # The state last delivered to the webhook; differs from `state` until a delivery succeeds.
    notified_state: Mapped[str | None] = mapped_column(String(8))
    notify_error: Mapped[str | None]


class AuditHourly(Base):
    """Audit records per hour, platform area (the action's prefix) and client, rolled up from audit_log.

    The monitor's counts over days of audit records read these instead of every record
    (monitor/health.py); rows of audit_log after the roll-up's `last_id` are counted from audit_log.
    """

    __tablename__ = "audit_hourly"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    area: Mapped[str] = mapped_column(primary_key=True)
    client: Mapped[str] = mapped_column(primary_key=True)  # detail's client, else the actor
    records: Mapped[int] = mapped_column(BigInteger)
    refused: Mapped[int] = mapped_column(BigInteger)
    not_found: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(
        BigInteger, server_default="0"
    )  # server-side failures (outcome error)


class AuditRollup(Base):
    """How far audit_hourly has rolled audit_log up: every record with id <= last_id, none after."""

    __tablename__ = "audit_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    rolled_at: Mapped[datetime]
