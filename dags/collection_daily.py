"""Community collection: one run per working day, after the day's cut-off."""

from datetime import datetime

from airflow.sdk import dag, task

DOC = """
### 社区信息采集 · collection_daily

一人一单，一日一清. One run per working day (the data interval's start), after the cut-off:

1. **forward** – the day's accepted rows of every community, written as one `sq_cj_<YYYYMMDD>[_<n>].csv`
   and received by the exchange (channel `collection`, in the transaction that marks the rows forwarded).
2. **process** – the batch through `exchange.flows.process_batch`: the same parse → gate → resolve →
   merge → publish path as every department's file. The publish step writes the
   `change_event` rows that subscribed departments read, which is how the changes are forwarded.
   A re-run forwards only rows not yet forwarded; the same bytes again are recognised by the exchange.
3. **clearance** – per community: submitted, accepted, rejected, corrected, still open at the cut-off;
   cleared when nothing is open (upserted into `collection_clearance`).
"""


@dag(
    dag_id="collection_daily",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["collection", "popex"],
)
def collection_daily() -> None:
    """Community collection DAG."""

    @task
    def forward(data_interval_start: datetime | None = None) -> int | None:
        from base.db import session_factory
        from collection.flows import forward_day

        assert data_interval_start is not None
        return forward_day(session_factory(), data_interval_start.date())

    @task
    def process(batch_id: int | None) -> str | None:
        from base.db import session_factory
        from exchange.flows import process_batch

        return process_batch(session_factory(), batch_id) if batch_id is not None else None

    @task
    def clearance(state: str | None, data_interval_start: datetime | None = None) -> dict[str, bool]:
        from base.db import session_factory
        from collection.flows import clear_day

        assert data_interval_start is not None
        return clear_day(session_factory(), data_interval_start.date())

    clearance(process(forward()))  # type: ignore[arg-type]


collection_daily()
