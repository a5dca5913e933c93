"""The as-of day a daily run works on, and the go-live date before which no run has anything to do."""

from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from base.settings import schedule_settings


class BeforeGoLive(ValueError):
    """A run was asked for a day before the platform went live (POPEX_GO_LIVE_DATE)."""


def run_as_of(requested: str | date | None, *, run_date: datetime | None, tz: tzinfo) -> date:
    """The day a daily run processes: `requested` (the run's `as_of` param) when given, else the day
    before the run's date in local time (before today when the run has no date: a plain trigger).

    Raises BeforeGoLive for a day before the go-live date: the departments sent nothing then, and a
    run that found nothing would look like a day without changes.
    """
    if requested:
        day = requested if isinstance(requested, date) else date.fromisoformat(requested)
    else:
        day = (run_date or datetime.now(UTC)).astimezone(tz).date() - timedelta(days=1)
    go_live = schedule_settings().go_live_date
    if go_live is not None and day < go_live:
        raise BeforeGoLive(
            f"业务日期 {day} 早于上线日期 {go_live}（POPEX_GO_LIVE_DATE）：上线前没有应处理的数据，本次运行不执行。"
            "如需处理更早的日期，请先调整上线日期。"
        )
    return day


def task_as_of() -> date:
    """The as-of day of the running Airflow task: its DAG run's `as_of` param, else the day before the
    run's date in the city's zone (POPEX_TIME_ZONE). A day before go-live fails the task without
    retries (AirflowFailException: another try would find the same)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context()
    try:
        return run_as_of(
            context["params"].get("as_of"),
            run_date=context.get("logical_date") or context["dag_run"].run_after,
            tz=ZoneInfo(schedule_settings().time_zone),
        )
    except BeforeGoLive as exc:
        raise AirflowFailException(str(exc)) from exc
