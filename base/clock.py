"""The city's calendar: today is the date in POPEX_TIME_ZONE (Asia/Shanghai), whatever the host's zone.

A server or container kept in UTC would otherwise date an officer's work, a clerk's decision or a file
without a date in its name by UTC: before 08:00 in the city, the day before. Every business date the
platform takes from the clock comes from here, in Python and (passed as a parameter) in SQL.
"""

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from base.settings import schedule_settings


@lru_cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _utcnow() -> datetime:
    """The present moment (tests replace it)."""
    return datetime.now(UTC)


def now() -> datetime:
    """The present moment in the city's time zone."""
    return _utcnow().astimezone(_zone(schedule_settings().time_zone))


def today() -> date:
    """The city's date today."""
    return now().date()
