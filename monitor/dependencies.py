"""FastAPI dependencies of the monitor."""

from datetime import datetime
from typing import Annotated

from fastapi import Query


def as_of(
    now: Annotated[datetime | None, Query(description="查看某一时刻的状态（本地时间），默认当前时间")] = None,
) -> datetime:
    """The moment the page describes: the query's `now`, else the wall clock (the only place it is read)."""
    return now.replace(tzinfo=None, second=0, microsecond=0) if now else datetime.now().replace(microsecond=0)
