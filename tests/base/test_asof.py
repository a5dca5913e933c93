"""The as-of day of a daily run: the requested day, else the day before the run's local date; go-live."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.asof import BeforeGoLive, run_as_of
from base.settings import schedule_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def no_go_live(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("POPEX_GO_LIVE_DATE", raising=False)
    schedule_settings.cache_clear()
    yield
    schedule_settings.cache_clear()


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)))
def test_the_day_before_the_runs_local_date(when: datetime) -> None:
    assert run_as_of(None, run_date=when, tz=SHANGHAI) == when.astimezone(SHANGHAI).date() - timedelta(days=1)


def test_local_midnight_not_utc_midnight() -> None:
    # 10:00 in Shanghai on 11-02 is 02:00 UTC; 23:30 UTC on 11-01 is already 07:30 on 11-02 there.
    assert run_as_of(None, run_date=datetime(2026, 11, 2, 2, 0, tzinfo=UTC), tz=SHANGHAI) == date(2026, 11, 1)
    assert run_as_of(None, run_date=datetime(2026, 11, 1, 23, 30, tzinfo=UTC), tz=SHANGHAI) == date(
        2026, 11, 1
    )


def test_a_requested_day_wins_and_no_date_means_yesterday() -> None:
    when = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    assert run_as_of("2026-10-01", run_date=when, tz=SHANGHAI) == date(2026, 10, 1)
    assert run_as_of(date(2026, 10, 1), run_date=None, tz=SHANGHAI) == date(2026, 10, 1)
    assert run_as_of(None, run_date=None, tz=SHANGHAI) == datetime.now(SHANGHAI).date() - timedelta(days=1)


def test_a_day_before_go_live_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POPEX_GO_LIVE_DATE", "2026-10-01")
    schedule_settings.cache_clear()
    assert run_as_of("2026-10-01", run_date=None, tz=SHANGHAI) == date(2026, 10, 1)
    with pytest.raises(BeforeGoLive, match="2026-09-30 早于上线日期 2026-10-01"):
        run_as_of("2026-09-30", run_date=None, tz=SHANGHAI)
