"""FastAPI dependencies of the push API: the session factory and the pushing department."""

import hashlib
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy import select

from base.db import SessionFactory, session_factory
from exchange.exceptions import PushError
from exchange.models import PushCredential


def get_factory() -> SessionFactory:
    """Sessions on the configured database (tests override this)."""
    return session_factory()


def current_department(
    factory: Annotated[SessionFactory, Depends(get_factory)],
    authorization: Annotated[str | None, Header(description="Bearer <部门推送密钥>")] = None,
) -> str:
    """The department whose valid, unrevoked push key the request carries."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise PushError(401, "AUTH_REQUIRED", "缺少部门推送密钥（Authorization: Bearer <密钥>）")
    digest = hashlib.sha256(key.strip().encode()).hexdigest()
    with factory() as session:
        department = session.scalar(
            select(PushCredential.department_code).where(
                PushCredential.key_hash == digest, PushCredential.revoked_at.is_(None)
            )
        )
    if department is None:
        raise PushError(401, "AUTH_INVALID", "推送密钥无效或已吊销")
    return department
