"""Tables of the collection platform: officers, login failures, submissions and their rows, clearance.

A submission and its raw rows are written before any validation, so nothing an officer sends is lost.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class Officer(Base):
    """A community information officer (社区信息员): one account, one community."""

    __tablename__ = "collection_officer"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    officer_no: Mapped[str] = mapped_column(String(32), unique=True)  # 信息员工号
    name: Mapped[str]
    community_code: Mapped[str] = mapped_column(String(12), ForeignKey("area.code"), index=True)
    password_hash: Mapped[str]
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    password_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LoginFailure(Base):
    """One failed login, counted per account and address to throttle guessing."""

    __tablename__ = "collection_login_failure"
    __table_args__ = (Index("ix_collection_login_failure_key", "officer_no", "ip", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    officer_no: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class Submission(Base):
    """What an officer sent at once: one form, one spreadsheet, or one correction."""

    __tablename__ = "collection_submission"
    __table_args__ = (
        CheckConstraint("kind IN ('form', 'upload', 'correction')", name="kind"),
        Index("ix_collection_submission_day", "community_code", "work_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("collection_officer.id"), index=True)
    community_code: Mapped[str] = mapped_column(String(12), ForeignKey("area.code"))
    work_date: Mapped[date]
    kind: Mapped[str] = mapped_column(String(10))
    file_name: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SubmissionRow(Base):
    """One person as the officer typed it (raw sq_cj cells), and what validation said of it.

    status: pending (stored, not yet validated), accepted, rejected, corrected (a later row replaced
    this rejected one), discarded (the officer dropped it, saying why). batch_id: the exchange batch that carried the accepted row into the one database.
    """

    __tablename__ = "collection_row"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'corrected', 'discarded')", name="status"
        ),
        Index("ix_collection_row_day", "community_code", "work_date", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("collection_submission.id"), index=True)
    community_code: Mapped[str] = mapped_column(String(12))
    work_date: Mapped[date]
    row_no: Mapped[int]
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    reasons: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("collection_row.id"), unique=True)
    person_no: Mapped[str | None] = mapped_column(String(12))  # the resident being verified, if any
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    validated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  # when a correction replaced this row, or it was discarded
    discard_reason: Mapped[str | None] = mapped_column(String(200))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"), index=True)


class Clearance(Base):
    """一日一清: one community's day at the cut-off."""

    __tablename__ = "collection_clearance"

    community_code: Mapped[str] = mapped_column(String(12), ForeignKey("area.code"), primary_key=True)
    work_date: Mapped[date] = mapped_column(primary_key=True)
    cutoff_at: Mapped[datetime]
    submitted: Mapped[int]
    accepted: Mapped[int]
    rejected: Mapped[int]
    corrected: Mapped[int]
    discarded: Mapped[int] = mapped_column(server_default="0")
    still_open: Mapped[int]
    cleared: Mapped[bool]
    computed_at: Mapped[datetime] = mapped_column(server_default=func.now())
