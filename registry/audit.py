"""Write to and verify the hash-chained audit log."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

    # Records up to the last one read (a detached start's count included): the whole log when it
    # verifies, up to the chunk of the first bad row if not.
    rows: int
    first_bad_id: int | None
    # The first row (from the `audit.canonical` record on, when the server sets the time) whose time
    # is before its predecessor's: a row written with a time of its own, past the trigger.
    backwards_id: int | None = None
    # For each anchored id found: its hash and its position in the log (1 = the first row).
    anchored: dict[int, tuple[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every row's hash and link agree and time never goes back."""
        return self.first_bad_id is None and self.backwards_id is None


# Recomputes each row's hash with the same SQL function the insert trigger used, and checks the link
# to the row before it; the first row where either disagrees was changed (or a row was removed). One
# chunk of rows in id order at a time: the first row's link is checked against the last hash of the
# chunk before (`before`; its time, read here: a client may not parse the session's DateStyle), so chunks verify the chain exactly as one pass
# over it would. The rows whose ids are anchored (registry/anchors.py) give their hash and position.
VERIFY_CHUNK_SQL = text(
    """
    SELECT count(*) AS rows, max(id) AS last_id,
           min(id) FILTER (WHERE hash <> audit_log_hash(prev_hash, id, at, actor, action, object_type,
                                                        object_id, detail)
                              OR prev_hash <> coalesce(prev, :before)) AS first_bad_id,
           min(id) FILTER (WHERE id > :clock_from AND at < coalesce(prev_at, (SELECT at FROM audit_log WHERE id = :after))) AS backwards_id,
           jsonb_object_agg(id, jsonb_build_array(hash, :done + pos)) FILTER (WHERE id = ANY(:anchored))
               AS anchored
    FROM (SELECT *, lag(hash) OVER w AS prev, lag(at) OVER w AS prev_at, row_number() OVER w AS pos
          FROM (SELECT * FROM audit_log WHERE id > :after AND id <= :upto ORDER BY id LIMIT :n) AS part
          WINDOW w AS (ORDER BY id)) AS chain
    """
)
GENESIS = "0" * 64  # the link of the first row


@dataclass(frozen=True)
class ChainStart:
    """Where the log starts after its oldest months were detached: the last detached record's id and
    hash, and the number of records up to it (registry/anchors.py keeps it, signed)."""

    id: int
    hash: str
    count: int


VERIFY_CHUNK = 200_000  # rows per statement: about 2 s here (100,000 rows/s)
# From this record on the chain trigger sets `at` (migration 0010_audit_canonical); none: from the start.
CLOCK_FROM_SQL = text("SELECT coalesce(min(id), 0) FROM audit_log WHERE action = 'audit.canonical'")


def verify_chain(
    *,
    session: Session,
    chunk: int = VERIFY_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    anchored: Sequence[int] = (),
    start: ChainStart | None = None,
    upto: int | None = None,
) -> ChainCheck:
    """Verify the chain and report the first row that does not verify.

    Reads the log as it is when called (records appended meanwhile are left for the next run), in
    chunks of `chunk` rows in id order; after each, `progress(last_id, max_id)` (ids, not rows:
    counting a large log would be a pass of its own). Stops at the first bad row. The hash and
    position of each id in `anchored` that is found are returned for checking against the anchors.
    From the first record, or after `start` when the months before it were detached (the first record
    read must then link to start's hash, and positions count on from start's); through `upto`, or the
    newest record.
    """
    newest = upto if upto is not None else session.scalar(text("SELECT max(id) FROM audit_log")) or 0
    clock_from = session.scalar(CLOCK_FROM_SQL)
    rows, after, before = (start.count, start.id, start.hash) if start is not None else (0, 0, GENESIS)
    found: dict[int, tuple[str, int]] = {}
    ids = list(anchored)
    while True:
        n, last_id, first_bad, backwards, marks = session.execute(
            VERIFY_CHUNK_SQL,
            {"after": after, "upto": newest, "before": before, "n": chunk,
             "clock_from": clock_from, "done": rows, "anchored": ids},
        ).one()  # fmt: skip
        found.update({int(k): (v[0], int(v[1])) for k, v in (marks or {}).items()})
        rows += n
        if first_bad is not None or backwards is not None or not n:
            return ChainCheck(rows, first_bad, backwards, found)
        after = last_id
        before = session.scalar(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": last_id})
        if progress is not None:
            progress(last_id, newest)
