"""The append-only, hash-chained audit log."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class AuditLog(Base):
    """One audited action; rows are never updated or deleted (a trigger forbids it)."""

    __tablename__ = "audit_log"
    # Rows arrive in time order and are never changed: a block-range index serves time ranges.
    __table_args__ = (Index("ix_audit_log_at", "at", postgresql_using="brin"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str]
    action: Mapped[str] = mapped_column(String(48), index=True)
    object_type: Mapped[str | None] = mapped_column(String(24))
    object_id: Mapped[str | None]
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
