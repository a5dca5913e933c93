"""The sharing API's reads of golden records: prepared statements, rows as plain dicts.

Planning the lookup's join costs PostgreSQL about three times what running it does (measured with
pgbench here: 9,100 lookups/s planned each time against 39,000/s prepared), so each connection
prepares each statement once (PREPARE) and then only binds parameters (EXECUTE). The statements are
SQLAlchemy Core, compiled once at import; rows come back as plain dicts, without ORM work.

Two readers:
- `PersonReader` works on any psycopg2 connection, blocking: a request in the thread pool reads on
  its session's (batch verification), and so does a test, whose reads then see its transaction.
- `GroupedReads` (`PersonReads`, awaited) is the event loop's, for the single-person routes: the reads
  queued in one loop pass go as one statement, sent without waiting (sharing_api/grouped.py).
  `InlineReads` is the same interface over a `PersonReader` (tests).
"""

import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from registry.models import Person, PersonIdentifier
from sharing_api.config import sharing_settings
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.grouped import GroupedStatement, Statement
from sharing_api.policy import PersonField

Row = Mapping[str, Any]

# Everything a response can show, plus what the scope and merge checks need; never provenance.
PERSON_COLUMNS = (
    Person.id,
    Person.person_no,
    Person.status,
    Person.merged_into,
    *(getattr(Person, f.value) for f in PersonField if f.value not in ("status",)),
)
_PERSON = select(*PERSON_COLUMNS)
# The documents of a verification, as two arrays unnested with their position.
_ITEMS = (
    func.unnest(bindparam("id_types", type_=ARRAY(String)), bindparam("id_nos", type_=ARRAY(String)))
    .table_valued("id_type", "id_no", with_ordinality="n")
    .render_derived(name="item")
)

BY_ID = Statement.of("popex_person_by_id", _PERSON.where(Person.id == bindparam("id")))
BY_NUMBER = Statement.of("popex_person_by_number", _PERSON.where(Person.person_no == bindparam("person_no")))
BY_DOCUMENT = Statement.of(
    "popex_person_by_document",
    _PERSON.join(PersonIdentifier, PersonIdentifier.person_id == Person.id).where(
        PersonIdentifier.id_type == bindparam("id_type"), PersonIdentifier.id_no == bindparam("id_no")
    ),
)
_NUMBERS = (
    func.unnest(bindparam("person_nos", type_=ARRAY(String)))
    .table_valued("person_no", with_ordinality="n")
    .render_derived(name="number_item")
)
_IDS = (
    func.unnest(bindparam("ids", type_=ARRAY(BigInteger)))
    .table_valued("id", with_ordinality="n")
    .render_derived(name="id_item")
)
BY_DOCUMENTS = Statement.of(
    "popex_person_by_documents",
    select(_ITEMS.c.n, *PERSON_COLUMNS)
    .select_from(_ITEMS)
    .join(
        PersonIdentifier,
        (PersonIdentifier.id_type == _ITEMS.c.id_type) & (PersonIdentifier.id_no == _ITEMS.c.id_no),
    )
    .join(Person, Person.id == PersonIdentifier.person_id),
)
# The reads of one loop pass (GroupedReads), each row with its kind and its position among the keys of
# that kind. Each part is a nested loop of index scans, like the single reads.
BY_KEYS = Statement.of(
    "popex_person_by_keys",
    union_all(
        select(literal_column("'document'").label("kind"), _ITEMS.c.n, *PERSON_COLUMNS)
        .select_from(_ITEMS)
        .join(
            PersonIdentifier,
            (PersonIdentifier.id_type == _ITEMS.c.id_type) & (PersonIdentifier.id_no == _ITEMS.c.id_no),
        )
        .join(Person, Person.id == PersonIdentifier.person_id),
        select(literal_column("'number'"), _NUMBERS.c.n, *PERSON_COLUMNS).join(
            Person, Person.person_no == _NUMBERS.c.person_no
        ),
        select(literal_column("'id'"), _IDS.c.n, *PERSON_COLUMNS).join(Person, Person.id == _IDS.c.id),
    ),
)

# The statements each connection has prepared (PREPARE lasts as long as the connection, whatever
# becomes of the transaction it was issued in).
_prepared: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def execute_prepared(cursor: Any, statement: Statement, params: dict[str, Any]) -> None:
    """Run a statement on a psycopg2 cursor, preparing it first on a connection that has not (behind
    a transaction pooler, POPEX_SHARING_TRANSACTION_POOLING, as it is: the next statement may run on
    another server connection, which has not prepared it)."""
    if sharing_settings().transaction_pooling:
        cursor.execute(statement.sql, params)
        return
    done = _prepared.setdefault(cursor.connection, set())
    if statement.name not in done:
        cursor.execute(statement.prepare_sql)
        done.add(statement.name)
    cursor.execute(statement.execute_sql, params)


class PersonReader:
    """Golden records by id, person number or document, on one psycopg2 connection."""

    def __init__(self, dbapi_connection: Any) -> None:
        self._conn = dbapi_connection

    @classmethod
    def of_session(cls, session: Session) -> "PersonReader":
        """A reader on the session's connection (inside its transaction)."""
        return cls(session.connection().connection.dbapi_connection)

    def _rows(self, statement: Statement, params: dict[str, Any]) -> list[Row]:
        with self._conn.cursor() as cur:
            execute_prepared(cur, statement, params)
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _one(self, statement: Statement, params: dict[str, Any]) -> Row | None:
        rows = self._rows(statement, params)
        return rows[0] if rows else None

    def by_id(self, person_id: int) -> Row | None:
        """The person with this internal id."""
        return self._one(BY_ID, {"id": person_id})

    def by_number(self, person_no: str) -> Row | None:
        """The person with this unified person number (retired numbers included)."""
        return self._one(BY_NUMBER, {"person_no": person_no})

    def by_document(self, id_type: str, id_no: str) -> Row | None:
        """The person holding this document (as the registry stores its number)."""
        return self._one(BY_DOCUMENT, {"id_type": id_type, "id_no": id_no})

    def by_documents(self, id_types: Sequence[str], id_nos: Sequence[str]) -> list[Row]:
        """The persons holding these documents, each row with `n`, the 1-based position asked."""
        return self._rows(BY_DOCUMENTS, {"id_types": list(id_types), "id_nos": list(id_nos)})


class PersonReads(Protocol):
    """The single-person routes' reads, awaited on the event loop."""

    async def by_id(self, person_id: int) -> Row | None:
        """The person with this internal id."""

    async def by_number(self, person_no: str) -> Row | None:
        """The person with this unified person number."""

    async def by_document(self, id_type: str, id_no: str) -> Row | None:
        """The person holding this document."""


class InlineReads:
    """`PersonReads` by a `PersonReader`, each read run at once (tests: in the test's transaction)."""

    def __init__(self, reader: PersonReader) -> None:
        self._reader = reader

    async def by_id(self, person_id: int) -> Row | None:
        """The person with this internal id."""
        return self._reader.by_id(person_id)

    async def by_number(self, person_no: str) -> Row | None:
        """The person with this unified person number."""
        return self._reader.by_number(person_no)

    async def by_document(self, id_type: str, id_no: str) -> Row | None:
        """The person holding this document."""
        return self._reader.by_document(id_type, id_no)


# One read: what is looked up, and by which key (id, person number, or document type and number).
Key = tuple[str, Any]


class GroupedReads(GroupedStatement[Key, "Row | None"]):
    """The server's single-person reads: those of one loop pass in one statement (`BY_KEYS`).

    Measured against one prepared read per request inline on the loop: see BENCHMARKS.md.
    """

    statement = BY_KEYS
    application_name = "popex-reads"
    # The statement's generic plan (a nested loop of index scans, whatever the arrays hold): planned
    # for each group's arrays, as PostgreSQL chooses by default here, it cost 0.73 ms of PostgreSQL CPU
    # for one key against 0.15 ms (0.10 ms for the single-key statement).
    settings = (("plan_cache_mode", "force_generic_plan"),)

    async def _read(self, key: Key) -> Row | None:
        try:
            return await self.submit(key)
        except Exception as exc:
            raise SharingError(ErrorCode.DATABASE_UNAVAILABLE) from exc

    async def by_id(self, person_id: int) -> Row | None:
        """The person with this internal id."""
        return await self._read(("id", person_id))

    async def by_number(self, person_no: str) -> Row | None:
        """The person with this unified person number (retired numbers included)."""
        return await self._read(("number", person_no))

    async def by_document(self, id_type: str, id_no: str) -> Row | None:
        """The person holding this document (as the registry stores its number)."""
        return await self._read(("document", (id_type, id_no)))

    def parameters(self, items: list[Key]) -> dict[str, Any]:
        """Each kind's keys as arrays, in the order queued (a kind not asked: empty arrays)."""
        documents = [key for kind, key in items if kind == "document"]
        return {
            "id_types": [t for t, _ in documents],
            "id_nos": [n for _, n in documents],
            "person_nos": [key for kind, key in items if kind == "number"],
            "ids": [key for kind, key in items if kind == "id"],
        }

    def results(self, items: list[Key], cursor: Any) -> list[Row | None]:
        """Each key's row: the statement answers (kind, position within the kind) for those found."""
        names = [d.name for d in cursor.description]
        found: dict[tuple[str, int], Row] = {}
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            found[(row.pop("kind"), row.pop("n"))] = row
        seen: dict[str, int] = {}
        answers: list[Row | None] = []
        for kind, _ in items:
            seen[kind] = seen.get(kind, 0) + 1
            answers.append(found.get((kind, seen[kind])))
        return answers
