"""One statement for every request of a loop pass, sent without waiting: the server's reads and audit.

A server process has one event loop. The single-person routes need two round trips to PostgreSQL per
request (the read, the audit commit); done inline, each blocks the loop for its round trip while
PostgreSQL, on the same cores, works on it. Instead a request queues its item and awaits it; what
the requests of one loop pass have queued goes to PostgreSQL as one statement on a connection of its
own, in psycopg2's asynchronous mode: the loop serves other requests until the answer is readable
(`add_reader`, or `add_writer` while a large statement is still being written), then the waiting
requests go on and what was queued meanwhile is sent as the next group. One group is in flight per
connection.

Bounds: `statement_timeout` (and `lock_timeout`) on the server; `answer_timeout` here, for a server
that is gone. An unanswered statement is cancelled before its connection is closed (a backend waiting
on a lock would not notice its client gone, and would go on to commit), and its group fails. Any
failure fails the whole group and drops the connection; the next group opens a new one.
"""

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import CompoundSelect, Select, make_url
from sqlalchemy.dialects import postgresql

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Waiting = list[tuple[ItemT, asyncio.Future[ResultT]]]


# SQLAlchemy's dialect constructors carry no annotations (mypy --strict: no-untyped-call).
_DIALECT = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]
_PARAM = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Statement:
    """A Core statement compiled once, with its PREPARE and EXECUTE forms, and as it is (`sql`, with
    %(name)s parameters: for a connection that may not prepare, behind a transaction pooler)."""

    name: str
    prepare_sql: str
    execute_sql: str
    sql: str

    @classmethod
    def of(cls, name: str, stmt: Select[Any] | CompoundSelect[Any]) -> "Statement":
        """Compile a statement: its named parameters become $1, $2 … in order of first appearance."""
        sql = str(stmt.compile(dialect=_DIALECT))
        params = list(dict.fromkeys(_PARAM.findall(sql)))
        numbered = _PARAM.sub(lambda m: f"${params.index(m.group(1)) + 1}", sql)
        arguments = ", ".join(f"%({p})s" for p in params)
        return cls(name, f"PREPARE {name} AS {numbered}", f"EXECUTE {name}({arguments})", sql)


def role_option(role: str) -> str:
    """libpq's connection options for acting as `role` ("": the login role's own privileges)."""
    return f"-c role={role}" if role else ""


class GroupedStatement(Generic[ItemT, ResultT]):
    """Items queued in one loop pass, answered by one prepared statement; one group in flight.

    Subclasses say what the statement is (`statement`), its parameters for a group (`parameters`) and
    each item's result from the cursor (`results`).
    """

    statement: Statement
    application_name = "popex"
    settings: tuple[tuple[str, str], ...] = ()  # PostgreSQL settings of the connection (name, value)

    def __init__(
        self,
        url: str,
        *,
        statement_timeout: float,
        lock_timeout: float | None = None,
        answer_timeout: float | None = None,
        role: str = "",
        session_state: bool = True,
    ) -> None:
        # The project's database URL (SQLAlchemy's form, postgresql+psycopg2://…) as libpq reads it.
        self.url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.statement_timeout = statement_timeout
        self.lock_timeout = lock_timeout
        self.role = role  # the PostgreSQL role the connection acts as ("": the login role)
        # False behind a transaction pooler: consecutive statements may run on different server
        # connections, so nothing is left on one (no PREPARE, no startup options); each statement
        # carries its settings (SET LOCAL: the implicit transaction of one multi-statement query).
        self.session_state = session_state
        # statement_timeout ends a slow statement on the server; this ends a wait on a server that is gone.
        self.answer_timeout = statement_timeout + 1 if answer_timeout is None else answer_timeout
        self._pending: Waiting[ItemT, ResultT] = []
        self._in_flight: Waiting[ItemT, ResultT] | None = None
        self._connection: Any = None
        self._cursor: Any = None  # kept while a group is in flight: psycopg2 polls through it
        self._deadline: asyncio.TimerHandle | None = None  # the in-flight group's answer timeout
        # What the loop watches the connection's socket for ("read", "write", None): changed only when
        # the poll asks for something else (not removed and added again at every step of every group).
        self._watching: str | None = None
        self._watched_fd = -1
        self._prepared = False

    def parameters(self, items: list[ItemT]) -> dict[str, Any]:
        """The statement's parameters for these items."""
        raise NotImplementedError

    def results(self, items: list[ItemT], cursor: Any) -> list[ResultT]:
        """Each item's result, in order, from the answered statement's cursor."""
        raise NotImplementedError

    async def submit(self, item: ItemT) -> ResultT:
        """Queue the item and wait for its group's answer (raises what failed the group)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ResultT] = loop.create_future()
        if not self._pending and self._in_flight is None:  # after the requests ready in this pass
            loop.call_soon(self._send)
        self._pending.append((item, done))
        return await done

    def _connect(self) -> Any:
        import psycopg2
        import psycopg2.extras

        if self._connection is None or self._connection.closed:
            options = " ".join(f"-c {name}={value}" for name, value in self._settings())
            connection = psycopg2.connect(
                self.url,
                connect_timeout=5,
                options=options if self.session_state else "",
                application_name=self.application_name,
                async_=True,  # autocommit: one statement, one transaction
            )
            psycopg2.extras.wait_select(connection)  # a new connection only: blocking, bounded
            self._connection, self._prepared = connection, False
        return self._connection

    def _settings(self) -> list[tuple[str, str]]:
        """The connection's PostgreSQL settings: timeouts (ms), the class's own, the role."""
        settings = [("statement_timeout", str(int(self.statement_timeout * 1000)))]
        if self.lock_timeout is not None:
            settings.append(("lock_timeout", str(int(self.lock_timeout * 1000))))
        settings.extend(self.settings)
        if self.role:
            settings.append(("role", self.role))
        return settings

    def _sql(self) -> str:
        st = self.statement
        if not self.session_state:
            return "".join(f"SET LOCAL {name} = {value}; " for name, value in self._settings()) + st.sql
        return st.execute_sql if self._prepared else f"{st.prepare_sql}; {st.execute_sql}"

    def _send(self) -> None:
        if self._in_flight is not None or not self._pending:
            return
        group, self._pending = self._pending, []
        self._in_flight = group
        loop = asyncio.get_running_loop()
        try:
            parameters = self.parameters([item for item, _ in group])
            connection = self._connect()
            self._cursor = connection.cursor()
            self._cursor.execute(self._sql(), parameters)
            self._prepared = True
        except Exception as exc:
            self._finish(exc)
            return
        self._deadline = loop.call_later(self.answer_timeout, self._overdue, group)
        self._poll()

    def _poll(self) -> None:
        """Advance the group's statement: wait to write the rest of it, wait for the answer, or done."""
        import psycopg2.extensions

        try:
            state = self._connection.poll()
        except Exception as exc:  # the server's error (lock or statement timeout …) or a lost link
            self._finish(exc)
            return
        if state == psycopg2.extensions.POLL_OK:
            self._finish(None)
        elif state == psycopg2.extensions.POLL_WRITE:  # a large group: the socket's buffer was full
            self._watch("write")
        else:
            self._watch("read")

    def _watch(self, event: str | None) -> None:
        """Have the loop call `_poll` when the socket is ready for `event` (None: for nothing)."""
        if event == self._watching:
            return
        loop = asyncio.get_running_loop()
        if self._watching == "read":
            loop.remove_reader(self._watched_fd)
        elif self._watching == "write":
            loop.remove_writer(self._watched_fd)
        self._watching = None
        if event is not None:
            self._watched_fd = self._connection.fileno()
            (loop.add_reader if event == "read" else loop.add_writer)(self._watched_fd, self._poll)
            self._watching = event

    def _overdue(self, group: Waiting[ItemT, ResultT]) -> None:
        if self._in_flight is group:
            with contextlib.suppress(Exception):
                self._connection.cancel()
            self._finish(TimeoutError(f"{self.application_name}: unanswered after {self.answer_timeout} s"))

    def _finish(self, exc: Exception | None) -> None:
        group, cursor = self._in_flight or [], self._cursor
        self._in_flight, self._cursor = None, None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        with contextlib.suppress(Exception):  # its socket may be closed already (a lost link)
            self._watch(None)
        self._watching = None
        results: list[ResultT] = []
        if exc is None:
            try:
                results = self.results([item for item, _ in group], cursor)
            except Exception as failed:
                exc = failed
        if exc is not None:  # every waiting request fails
            log.error("%s failed for %d requests: %s", self.application_name, len(group), type(exc).__name__)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        for i, (_, done) in enumerate(group):
            if not done.done():
                if exc is None:
                    done.set_result(results[i])
                else:
                    done.set_exception(exc)
        self._send()  # what was queued meanwhile
