"""The monitor_alerts DAG with dag.test(): alerts evaluated as of the run's time (the monitor reads runs
through Airflow's REST API: tests/dags/test_scheduler.py)."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_alerts_dag_raises_missing_feeds(airflow_home, popex_db, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from base.db import session_scope
    from monitor.config import monitor_settings
    from registry.feeds import sync_feeds

    monkeypatch.setenv("POPEX_MONITOR_EXPECTED_FROM", "2026-11-02")
    monkeypatch.setenv("POPEX_MONITOR_WINDOW_DAYS", "1")
    monitor_settings.cache_clear()
    with session_scope() as session:
        sync_feeds(session=session)
    dag = DagBag().dags["monitor_alerts"]
    assert dag.tags and "monitor" in dag.tags and dag.doc_md
    # 2026-11-03 01:15 UTC is 09:15 in Shanghai: every feed's file for 11-02 is past its deadline.
    run = dag.test(logical_date=datetime(2026, 11, 3, 1, 15, tzinfo=UTC))
    assert run.state == "success"
    engine = create_engine(popex_db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT rule, as_of_date, state FROM monitor_alert")).all()
    engine.dispose()
    assert len(rows) == 8 and {(r.rule, r.as_of_date, r.state) for r in rows} == {
        ("feed_missing", date(2026, 11, 2), "open")
    }
    monitor_settings.cache_clear()
