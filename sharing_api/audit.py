"""Audit of every access to personal data, written to the hash-chained audit_log before data leaves.

One INSERT per request (not per person): the person numbers touched go in the record's detail, which
the GIN index `ix_audit_log_detail` makes searchable for a person's access history.

Two writers share `append_access`:
- `SessionAudit` writes in the request's own session and commits (tests, CLI).
- `GroupCommitAudit` (the server's) hands the record to one writer thread per process that inserts
  every record waiting at that moment in one statement and one commit, then releases the requests.
  The chain's trigger serialises every audit insert until commit, so one commit per request would
  cap the whole service at one fsync per request; grouping keeps the audit durable before the
  response is sent (the request waits for the commit) at a fraction of the cost.
"""

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, create_engine, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# The advisory lock is the one the chain trigger takes; taking it before the INSERT makes the ids
# (drawn from the sequence as each row is formed) follow the order of the chain. Without it two
# concurrent writers can draw ids in one order and take the lock in the other, and the chain, which
# verify_chain reads in id order, would no longer verify.
INSERT_SQL = text(
    """
    INSERT INTO audit_log (actor, action, object_type, object_id, detail, prev_hash, hash)
    SELECT r.actor, r.action, r.object_type, r.object_id, r.detail, '', ''
    FROM (SELECT pg_advisory_xact_lock(hashtext('audit_log'))) AS chain_lock,
         ROWS FROM (jsonb_to_recordset(:rows)
                    AS (actor text, action text, object_type text, object_id text, detail jsonb))
             WITH ORDINALITY AS r(actor, action, object_type, object_id, detail, n)
    ORDER BY r.n
    """
).bindparams(bindparam("rows", type_=JSONB))


@dataclass(frozen=True)
class AccessEntry:
    """One audited request: who, for whom, why, what was touched and returned, and the outcome."""

    client: str
    end_user: str
    purpose: str
    operation: str
    outcome: str  # ok, not_found, refused
    person_nos: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The audit_log row of this entry."""
        detail = {
            "client": self.client,
            "end_user": self.end_user,
            "purpose": self.purpose,
            "operation": self.operation,
            "outcome": self.outcome,
            "person_nos": self.person_nos,
            "fields": self.fields,
            **self.extra,
        }
        return {
            "actor": self.client,
            "action": f"sharing.{self.operation}",
            "object_type": "person" if self.person_nos else None,
            "object_id": self.person_nos[0] if len(self.person_nos) == 1 else None,
            "detail": detail,
        }


def append_access(conn: Connection | Session, entries: list[AccessEntry]) -> None:
    """Append entries to the audit chain, in order, with one statement."""
    conn.execute(INSERT_SQL, {"rows": [e.row() for e in entries]})


class AccessAudit(Protocol):
    """Where a request's audit record goes; `write` returns once the record is committed."""

    def write(self, entry: AccessEntry) -> None:
        """Append and commit one entry, or raise."""


class SessionAudit:
    """Writes in the given session and commits it (in tests: the savepoint of the test's transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def write(self, entry: AccessEntry) -> None:
        """Append and commit one entry."""
        append_access(self.session, [entry])
        self.session.commit()


class GroupCommitAudit:
    """One writer thread per process: every entry queued while it commits goes in its next commit."""

    def __init__(self, url: str, *, max_group: int = 500, timeout: float = 10.0) -> None:
        # A connection of its own: requests wait for this thread while holding pooled connections,
        # so taking one from their pool could wait for ever.
        self.engine = create_engine(url, pool_size=1, max_overflow=0)
        self.max_group = max_group
        self.timeout = timeout
        self._queue: queue.SimpleQueue[tuple[AccessEntry, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def write(self, entry: AccessEntry) -> None:
        """Queue the entry and wait until its group is committed."""
        self._ensure_thread()
        done: Future[None] = Future()
        self._queue.put((entry, done))
        done.result(timeout=self.timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, so that each server worker process (forked) has its own thread.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.engine.begin() as conn:
                    append_access(conn, [entry for entry, _ in group])
            except Exception as exc:  # every waiting request fails closed: no audit, no data
                log.exception("audit write failed for %d entries", len(group))
                for _, done in group:
                    done.set_exception(exc)
            else:
                for _, done in group:
                    done.set_result(None)
