"""Department exchange: one run per as-of day over the landing folder."""

from datetime import datetime

from airflow.sdk import dag, task

DOC = """
### 部门数据交换 · exchange_daily

One run per as-of day (the data interval's start). Each task calls one function of `exchange.flows`
and works on batch ids, so a retried task redoes only what its batches still need:

1. **detect** – archive (SHA-256) and register the landing folder's files for the day (and late
   ones for earlier days), moving each to `_received/<as-of>/` once registered (or `_refused/`
   when the intake refuses it); add every unfinished batch (pushed through the API, or left by a
   run that failed part-way). A file already received is recognised by its hash and not applied
   twice; a retried run adds no delivery.
2. **parse** – read (encoding detected), validate every row, COPY into `source_record`.
3. **gate** – the feed's Great Expectations suite; a failure quarantines the batch.
4. **resolve** – link every accepted record to one person (ID, then scored candidates, then new).
5. **merge** – golden records, provenance and versions.
6. **publish** – change events for the sharing service.
7. **statistics** – the decision platform's aggregates, refreshed incrementally per merged batch.
8. **receipts** – 回执 CSV per batch into the outbox.
"""


@dag(
    dag_id="exchange_daily",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["exchange", "popex"],
    params={"landing": None, "outbox": None},
)
def exchange_daily() -> None:
    """Department exchange DAG."""

    @task
    def detect(params: dict | None = None, data_interval_start: datetime | None = None) -> list[int]:
        from pathlib import Path

        from base.db import session_factory
        from base.settings import storage_settings
        from exchange.flows import receive_landing

        assert data_interval_start is not None
        landing = Path((params or {}).get("landing") or storage_settings().landing_dir)
        return receive_landing(session_factory(), landing, data_interval_start.date())

    @task
    def parse(batch_ids: list[int]) -> list[int]:
        from base.db import session_factory
        from exchange.flows import run_step_all

        run_step_all(session_factory(), "parse", batch_ids)
        return batch_ids

    @task
    def gate(batch_ids: list[int]) -> list[int]:
        from base.db import session_factory
        from exchange.flows import run_step_all

        run_step_all(session_factory(), "gate", batch_ids)
        return batch_ids

    @task
    def resolve(batch_ids: list[int]) -> list[int]:
        from base.db import session_factory
        from exchange.flows import run_step_all

        run_step_all(session_factory(), "resolve", batch_ids)
        return batch_ids

    @task
    def merge(batch_ids: list[int]) -> list[int]:
        from base.db import session_factory
        from exchange.flows import run_step_all

        run_step_all(session_factory(), "merge", batch_ids)
        return batch_ids

    @task
    def publish(batch_ids: list[int]) -> list[int]:
        from base.db import session_factory
        from exchange.flows import run_step_all

        run_step_all(session_factory(), "publish", batch_ids)
        return batch_ids

    @task
    def statistics(batch_ids: list[int]) -> int:
        from base.db import session_factory
        from decision.service import refresh_batches

        return len(refresh_batches(factory=session_factory(), batch_ids=batch_ids))

    @task
    def receipts(batch_ids: list[int], params: dict | None = None) -> list[str]:
        from pathlib import Path

        from base.db import session_factory
        from base.settings import storage_settings
        from exchange.flows import write_receipts

        outbox = Path((params or {}).get("outbox") or storage_settings().outbox_dir)
        return [str(p) for p in write_receipts(session_factory(), batch_ids, outbox)]

    merged = merge(resolve(gate(parse(detect()))))  # type: ignore[arg-type]
    statistics(merged)  # type: ignore[arg-type]
    receipts(publish(merged))  # type: ignore[arg-type]


exchange_daily()
