"""Every received file (a batch) and every row in it (a source record)."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base
from schemas.canonical import BatchState, BatchStep

BATCH_STATES = tuple(
    str(state) for state in BatchState
)  # their meanings, moves and labels: schemas.canonical
BATCH_STEPS = tuple(str(step) for step in BatchStep)


class Batch(Base):
    """One received file: its archive, hash, as-of date, state and row accounting."""

    __tablename__ = "batch"
    __table_args__ = (
        CheckConstraint(f"state IN {BATCH_STATES!r}", name="state"),
        CheckConstraint(f"failed_step IN {BATCH_STEPS!r}", name="failed_step"),
        # A failed batch says which step failed (a rerun resumes it); no other batch names one.
        CheckConstraint("(state = 'failed') = (failed_step IS NOT NULL)", name="failed_has_step"),
        # A duplicate is the same source's content again; another source's equal bytes are its own file.
        UniqueConstraint("source", "sha256", name="uq_batch_source_sha256"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(ForeignKey("feed.source"), index=True)
    file_name: Mapped[str] = mapped_column(index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    archive_path: Mapped[str]
    as_of_date: Mapped[date] = mapped_column(index=True)
    seq: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(String(16), default="cli")  # cli, push, landing, collection
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    state: Mapped[str] = mapped_column(String(16), default="received")
    encoding: Mapped[str | None] = mapped_column(String(16))
    file_format: Mapped[str | None] = mapped_column(String(8))
    rows_received: Mapped[int] = mapped_column(default=0)
    rows_accepted: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_review: Mapped[int] = mapped_column(default=0)
    gate_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    step_seconds: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None]
    failed_step: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SourceRecord(Base):
    """One data row of a batch: the raw row as received plus its parsed canonical fields."""

    __tablename__ = "source_record"
    __table_args__ = (
        UniqueConstraint("batch_id", "row_no", "recorded_at", name="uq_source_record_batch_row"),
        CheckConstraint("status IN ('accepted', 'rejected', 'review')", name="status"),
        # No index on id_no or (source, record_key): no query looks records up by either, and keeping
        # them cost a quarter to a half of the parse step's COPY (migration 0020).
        # Yearly partitions (registry/partitions.py, migration 0015): every key includes recorded_at.
        {"postgresql_partition_by": "RANGE (recorded_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # When the row was written (its parse's transaction): the partition column.
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now(), primary_key=True)
    batch_id: Mapped[int] = mapped_column(BigInteger)  # no FK: see registry/consistency.py
    row_no: Mapped[int]
    source: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str | None]
    # area_key: the district the record belongs to; the partitioning key of the big tables.
    area_key: Mapped[str | None] = mapped_column(String(6))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSONB, default=list)
    id_type: Mapped[str | None] = mapped_column(String(10))
    id_no: Mapped[str | None] = mapped_column(String(32))
    id_valid: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str | None]
    name_pinyin: Mapped[str | None]
    former_name: Mapped[str | None]
    sex: Mapped[str | None] = mapped_column(String(1))
    ethnicity: Mapped[str | None] = mapped_column(String(2))
    birth_date: Mapped[date | None]
    phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None]
    community_code: Mapped[str | None] = mapped_column(String(12))
    population_type: Mapped[str | None] = mapped_column(String(10))
    residence_status: Mapped[str | None] = mapped_column(String(10))
    event: Mapped[str | None] = mapped_column(String(16))
    event_date: Mapped[date | None]
    mother_id_no: Mapped[str | None] = mapped_column(String(32))
    father_id_no: Mapped[str | None] = mapped_column(String(32))
    spouse_id_no: Mapped[str | None] = mapped_column(String(32))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class Delivery(Base):
    """Every arrival of a file, duplicates included: what timeliness is measured on.

    A batch is one distinct content (by SHA-256); the same bytes delivered again, under the same or
    another name, make a delivery pointing at the existing batch and are not applied twice.
    """

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_source_date", "source", "as_of_date"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(ForeignKey("feed.source"))
    file_name: Mapped[str]
    as_of_date: Mapped[date]
    seq: Mapped[int] = mapped_column(default=1)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    duplicate: Mapped[bool] = mapped_column(default=False)
