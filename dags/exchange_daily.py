"""Department exchange: one run per as-of day over the landing folder, after the departments' deadline."""

from datetime import date, timedelta

import pendulum
from airflow.sdk import (
    CronTriggerTimetable,
    Param,
    TriggerRule,
    XComArg,
    dag,
    get_current_context,
    task,
    task_group,
)

from base.settings import schedule_settings

TZ = pendulum.timezone(schedule_settings().time_zone)  # the city's calendar (POPEX_TIME_ZONE), as base.clock
IDENTITY_POOL = "popex_identity"  # one slot: two runs never resolve, merge or publish at the same time
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,  # 1, 2, 4 minutes: a database restart or a full disk has time to pass
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}

DOC = """
### 部门数据交换 · exchange_daily

Every day at **10:00 in the city's zone** (POPEX_TIME_ZONE, Asia/Shanghai), after the departments' 09:00 deadline (schemas/feeds/*.yaml), for
the **as-of day**: the `as_of` param, by default the day before the run's date (local time), so a
plain `airflow dags trigger exchange_daily` processes yesterday and
`airflow dags trigger exchange_daily -c '{"as_of": "2026-10-01"}'` that day. A day before
`POPEX_GO_LIVE_DATE` fails at once. Each task calls `exchange.flows` on batch ids, so a retried or
rerun task redoes only what its batches still need (docs/OPERATIONS.md):

1. **detect** – archive (SHA-256) and register the landing folder's files for the day (and late
   ones for earlier days), moving each to `_received/<as-of>/` (or `_refused/`); add every
   unfinished batch of the day or earlier (pushed through the API, or left by a failed run).
2. **batch.parse**, **batch.gate** – mapped, one instance per batch (the map index shows its id):
   read, validate and stage the rows, then the feed's Great Expectations suite (a failure
   quarantines the batch). A batch whose task fails is left where it stopped; the others go on.
3. **resolve**, **merge**, **publish** – the identity steps over the batches that passed, in
   delivery order, in the one-slot pool `popex_identity`, under the database's identity lock
   (`exchange.flows.run_identities`): each batch is resolved and merged while the one before is
   published; another run, ingest or clerk waiting for the lock goes between two batches, never
   inside one. Merge and publish only finish a batch a failure left between them.
4. **statistics**, **receipts** – the batch steps that finish each batch: the decision platform's
   aggregates take it in (published → counted; a batch counted before is not counted twice), then
   its 回执 go to the outbox (counted → completed). A run killed here is finished by the next one.
5. **all_batches_checked** – fails the run when any batch's parse or gate failed, so the day shows red
   until it is rerun.
"""


def _as_of() -> date:
    """The run's as-of day (base.asof.task_as_of); a day before go-live fails without retries."""
    from base.asof import task_as_of

    return task_as_of()


def _outbox() -> str:
    """Where the run writes receipts (a folder or a URI): its 'outbox' param, else POPEX_OUTBOX_DIR."""
    from base.settings import storage_settings

    return str(get_current_context()["params"].get("outbox") or storage_settings().outbox_dir)


def _ids(gated: int | list[int]) -> list[int]:
    """The gate's results as a list: a mapped task group with one instance hands on its one value
    instead of a list of one (apache/airflow#59008, still so in 3.3.2)."""
    return [gated] if isinstance(gated, int) else list(gated)


def _steps(step: str, batch_ids: list[int], **kwargs: object) -> list[int]:
    """One exchange step over the batches in order, each in its own transaction; stops at a failure."""
    from base.db import session_factory
    from exchange.flows import run_step

    factory = session_factory()
    for batch_id in batch_ids:
        if run_step(factory, step, batch_id, **kwargs) == "failed":
            raise RuntimeError(f"批次 {batch_id} 在步骤 {step} 失败，详见批次的错误信息")
    return list(batch_ids)


def _identity(batch_ids: list[int]) -> list[int]:
    """The batches' resolve → merge → publish under the identity lock, in order; stops at a failure."""
    from base.db import session_factory
    from exchange.flows import run_identities

    failed = run_identities(session_factory(), batch_ids)
    if failed:
        raise RuntimeError(f"批次 {'、'.join(map(str, failed))} 在身份识别步骤失败，详见批次的错误信息")
    return list(batch_ids)


@dag(
    dag_id="exchange_daily",
    schedule=CronTriggerTimetable("0 10 * * *", timezone=TZ),
    start_date=pendulum.datetime(2020, 1, 1, tz=TZ),  # early enough for any backfill; go-live is a setting
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    tags=["exchange", "popex"],
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="业务日期，默认前一天"),
        "landing": Param(
            None,
            type=["null", "string"],
            description="落地目录或 URI（如 s3://桶/landing），默认 POPEX_LANDING_DIR",
        ),
        "outbox": Param(None, type=["null", "string"], description="回执目录或 URI，默认 POPEX_OUTBOX_DIR"),
    },
)
def exchange_daily() -> None:
    """Department exchange DAG."""

    @task
    def detect() -> list[int]:
        from base.db import session_factory
        from base.settings import storage_settings
        from exchange.flows import receive_landing

        as_of = _as_of()
        landing = str(get_current_context()["params"].get("landing") or storage_settings().landing_dir)
        return receive_landing(session_factory(), landing, as_of, outbox=_outbox())

    @task(map_index_template="{{ batch_id }}")
    def parse(batch_id: int) -> int:
        get_current_context()["batch_id"] = batch_id  # type: ignore[typeddict-unknown-key]
        return _steps("parse", [batch_id], outbox=_outbox())[0]  # a rejected file's receipt

    @task(map_index_template="{{ batch_id }}")
    def gate(batch_id: int) -> int:
        get_current_context()["batch_id"] = batch_id  # type: ignore[typeddict-unknown-key]
        return _steps("gate", [batch_id], outbox=_outbox())[0]  # a quarantined batch's receipt

    @task_group  # type: ignore[type-var]  # typed for a DAGNode, though a group returns its XComArg
    def batch(batch_id: int) -> XComArg:
        return gate(parse(batch_id))  # type: ignore[arg-type]

    # Runs once every batch's gate is done, on the batches that passed (a failed one has no result).
    @task(pool=IDENTITY_POOL, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def resolve(gated: int | list[int]) -> list[int]:
        return _identity(_ids(gated))

    @task(pool=IDENTITY_POOL)
    def merge(batch_ids: list[int]) -> list[int]:
        return _steps("merge", batch_ids)

    @task(pool=IDENTITY_POOL)
    def publish(batch_ids: list[int]) -> list[int]:
        return _steps("publish", batch_ids)

    @task
    def statistics(batch_ids: list[int]) -> list[int]:
        return _steps("statistics", batch_ids)

    @task
    def receipts(batch_ids: list[int]) -> list[int]:
        return _steps("receipt", batch_ids, outbox=_outbox())

    @task
    def all_batches_checked(gated: int | list[int]) -> int:
        return len(_ids(gated))

    checked = batch.expand(batch_id=detect())
    published = publish(merge(resolve(checked)))  # type: ignore[arg-type]
    receipts(statistics(published))  # type: ignore[arg-type]
    all_batches_checked(checked)  # type: ignore[arg-type]


exchange_daily()
