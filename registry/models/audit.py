"""The append-only, hash-chained audit log."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, FetchedValue, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class AuditLog(Base):
    """One audited action; rows are never updated or deleted (a trigger forbids it)."""

    __tablename__ = "audit_log"
    # Rows arrive in time order and are never changed: a block-range index serves time ranges.
    # Monthly partitions on logged_on (registry/partitions.py, migration 0013).
    __table_args__ = (
        Index("ix_audit_log_at", "at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (logged_on)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # The day the record is written (migration 0014; the trigger refuses another): the partition column.
    logged_on: Mapped[date] = mapped_column(primary_key=True, server_default=FetchedValue())
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str]
    action: Mapped[str] = mapped_column(String(48), index=True)
    object_type: Mapped[str | None] = mapped_column(String(24))
    object_id: Mapped[str | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
