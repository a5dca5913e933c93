"""Business dates follow the city's calendar (POPEX_TIME_ZONE), not the host's: at 07:30 in the city a
server kept in UTC is still on the day before."""

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from base import clock
from base.settings import schedule_settings
from collection.router import work_date
from registry import review
from registry.models import ChangeEvent, Person, PersonVersion
from tests.registry.test_review import ZHANG, conflict  # noqa: F401  (the review fixture)

# 23:30 UTC on 30 June: 07:30 on 1 July in Shanghai (and neither is the day the tests run, so that the
# host's own date.today() or the database's current_date would be caught too).
MOMENT = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
CITY_DAY = date(2026, 7, 1)


@pytest.fixture
def host_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The host's zone is UTC and the clock reads MOMENT; the city's zone comes from the settings."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(clock, "_utcnow", lambda: MOMENT)
    schedule_settings.cache_clear()
    yield monkeypatch
    schedule_settings.cache_clear()
    monkeypatch.undo()
    time.tzset()


def test_today_is_the_citys_date_not_the_hosts(host_in_utc) -> None:
    assert clock.today() == CITY_DAY
    assert clock.now().utcoffset() == timedelta(hours=8)
    host_in_utc.setenv("POPEX_TIME_ZONE", "UTC")
    schedule_settings.cache_clear()
    assert clock.today() == date(2026, 6, 30)


def test_an_officers_working_day_is_the_citys(host_in_utc) -> None:
    assert work_date() == CITY_DAY


def test_a_clerks_decision_is_dated_by_the_citys_calendar(host_in_utc, session, conflict) -> None:  # noqa: F811
    new = review.reject(session=session, item_id=conflict.id, actor="clerk2")
    holder = session.scalar(select(Person).where(Person.id_no == ZHANG))
    assert holder is not None
    review.merge(session=session, survivor_no=holder.person_no, retired_no=new.person_no, actor="clerk3")

    dated = session.execute(
        select(PersonVersion.person_id, PersonVersion.valid_from)
        .where(PersonVersion.person_id.in_([holder.id, new.id]), PersonVersion.batch_id.is_(None))
        .order_by(PersonVersion.id)
    ).all()
    assert len(dated) >= 3  # the new person, the merged-away one retired, the survivor
    assert {valid_from for _, valid_from in dated} == {CITY_DAY}


def test_a_merge_across_midnight_dates_its_events_as_its_versions(host_in_utc, session, conflict) -> None:  # noqa: F811
    """The city's midnight passes between the merge's versions and their events: one date for both."""
    new = review.reject(session=session, item_id=conflict.id, actor="clerk2")
    holder = session.scalar(select(Person).where(Person.id_no == ZHANG))
    assert holder is not None
    reads = iter([MOMENT])  # the first read of the clock before midnight, every later one after it
    host_in_utc.setattr(clock, "_utcnow", lambda: next(reads, MOMENT + timedelta(days=1)))
    review.merge(session=session, survivor_no=holder.person_no, retired_no=new.person_no, actor="clerk3")

    events = session.execute(
        select(ChangeEvent.event_type, ChangeEvent.event_date, PersonVersion.valid_from)
        .join(PersonVersion, PersonVersion.id == ChangeEvent.version_id)
        .where(ChangeEvent.person_id.in_([holder.id, new.id]), ChangeEvent.batch_id.is_(None))
    ).all()
    assert "merged" in {event_type for event_type, _, _ in events}
    assert {(event_date, valid_from) for _, event_date, valid_from in events} == {(CITY_DAY, CITY_DAY)}


def test_the_monitor_describes_the_city_now_by_default(host_in_utc) -> None:
    from monitor.config import monitor_settings
    from monitor.dependencies import as_of

    monitor_settings.cache_clear()
    try:
        assert as_of(None) == datetime(2026, 7, 1, 7, 30)  # naive, in the city's zone like deadlines
        assert as_of(datetime(2026, 7, 1, 9, 5, 42)) == datetime(2026, 7, 1, 9, 5)
    finally:
        monitor_settings.cache_clear()


def test_a_zone_the_database_does_not_know_is_refused_when_the_settings_are_read(monkeypatch) -> None:
    from pydantic import ValidationError

    from base.settings import ScheduleSettings

    monkeypatch.setenv("POPEX_TIME_ZONE", "Asia/Shangai")
    with pytest.raises(ValidationError, match="不是时区数据库中的时区名"):
        ScheduleSettings()
    monkeypatch.setenv("POPEX_TIME_ZONE", "PRC")
    assert ScheduleSettings().time_zone == "PRC"
