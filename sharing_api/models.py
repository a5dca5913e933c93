"""The sharing service's own tables: member departments' API clients with their policies."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, String, func, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base
from registry.models import AuditLog


class ApiClient(Base):
    """A department's system that calls the API: its hashed key and the policy it works under."""

    __tablename__ = "api_client"
    __table_args__ = (CheckConstraint("status IN ('active', 'disabled')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str]
    department_code: Mapped[str | None] = mapped_column(ForeignKey("department.code"))
    # SHA-256 of the key, hex; the key itself is shown once, at creation or rotation (see clients.py).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_expires_at: Mapped[datetime | None]
    key_rotated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(String(8), default="active")
    # A sharing_api.policy.Policy as JSON, validated whenever it is written.
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class VerifyFailure(Base):
    """A verification that did not match: a client's guess at a document or an identity (guessing.py)."""

    __tablename__ = "verify_failure"
    __table_args__ = (Index("ix_verify_failure_client_subject", "client", "subject", "failed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client: Mapped[str] = mapped_column(String(32))
    # A digest of what was claimed (guessing.subjects): no document number or name in clear.
    subject: Mapped[str] = mapped_column(String(32))
    failed_at: Mapped[datetime] = mapped_column(server_default=func.now())


# "Who looked at me": a person's access history finds the audit records whose detail lists their
# number ((detail -> 'person_nos') @> '["P…"]'): one index entry per person touched, written straight
# into the index, no pending list whose merge would hold the audit chain's lock. Queries must use this
# very expression for the index to serve them.
AUDIT_PERSON_NOS = literal_column("(audit_log.detail -> 'person_nos')", JSONB)
Index(
    "ix_audit_log_person_nos",
    AuditLog.__table__.c.detail.op("->")(literal_column("'person_nos'")).label("person_nos"),
    postgresql_using="gin",
    postgresql_ops={"person_nos": "jsonb_path_ops"},
    postgresql_with={"fastupdate": "off"},
)
