"""FastAPI dependencies: the database session, the audit writer, the client, and the checked access.

Tests override `get_session` (with the test's session) and `get_audit` (with `SessionAudit` on it).
"""

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Header, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from registry.db import database_url
from sharing_api.access import Access
from sharing_api.audit import AccessAudit, GroupCommitAudit
from sharing_api.clients import ClientCache, ClientContext
from sharing_api.config import sharing_settings
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.policy import Operation
from sharing_api.ratelimit import RateLimiter

MAX_HEADER = 128

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="接入单位的 API 密钥（由平台管理员发放，只显示一次）"
)
rate_limiter = RateLimiter()
client_cache = ClientCache()


@lru_cache
def api_engine() -> Engine:
    """The engine of this server process's API requests: a pool as large as its concurrency.

    Requests only read, so they run in autocommit: no BEGIN, COMMIT or ROLLBACK round trips. No
    pre-ping either (a round trip per request): after a database restart the first request on each
    stale connection fails and the pool replaces the connections.
    """
    return create_engine(
        database_url(), pool_size=sharing_settings().pool_size, max_overflow=0, isolation_level="AUTOCOMMIT"
    )


async def get_session() -> AsyncIterator[Session]:
    """A session on the one database for this request (reads only: audit goes through get_audit).

    Async although the session is not: opening it does no I/O, and neither does closing it, since an
    autocommit connection has no transaction to roll back. So no thread hop is spent on either.
    """
    with Session(api_engine()) as session:
        yield session


@lru_cache
def _group_commit_audit() -> GroupCommitAudit:
    return GroupCommitAudit(database_url())


async def get_audit() -> AccessAudit:
    """The process's audit writer."""
    return _group_commit_audit()


def _load_client(session: Session, key: str) -> ClientContext | SharingError:
    answer = client_cache.load(session=session, key=key)
    # Give the connection back before leaving the thread: a request that held a pooled connection
    # while waiting for a thread could deadlock against threads waiting for a connection.
    session.commit()
    return answer


async def current_client(*, session: Session, api_key: str | None) -> ClientContext:
    """The client whose key this is, within its rate limit (the database only on a cache miss)."""
    if not api_key:
        raise SharingError(ErrorCode.CREDENTIAL_MISSING)
    client = client_cache.lookup(api_key, ttl=sharing_settings().client_cache_seconds)
    if client is None:
        client = await run_in_threadpool(_load_client, session, api_key)
    if isinstance(client, SharingError):
        raise SharingError(client.code)
    wait = rate_limiter.take(client.code, client.policy.rate_limit)
    if wait:
        error = SharingError(ErrorCode.RATE_LIMITED)
        error.headers["Retry-After"] = str(math.ceil(wait))
        raise error
    return client


def _header_text(value: str | None) -> str:
    """A header value as text: percent-encoded or raw UTF-8 (read by the server as Latin-1) both work."""
    if not value:
        return ""
    with contextlib.suppress(UnicodeError):
        value = value.encode("latin-1").decode("utf-8")
    return unquote(value).strip()


def access_for(operation: Operation) -> Callable[..., Coroutine[Any, Any, Access]]:
    """The dependency that admits a request for one operation: client, end user, purpose, policy.

    Async, so that admitting a request costs no thread hop: the checks are in memory, and the two
    that need the database (a client not cached, the audit of a refusal) go to the thread pool.
    """

    async def admit(
        api_key: Annotated[str | None, Security(api_key_header)],
        session: Annotated[Session, Depends(get_session)],
        audit: Annotated[AccessAudit, Depends(get_audit)],
        end_user: Annotated[
            str | None, Header(alias="X-End-User", description="实际操作人员的账号（可用百分号编码中文）")
        ] = None,
        purpose: Annotated[
            str | None, Header(alias="X-Purpose", description="查询用途代码，须在本单位授权用途内")
        ] = None,
    ) -> Access:
        client = await current_client(session=session, api_key=api_key)
        user, why = _header_text(end_user), _header_text(purpose)
        if not user or len(user) > MAX_HEADER or not user.isprintable():
            raise SharingError(ErrorCode.END_USER_REQUIRED)
        if not why:
            raise SharingError(ErrorCode.PURPOSE_REQUIRED)
        access = Access(client, user, why[:MAX_HEADER], operation, audit)
        if why not in client.policy.purposes:
            raise await run_in_threadpool(
                access.refuse, ErrorCode.PURPOSE_NOT_ALLOWED, f"用途“{why[:MAX_HEADER]}”未获授权"
            )
        if operation not in client.policy.operations:
            raise await run_in_threadpool(access.refuse, ErrorCode.OPERATION_NOT_GRANTED)
        return access

    return admit
