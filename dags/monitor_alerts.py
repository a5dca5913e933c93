"""Monitoring alerts: evaluate the rules as of the run's data interval end, then deliver them."""

from datetime import datetime

from airflow.sdk import dag, task

DOC = """
### 监控告警 · monitor_alerts

Every 15 minutes: the monitor's alert rules evaluated **as of the end of the run's data interval**
(so a re-run of an interval gives the same answer), then the alerts' new states delivered.

1. **evaluate** – `monitor.service.evaluate_alerts`: feeds missing at their deadline, rejection rate
   above the threshold, quarantined batches, aged review items, API error rate; one open alert per
   condition in `monitor_alert`, resolved when the condition clears.
2. **notify** – `monitor.service.notify_alerts`: every raised or resolved state not yet delivered is
   logged and POSTed as JSON to `POPEX_MONITOR_WEBHOOK_URL`; a failed POST is retried next run.
"""


@dag(
    dag_id="monitor_alerts",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["monitor", "popex"],
)
def monitor_alerts() -> None:
    """Monitoring alerts DAG."""

    @task
    def evaluate(data_interval_end: datetime | None = None) -> dict[str, list[str]]:
        from zoneinfo import ZoneInfo

        from monitor.config import monitor_settings
        from monitor.service import evaluate_alerts

        assert data_interval_end is not None
        settings = monitor_settings()
        now = data_interval_end.astimezone(ZoneInfo(settings.timezone)).replace(tzinfo=None)
        return evaluate_alerts(now=now, settings=settings)

    @task
    def notify(evaluated: dict[str, list[str]]) -> int:
        from monitor.config import monitor_settings
        from monitor.service import notify_alerts

        return notify_alerts(settings=monitor_settings())

    notify(evaluate())  # type: ignore[arg-type]


monitor_alerts()
