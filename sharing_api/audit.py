"""Audit of every access to personal data, written to the hash-chained audit_log before data leaves.

One INSERT per group of requests (not per person): the person numbers touched go in the record's
detail, which the GIN index `ix_audit_log_detail` makes searchable for a person's access history.

Writers share one statement (`INSERT_SQL`, pyformat, for psycopg2 and psycopg alike):
- `SessionAudit` writes in the request's own session and commits (tests).
- `GroupCommitAudit` (the server's) is one asyncio task per server process with a connection of its
  own: every record queued while it commits goes in its next INSERT, one transaction for the group.
  The chain's trigger serialises audit inserts until commit, so one commit per request would cap
  the service at one chain step per request; grouping keeps each record durable before its response
  is sent (the request awaits the commit) at a fraction of the cost. Being a task, not a thread, it
  costs the event loop no lock hand-over (a thread waits for the interpreter lock under load).
"""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# The trigger takes the chain's lock, draws the id under it and links the row to the one before, so
# rows inserted in the order of `n` follow each other in the chain.
INSERT_SQL = """
INSERT INTO audit_log (actor, action, object_type, object_id, detail, prev_hash, hash)
SELECT r.actor, r.action, r.object_type, r.object_id, r.detail, '', ''
FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb)
                AS (actor text, action text, object_type text, object_id text, detail jsonb))
     WITH ORDINALITY AS r(actor, action, object_type, object_id, detail, n)
ORDER BY r.n
"""


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


def _rows_json(entries: list[AccessEntry]) -> str:
    return orjson.dumps([e.row() for e in entries]).decode()


def append_access(conn: Connection | Session, entries: list[AccessEntry]) -> None:
    """Append entries to the audit chain, in order, with one statement (in the caller's transaction)."""
    connection = conn.connection() if isinstance(conn, Session) else conn
    connection.exec_driver_sql(INSERT_SQL, {"rows": _rows_json(entries)})


class AccessAudit(Protocol):
    """Where a request's audit records go; `write` returns once they are committed."""

    async def write(self, entries: list[AccessEntry]) -> None:
        """Append and commit the entries, or raise."""


class SessionAudit:
    """Writes in the given session and commits it (in tests: the savepoint of the test's transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def write(self, entries: list[AccessEntry]) -> None:
        """Append and commit the entries."""
        append_access(self.session, entries)
        self.session.commit()


class GroupCommitAudit:
    """One writer task per event loop: every entry queued while it commits goes in its next commit."""

    def __init__(self, conninfo: str, *, max_group: int = 500, timeout: float = 10.0) -> None:
        self.conninfo = conninfo
        self.max_group = max_group
        self.timeout = timeout
        self._queue: asyncio.Queue[tuple[list[AccessEntry], asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def write(self, entries: list[AccessEntry]) -> None:
        """Queue the entries and wait until their group is committed (at most `timeout` seconds)."""
        loop = asyncio.get_running_loop()
        queue = self._ensure_task(loop)
        done: asyncio.Future[None] = loop.create_future()
        queue.put_nowait((entries, done))
        await asyncio.wait_for(asyncio.shield(done), self.timeout)

    def _ensure_task(
        self, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Queue[tuple[list[AccessEntry], asyncio.Future[None]]]:
        # Started on first use in each loop: each server worker process (and each test client) has
        # its own loop, and a task or connection belongs to the loop that made it.
        if self._queue is None or self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue), name="audit-writer")
        return self._queue

    async def _run(self, queue: asyncio.Queue[tuple[list[AccessEntry], asyncio.Future[None]]]) -> None:
        import psycopg  # the asyncio driver: imported by the server only

        conn: psycopg.AsyncConnection[Any] | None = None
        while True:
            group = [await queue.get()]
            while not queue.empty() and len(group) < self.max_group:
                group.append(queue.get_nowait())
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        self.conninfo,
                        autocommit=True,  # one statement, one transaction: the group's commit
                        connect_timeout=max(int(self.timeout), 2),
                        options=f"-c statement_timeout={int(self.timeout * 1000)}",
                        application_name="popex-audit",
                    )
                await conn.execute(
                    INSERT_SQL, {"rows": _rows_json([e for entries, _ in group for e in entries])}
                )
            except Exception as exc:  # every waiting request fails closed: no audit, no data
                log.exception("audit write failed for %d requests", len(group))
                if conn is not None:
                    await conn.close()
                    conn = None
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
