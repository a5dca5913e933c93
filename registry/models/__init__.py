"""Every mapped table of the one database (imported here so alembic sees them all)."""

from registry.models.audit import AuditLog
from registry.models.batch import Batch, SourceRecord
from registry.models.person import (
    AttributeHistory,
    ChangeEvent,
    Link,
    NonMatch,
    Person,
    PersonAttribute,
    PersonIdentifier,
    ReviewItem,
)
from registry.models.reference import Area, Department, Feed

__all__ = [
    "Area",
    "AttributeHistory",
    "AuditLog",
    "Batch",
    "ChangeEvent",
    "Department",
    "Feed",
    "Link",
    "NonMatch",
    "Person",
    "PersonAttribute",
    "PersonIdentifier",
    "ReviewItem",
    "SourceRecord",
]
