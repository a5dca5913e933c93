"""FastAPI dependencies of the monitor."""

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Query

from base import clock
from monitor.config import monitor_settings


def as_of(
    now: Annotated[datetime | None, Query(description="查看某一时刻的状态（本地时间），默认当前时间")] = None,
) -> datetime:
    """The moment the page describes: the query's `now`, else the wall clock in the monitor's zone (the
    only place it is read; not the host's zone, which a server kept in UTC has)."""
    if now is not None:
        return now.replace(tzinfo=None, second=0, microsecond=0)
    zone = ZoneInfo(monitor_settings().timezone)
    return clock.now().astimezone(zone).replace(tzinfo=None, microsecond=0)
