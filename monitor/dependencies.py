"""FastAPI dependencies of the monitor."""

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Query
from sqlalchemy.orm import Session

from registry.db import session_scope


def get_session() -> Iterator[Session]:
    """A database session for one request (tests point it at their own database)."""
    with session_scope() as session:
        yield session


def as_of(
    now: Annotated[datetime | None, Query(description="查看某一时刻的状态（本地时间），默认当前时间")] = None,
) -> datetime:
    """The moment the page describes: the query's `now`, else the wall clock (the only place it is read)."""
    return now.replace(tzinfo=None, second=0, microsecond=0) if now else datetime.now().replace(microsecond=0)
