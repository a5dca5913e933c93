"""Golden records, the links that build them, their history, and the review queue.

The bulk tables (person_identifier, link, person_version, change_event, and source_record) carry no
foreign keys: they are written set-wise by code that derives every id from rows it just joined, and a
foreign-key check per row would cost more than the insert itself (measured: 3 checks per row doubled
the time of 650,000-row inserts). registry/consistency.py checks them instead (`popex db check`).
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


class Person(Base):
    """The golden record of one real person, numbered with a stable unified person number."""

    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'dead', 'left', 'retired')", name="status"),
        Index("ix_person_birth_name", "birth_date", "name_pinyin"),
        Index("ix_person_community", "community_code", "status"),
        Index("ix_person_name", "name"),  # how many persons bear a name (resolve's name weights)
        # The community + birth date + sex blocking rule (linkage.BLOCKING_RULES).
        Index("ix_person_community_birth", "community_code", "birth_date", "sex"),
        # Blocking keys for records whose ID number has a typo: one half of the number survives.
        Index("ix_person_pinyin_id_head", "name_pinyin", func.substr(text("id_no"), 1, 9)),
        Index("ix_person_pinyin_id_tail", "name_pinyin", func.substr(text("id_no"), 10)),
        # One number, one live person, checked at commit (migration 0009_identifier_once).
        ExcludeConstraint(
            (text("id_type"), "="),
            (text("id_no"), "="),
            name="ex_person_identifier_once",
            using="btree",
            where=text("status <> 'retired' AND id_no IS NOT NULL"),
            deferrable=True,
            initially="DEFERRED",
        ),
        # Room for a rewritten golden record on its own page: no index entries for it (migration 0018).
        {"postgresql_with": {"fillfactor": "70"}},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # 统一人口编号: 'P' + 11 digits from person_no_seq, assigned once, never reused.
    person_no: Mapped[str] = mapped_column(String(12), unique=True)
    area_key: Mapped[str | None] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(8), default="active")
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    id_type: Mapped[str | None] = mapped_column(String(10))
    id_no: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None]
    name_pinyin: Mapped[str | None]
    sex: Mapped[str | None] = mapped_column(String(1))
    ethnicity: Mapped[str | None] = mapped_column(String(2))
    birth_date: Mapped[date | None]
    death_date: Mapped[date | None]
    phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None]
    community_code: Mapped[str | None] = mapped_column(String(12))
    population_type: Mapped[str | None] = mapped_column(String(10))
    marital_status: Mapped[str | None] = mapped_column(String(10))
    # Per golden attribute: the source record, source and batch its value came from.
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PersonTally(Base):
    """How many persons are live (not retired) and how many of them hold no resident ID number: one
    row, kept exact by triggers on person and person_identifier (migration 0017_person_tally)."""

    __tablename__ = "person_tally"
    __table_args__ = (CheckConstraint("id = 1", name="one"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, server_default="1")
    active: Mapped[int] = mapped_column(BigInteger)
    without_rid: Mapped[int] = mapped_column(BigInteger)


class PersonIdentifier(Base):
    """A document number that identifies a person: the deterministic matching key."""

    __tablename__ = "person_identifier"

    id_type: Mapped[str] = mapped_column(String(10), primary_key=True)
    id_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)


class Link(Base):
    """Source record → person, with the score and comparison levels that decided it."""

    __tablename__ = "link"
    __table_args__ = (CheckConstraint("method IN ('auto', 'manual')", name="method"),)

    source_record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    batch_id: Mapped[int] = mapped_column(BigInteger, index=True)  # the record's batch (registry.consistency)
    area_key: Mapped[str | None] = mapped_column(String(6))
    rule: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None]
    levels: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    method: Mapped[str] = mapped_column(String(6), default="auto")
    linked_at: Mapped[datetime] = mapped_column(server_default=func.now())
    linked_by: Mapped[str | None]


class PersonVersion(Base):
    """One version of a golden record: valid time (valid_from) and record time (recorded_at).

    The state of a person on date D as known on date K is the version with valid_from <= D and
    recorded_at <= K that was recorded last.
    """

    __tablename__ = "person_version"
    __table_args__ = (
        Index("ix_person_version_person", "person_id", "recorded_at"),
        Index("ix_person_version_valid", "valid_from", "recorded_at"),
        # The lineage of an area: the persons with a version there (0019_person_version_community).
        Index(
            "ix_person_version_community",
            "community_code",
            postgresql_ops={"community_code": "varchar_pattern_ops"},
            postgresql_include=["person_id", "valid_from"],
        ),
        # Yearly partitions (registry/partitions.py): every key includes recorded_at.
        {"postgresql_partition_by": "RANGE (recorded_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigInteger)
    area_key: Mapped[str | None] = mapped_column(String(6))
    valid_from: Mapped[date]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now(), primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    changed: Mapped[list[str]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(8))
    id_no: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None]
    sex: Mapped[str | None] = mapped_column(String(1))
    birth_date: Mapped[date | None]
    death_date: Mapped[date | None]
    community_code: Mapped[str | None] = mapped_column(String(12))
    population_type: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None]
    phone: Mapped[str | None] = mapped_column(String(20))
    ethnicity: Mapped[str | None] = mapped_column(String(2))
    marital_status: Mapped[str | None] = mapped_column(String(10))


class ReviewItem(Base):
    """A decision the resolver would not take alone: a clerk accepts or rejects it."""

    __tablename__ = "review_item"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'accepted', 'rejected')", name="state"),
        Index("ix_review_item_open", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))  # id_conflict, probable_match
    # No foreign key: source_record is partitioned (migration 0015); registry/consistency.py checks it.
    source_record_id: Mapped[int] = mapped_column(BigInteger, index=True)
    candidate_person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    score: Mapped[float | None]
    levels: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None]
    note: Mapped[str | None]


class NonMatch(Base):
    """Two persons a clerk said are not the same: never proposed again (person_a < person_b)."""

    __tablename__ = "non_match"
    __table_args__ = (CheckConstraint("person_a < person_b", name="ordered"),)

    person_a: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    person_b: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_by: Mapped[str | None]


class ChangeEvent(Base):
    """A change to a golden record, published for the sharing service's change feed (id is the cursor)."""

    __tablename__ = "change_event"
    __table_args__ = (
        Index("ix_change_event_type", "event_type", "id"),
        # One event of a type per version: the key must include the partition column; the writers'
        # lock keeps it across years and `popex db check` counts a break (migration 0012).
        UniqueConstraint("version_id", "event_type", "recorded_at", name="uq_change_event_version_type"),
        {"postgresql_partition_by": "RANGE (recorded_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event_type: Mapped[str] = mapped_column(String(24))
    event_date: Mapped[date | None]
    community_code: Mapped[str | None] = mapped_column(String(12))
    batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    version_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now(), primary_key=True)
