"""Community collection: one run per day, after the day's cut-off, for the day before."""

from datetime import date, timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from base.settings import schedule_settings

TZ = pendulum.timezone(schedule_settings().time_zone)  # the city's calendar (POPEX_TIME_ZONE), as base.clock
IDENTITY_POOL = "popex_identity"  # shared with exchange_daily: one run at a time resolves, merges, publishes
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
}

DOC = """
### 社区信息采集 · collection_daily

一人一单，一日一清. Every day at **00:30 in the city's zone** (POPEX_TIME_ZONE, Asia/Shanghai), after the officers' cut-off (23:59:59), for the
**as-of day**: the `as_of` param, by default the day before the run's date (local time). A day before
`POPEX_GO_LIVE_DATE` fails at once.

1. **forward** – every accepted row not yet forwarded (whatever its work date, up to the as-of day:
   rows entered late are not left behind), written as one `sq_cj_<as-of>[_<n>].csv` and received by
   the exchange (channel `collection`, in the transaction that marks the rows forwarded).
2. **process** – the batch through `exchange.flows.process_batch`: the same parse → gate → resolve →
   merge → publish path as every department's file, in the one-slot pool `popex_identity`. The
   publish step writes the `change_event` rows that subscribed departments read. A rerun forwards
   only rows not yet forwarded; the same bytes again are recognised by the exchange.
3. **clearance** – per community: submitted, accepted, rejected, corrected, still open at the cut-off;
   cleared when nothing is open (upserted into `collection_clearance`). A rejected row is corrected by
   更正此行 or by the same person accepted in a later upload, form or file of the day
   (docs/OPERATIONS.md, 一日一清).
"""


def _as_of() -> date:
    """The run's as-of day (base.asof.task_as_of); a day before go-live fails without retries."""
    from base.asof import task_as_of

    return task_as_of()


@dag(
    dag_id="collection_daily",
    schedule=CronTriggerTimetable("30 0 * * *", timezone=TZ),
    start_date=pendulum.datetime(2020, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    tags=["collection", "popex"],
    params={"as_of": Param(None, type=["null", "string"], format="date", description="业务日期，默认前一天")},
)
def collection_daily() -> None:
    """Community collection DAG."""

    @task
    def forward() -> int | None:
        from base.db import session_factory
        from collection.flows import forward_day

        return forward_day(session_factory(), _as_of())

    @task(pool=IDENTITY_POOL)
    def process(batch_id: int | None) -> str | None:
        from base.db import session_factory
        from exchange.flows import process_batch

        return process_batch(session_factory(), batch_id) if batch_id is not None else None

    @task
    def clearance(state: str | None) -> dict[str, bool]:
        from base.db import session_factory
        from collection.flows import clear_day

        return clear_day(session_factory(), _as_of())

    clearance(process(forward()))  # type: ignore[arg-type]


collection_daily()
