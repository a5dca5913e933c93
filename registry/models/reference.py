"""Reference data: the area hierarchy, member departments and their feeds."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class Area(Base):
    """A district (6-digit), street (9-digit) or community (12-digit) of the city."""

    __tablename__ = "area"
    __table_args__ = (
        CheckConstraint("level IN ('district', 'street', 'community')", name="level"),
        CheckConstraint(
            "(level = 'district' AND length(code) = 6) OR (level = 'street' AND length(code) = 9)"
            " OR (level = 'community' AND length(code) = 12)",
            name="code_length",
        ),
    )

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str]
    level: Mapped[str] = mapped_column(String(10))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("area.code"), index=True)
    loaded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Department(Base):
    """A member department (公安, 卫健, 人社 …) or the community collection network."""

    __tablename__ = "department"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str]


class Feed(Base):
    """One source a department delivers daily, described by a spec file in schemas/feeds/."""

    __tablename__ = "feed"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("department.code"))
    title: Mapped[str]
