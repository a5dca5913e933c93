"""Write to and verify the hash-chained audit log."""

from collections.abc import Callable
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

    rows: int  # rows read: the whole log when it verifies, up to the chunk of the first bad row if not
    first_bad_id: int | None

    @property
    def ok(self) -> bool:
        """True when every row's hash and link agree."""
        return self.first_bad_id is None


# Recomputes each row's hash with the same SQL function the insert trigger used, and checks the link
# to the row before it; the first row where either disagrees was changed (or a row was removed). One
# chunk of rows in id order at a time: the first row's link is checked against the last hash of the
# chunk before (`before`), so chunks verify the chain exactly as one pass over it would.
VERIFY_CHUNK_SQL = text(
    """
    SELECT count(*) AS rows, max(id) AS last_id,
           min(id) FILTER (WHERE hash <> audit_log_hash(prev_hash, id, at, actor, action, object_type,
                                                        object_id, detail)
                              OR prev_hash <> coalesce(prev, :before)) AS first_bad_id
    FROM (SELECT *, lag(hash) OVER (ORDER BY id) AS prev
          FROM (SELECT * FROM audit_log WHERE id > :after AND id <= :upto ORDER BY id LIMIT :n) AS part) AS chain
    """
)
GENESIS = "0" * 64  # the link of the first row
VERIFY_CHUNK = 200_000  # rows per statement: about 2 s here (100,000 rows/s)


def verify_chain(
    *,
    session: Session,
    chunk: int = VERIFY_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> ChainCheck:
    """Verify the whole chain and report the first row that does not verify.

    Reads the log as it is when called (records appended meanwhile are left for the next run), in
    chunks of `chunk` rows in id order; after each, `progress(last_id, max_id)` (ids, not rows:
    counting a large log would be a pass of its own). Stops at the first bad row.
    """
    newest = session.scalar(text("SELECT max(id) FROM audit_log")) or 0
    rows, after, before = 0, 0, GENESIS
    while True:
        n, last_id, first_bad = session.execute(
            VERIFY_CHUNK_SQL, {"after": after, "upto": newest, "before": before, "n": chunk}
        ).one()
        rows += n
        if first_bad is not None or not n:
            return ChainCheck(rows, first_bad)
        after = last_id
        before = session.scalar(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": last_id})
        if progress is not None:
            progress(last_id, newest)
