"""Write to and verify the hash-chained audit log."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.models import AuditLog


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    object_type: str | None = None,
    object_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit record; the database computes its place in the chain."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail or {},
            prev_hash="",
            hash="",
        )
    )
    session.flush()


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of verifying the chain."""

    rows: int
    first_bad_id: int | None

    @property
    def ok(self) -> bool:
        """True when every row's hash and link agree."""
        return self.first_bad_id is None


# Recomputes each row's hash with the same SQL function the insert trigger used, and checks the link
# to the row before it; the first row where either disagrees was changed (or a row was removed).
VERIFY_SQL = text(
    """
    SELECT count(*) AS rows,
           min(id) FILTER (WHERE hash <> audit_log_hash(prev_hash, id, at, actor, action, object_type,
                                                        object_id, detail)
                              OR prev_hash <> coalesce(prev, repeat('0', 64))) AS first_bad_id
    FROM (SELECT *, lag(hash) OVER (ORDER BY id) AS prev FROM audit_log) AS chain
    """
)


def verify_chain(*, session: Session) -> ChainCheck:
    """Verify the whole chain and report the first row that does not verify."""
    rows, first_bad = session.execute(VERIFY_SQL).one()
    return ChainCheck(rows, first_bad)
