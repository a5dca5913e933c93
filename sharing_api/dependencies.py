"""FastAPI dependencies: the database session, the backends (reader, audit), the client, the access.

Tests override `get_session` (with the test's session) and set `app.state.sharing_backends` (to
`Backends.of_session`: reads, client look-ups and audit records in the test's transaction).

FastAPI resolves every dependency again on each request (with six, that took a third of a lookup's
Python time), so the single-person lookups take none: they call `admit` and `requested_fields`
themselves, and declare for OpenAPI what those read (`KEY_DOCS`, `LOOKUP_DOCS`). The other routes take
`access_for(...)`, the same admission as a dependency.
"""

import contextlib
import math
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from base.db import database_url
from sharing_api.access import Access
from sharing_api.audit import AccessAudit, GroupCommitAudit
from sharing_api.clients import ClientCache, ClientContext
from sharing_api.config import sharing_settings
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.grouped import role_option
from sharing_api.policy import Operation, PersonField, RateLimit
from sharing_api.ratelimit import Limiter, RateLimiter, RedisRateLimiter
from sharing_api.reads import GroupedReads, InlineReads, PersonReader, PersonReads

MAX_HEADER = 128
# Where admit leaves the request's Access for the route class (the scope is the request's own;
# request.state may share a dict with the app's lifespan state).
ACCESS_SCOPE_KEY = "popex.sharing.access"

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="接入单位的 API 密钥（由平台管理员发放，只显示一次）"
)
client_cache = ClientCache()


@lru_cache
def rate_limiter() -> Limiter:
    """This process's view of the clients' buckets: in Redis when POPEX_SHARING_RATE_REDIS_URL is set
    (every host), else in the host's file."""
    settings = sharing_settings()
    if settings.rate_redis_url:
        return RedisRateLimiter(settings.rate_redis_url)
    return RateLimiter(settings.rate_file)


MISSES = "\x1flookup-misses"  # a client's second bucket: its lookups by document that found no one


@lru_cache
def lookup_misses() -> RateLimit:
    """POPEX_SHARING_LOOKUP_MISSES_PER_DAY as a bucket: that many at once, refilled over a day."""
    per_day = sharing_settings().lookup_misses_per_day
    return RateLimit(per_second=per_day / 86_400, burst=per_day)


def _engine(url: str) -> Engine:
    settings = sharing_settings()
    # Behind a transaction pooler no startup options: the login role's own defaults apply there
    # (README: ALTER ROLE … SET role), since a connection-level setting would not follow the requests.
    options = "" if settings.transaction_pooling else role_option(settings.database_role)
    return create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": options},
        hide_parameters=True,  # no document numbers in error messages (registry/db.py)
    )


@lru_cache
def api_engine() -> Engine:
    """The engine of this server process's API requests on the primary: a pool as large as its concurrency.

    Requests run in autocommit: no BEGIN, COMMIT or ROLLBACK round trips. No pre-ping either (a round
    trip per request): after a database restart the first request on each stale connection fails and
    the pool replaces the connections.
    """
    return _engine(database_url())


@lru_cache
def read_engine() -> Engine:
    """The engine of the routes that only read the population: on the replica when one is set
    (POPEX_SHARING_REPLICA_URL), else the primary's `api_engine`."""
    replica = sharing_settings().replica_url
    return _engine(replica) if replica else api_engine()


async def get_session() -> AsyncIterator[Session]:
    """A session on the one database for this request (reads only: audit goes through the backends).

    Async although the session is not: opening it does no I/O, and neither does closing it, since an
    autocommit connection has no transaction to roll back. So no thread hop is spent on either.
    """
    with Session(api_engine()) as session:
        yield session


async def get_read_session(primary: Annotated[Session, Depends(get_session)]) -> AsyncIterator[Session]:
    """A session for a request that only reads the population: on the replica when one is set, else
    `get_session`'s (whose override in tests then holds here too; an unused session costs no I/O)."""
    if not sharing_settings().replica_url:
        yield primary
        return
    with Session(read_engine()) as session:
        yield session


@dataclass(frozen=True)
class Backends:
    """Where a request reads and audits: a session for a client look-up, the loop's reads, the audit writer."""

    session: Callable[[], contextlib.AbstractContextManager[Session]]
    reads: PersonReads
    audit: AccessAudit

    @classmethod
    def of_session(cls, session: Session) -> "Backends":
        """Everything in one session's transaction (tests)."""
        from sharing_api.audit import SessionAudit

        return cls(
            session=lambda: contextlib.nullcontext(session),
            reads=InlineReads(PersonReader.of_session(session)),
            audit=SessionAudit(session),
        )


def _api_session() -> Session:
    return Session(api_engine())


@lru_cache
def _server_backends() -> Backends:
    settings = sharing_settings()
    state = not settings.transaction_pooling
    return Backends(
        session=_api_session,
        reads=GroupedReads(
            settings.replica_url or database_url(),
            statement_timeout=settings.loop_statement_timeout,
            role=settings.database_role,
            session_state=state,
        ),
        audit=GroupCommitAudit(database_url(), role=settings.database_role, session_state=state),
    )


def backends_of(request: Request) -> Backends:
    """The backends the app was given (`app.state.sharing_backends`, tests), else this process's own."""
    given: Backends | None = getattr(request.app.state, "sharing_backends", None)
    return given if given is not None else _server_backends()


def _load_client(backends: Backends, key: str) -> ClientContext | SharingError:
    # The session is closed before the thread is left: a request that held a pooled connection while
    # waiting for a thread could deadlock against threads waiting for a connection.
    with backends.session() as session:
        answer = client_cache.load(session=session, key=key)
        session.commit()
    return answer


async def current_client(*, backends: Backends, api_key: str | None) -> ClientContext:
    """The client whose key this is, within its rate limit (the database only on a cache miss)."""
    if not api_key:
        raise SharingError(ErrorCode.CREDENTIAL_MISSING)
    client = client_cache.lookup(api_key, ttl=sharing_settings().client_cache_seconds)
    if client is None:
        client = await run_in_threadpool(_load_client, backends, api_key)
    if isinstance(client, SharingError):
        raise SharingError(client.code)
    wait = rate_limiter().take(client.code, client.policy.rate_limit)
    if wait:
        error = SharingError(ErrorCode.RATE_LIMITED)
        error.headers["Retry-After"] = str(math.ceil(wait))
        raise error
    return client


def _header_text(value: str | None) -> str:
    """A header value as text: percent-encoded or raw UTF-8 (read by the server as Latin-1) both work;
    NFKC-normalised (full-width ｃｌｅｒｋ is clerk). Bytes that are not UTF-8 either way become U+FFFD."""
    if not value:
        return ""
    try:
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        value = "\ufffd"
    except UnicodeEncodeError:  # not from the wire (a test client's str): taken as it is
        pass
    return unicodedata.normalize("NFKC", unquote(value, errors="replace")).strip()


# An account as audited: letters (any script), digits and . _ - @ · (after NFKC), one letter or digit
# at least.
END_USER = re.compile(r"(?=.*[^\W_])[\w.@·-]+")


def end_user(value: str | None) -> str:
    """The X-End-User header as the audit records it; END_USER_REQUIRED or END_USER_INVALID."""
    user = _header_text(value)
    if not user:
        raise SharingError(ErrorCode.END_USER_REQUIRED)
    if len(user) > MAX_HEADER or not END_USER.fullmatch(user):
        raise SharingError(ErrorCode.END_USER_INVALID)
    return user


# The two headers every request must carry, read by `admit` from the request itself; declared here
# for the OpenAPI document (SharingRoute adds them to every route's `openapi_extra`).
AUDIT_HEADERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-End-User",
            "in": "header",
            "required": True,
            "description": "实际操作人员的账号（可用百分号编码中文）",
            "schema": {"type": "string", "maxLength": MAX_HEADER},
        },
        {
            "name": "X-Purpose",
            "in": "header",
            "required": True,
            "description": "查询用途代码，须在本单位授权用途内",
            "schema": {"type": "string"},
        },
    ]
}


async def admit(request: Request, operation: Operation) -> Access:
    """Admit a request for one operation: client, rate limit, end user, purpose, policy.

    The checks are in memory; the one that needs the database (a client not cached) goes to the
    thread pool. A refusal is recorded on the access, and committed by the route like any other
    audit record.
    """
    backends = backends_of(request)
    client = await current_client(backends=backends, api_key=request.headers.get("x-api-key"))
    user = end_user(request.headers.get("x-end-user"))
    why = _header_text(request.headers.get("x-purpose"))
    if not why:
        raise SharingError(ErrorCode.PURPOSE_REQUIRED)
    access = Access(
        client,
        user,
        why[:MAX_HEADER],
        operation,
        backends.audit,
        backends.reads,
        take_tokens=lambda n: rate_limiter().take(client.code, client.policy.rate_limit, cost=n),
        lookup_misses_left=lambda: rate_limiter().left(client.code + MISSES, lookup_misses()),
        take_lookup_miss=lambda: rate_limiter().take(client.code + MISSES, lookup_misses()),
    )
    request.scope[ACCESS_SCOPE_KEY] = access  # the route commits its audit records
    if why not in client.policy.purposes:
        raise access.refuse(ErrorCode.PURPOSE_NOT_ALLOWED, f"用途“{why[:MAX_HEADER]}”未获授权")
    if operation not in client.policy.operations:
        raise access.refuse(ErrorCode.OPERATION_NOT_GRANTED)
    return access


def access_for(operation: Operation) -> Callable[..., Coroutine[Any, Any, Access]]:
    """`admit` as a dependency (the routes that read more than one person)."""

    async def admitted(request: Request, _: Annotated[str | None, Security(api_key_header)]) -> Access:
        return await admit(request, operation)

    return admitted


_FIELD_VALUES = {f.value: f for f in PersonField}
FIELDS_DESCRIPTION = "要返回的字段（可重复）；缺省为本单位获授权的全部字段。未获授权的字段会被拒绝"


def requested_fields(request: Request) -> list[PersonField] | None:
    """The `fields` query parameter (repeatable) as person fields; None when absent."""
    if not request.scope.get("query_string"):  # the usual lookup: no query string to parse
        return None
    values = request.query_params.getlist("fields")
    if not values:
        return None
    bad = [
        {"loc": ["query", "fields", i], "msg": "不是可返回的字段", "type": "enum"}
        for i, v in enumerate(values)
        if v not in _FIELD_VALUES
    ]
    if bad:
        raise SharingError(ErrorCode.VALIDATION_ERROR, detail=bad)
    return [_FIELD_VALUES[v] for v in values]


# What the single-person routes read from the request themselves, for the OpenAPI document: the key
# (the scheme access_for declares) and, for the lookups, `fields`.
KEY_DOCS: dict[str, Any] = {"security": [{"APIKeyHeader": []}]}
LOOKUP_DOCS: dict[str, Any] = {
    **KEY_DOCS,
    "parameters": [
        {
            "name": "fields",
            "in": "query",
            "required": False,
            "description": FIELDS_DESCRIPTION,
            "schema": {"type": "array", "items": {"type": "string", "enum": list(_FIELD_VALUES)}},
            "style": "form",
            "explode": True,
        }
    ],
}
