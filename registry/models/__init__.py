"""Every mapped table of the one database (imported here so alembic sees them all)."""

from registry.models.audit import AuditLog
from registry.models.batch import Batch, Delivery, SourceRecord
from registry.models.person import (
    ChangeEvent,
    Link,
    NonMatch,
    Person,
    PersonIdentifier,
    PersonTally,
    PersonVersion,
    ReviewItem,
)
from registry.models.reference import Area, Department, Feed

__all__ = [
    "Area",
    "AuditLog",
    "Batch",
    "ChangeEvent",
    "Delivery",
    "Department",
    "Feed",
    "Link",
    "NonMatch",
    "Person",
    "PersonIdentifier",
    "PersonTally",
    "PersonVersion",
    "ReviewItem",
    "SourceRecord",
]
