"""The exchange's own table: the departments' push credentials."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class PushCredential(Base):
    """A department's key for the push endpoint, stored as its SHA-256 (the key itself is shown once).

    SHA-256 rather than a slow password hash: the key is 256 random bits, so it cannot be guessed
    from its hash, and checking it costs microseconds on every upload.
    """

    __tablename__ = "push_credential"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("department.code"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]
