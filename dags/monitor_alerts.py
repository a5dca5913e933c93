"""Monitoring alerts: evaluate the rules as of the run's time, then deliver them."""

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from base.settings import schedule_settings

TZ = pendulum.timezone(schedule_settings().time_zone)  # the city's calendar (POPEX_TIME_ZONE), as base.clock
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),  # the next run is 15 minutes away
    "execution_timeout": timedelta(minutes=10),
}

DOC = """
### 监控告警 · monitor_alerts

Every 15 minutes (in the city's zone, POPEX_TIME_ZONE): the monitor's alert rules evaluated **as of the run's time** (its
logical date, or when it was triggered; so a re-run of a run gives the same answer), then the alerts'
new states delivered.

1. **evaluate** – `monitor.service.evaluate_alerts`: feeds missing at their deadline, rejection rate
   above the threshold, quarantined batches, aged review items, API error rate; one open alert per
   condition in `monitor_alert`, resolved when the condition clears.
2. **notify** – `monitor.service.notify_alerts`: every raised or resolved state not yet delivered is
   logged and POSTed as JSON to `POPEX_MONITOR_WEBHOOK_URL`; a failed POST is retried next run.
"""


@dag(
    dag_id="monitor_alerts",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone=TZ),
    start_date=pendulum.datetime(2020, 1, 1, tz=TZ),
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_runs=1,
    doc_md=DOC,
    tags=["monitor", "popex"],
)
def monitor_alerts() -> None:
    """Monitoring alerts DAG."""

    @task
    def evaluate() -> dict[str, list[str]]:
        from zoneinfo import ZoneInfo

        from monitor.config import monitor_settings
        from monitor.service import evaluate_alerts

        context = get_current_context()
        when = context.get("logical_date") or context["dag_run"].run_after
        settings = monitor_settings()
        now = when.astimezone(ZoneInfo(settings.timezone)).replace(tzinfo=None)
        return evaluate_alerts(now=now, settings=settings)

    @task
    def notify(evaluated: dict[str, list[str]]) -> int:
        from monitor.config import monitor_settings
        from monitor.service import notify_alerts

        return notify_alerts(settings=monitor_settings())

    notify(evaluate())  # type: ignore[arg-type]


monitor_alerts()
