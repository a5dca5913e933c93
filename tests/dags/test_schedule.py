"""What the DAGs say about time and failure: local time, after the departments' deadline, the as-of day
from params (yesterday by default), retries and timeouts everywhere, the identity pool, and a broken
batch that fails only itself and is resumed by the day's rerun."""

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from tests.dags.conftest import load_test_areas
from tests.feedfiles import hj, write_feed

pytestmark = pytest.mark.airflow

ZHANG = "330102198001010018"
LI = "330102198505050021"
IDENTITY = {"exchange_daily": {"resolve", "merge", "publish"}, "collection_daily": {"process"}}


def cron_time(dag) -> time:
    """The time of day of a daily CronTriggerTimetable ('M H * * *')."""
    minute, hour, *_ = dag.timetable.expression.split()
    return time(int(hour), int(minute))


def test_dags_run_in_local_time_after_the_deadline_and_retry(airflow_home) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronTriggerTimetable
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    from schemas.feed_spec import load_feed_specs

    dags = DagBag().dags
    for dag_id, dag in dags.items():
        assert str(dag.timezone.name) == "Asia/Shanghai", dag_id
        assert isinstance(dag.timetable, CronTriggerTimetable), dag_id
        assert dag.start_date is not None, dag_id
        assert dag.start_date <= datetime(2020, 1, 1, tzinfo=UTC) and not dag.catchup, dag_id
        for task in dag.tasks:
            assert task.retries is not None, task.task_id
            assert task.retries >= 1 and task.retry_exponential_backoff > 1, task.task_id
            assert task.execution_timeout is not None, task.task_id
            expected = "popex_identity" if task.task_id in IDENTITY.get(dag_id, set()) else "default_pool"
            assert task.pool == expected, task.task_id
    # exchange_daily runs after every feed's deadline (the next morning, local time)
    deadline = max(spec.schedule.deadline for spec in load_feed_specs().values())
    assert cron_time(dags["exchange_daily"]) > deadline
    assert cron_time(dags["collection_daily"]) < deadline  # its sq_cj file reaches the exchange in time
    assert isinstance(dags["exchange_daily"].task_group_dict["batch"], MappedTaskGroup)
    assert {t.task_id for t in dags["exchange_daily"].task_group_dict["batch"]} == {
        "batch.parse",
        "batch.gate",
    }
    for dag in dags.values():
        assert "as_of" in dag.params or dag.dag_id == "monitor_alerts"


def test_dags_follow_the_citys_zone(airflow_home, monkeypatch) -> None:
    """A city in another zone (POPEX_TIME_ZONE) gets its runs at its own 10:00, as base.clock dates them."""
    from airflow.dag_processing.dagbag import DagBag

    from base.settings import schedule_settings

    monkeypatch.setenv("POPEX_TIME_ZONE", "Asia/Urumqi")
    schedule_settings.cache_clear()
    try:
        dags = DagBag().dags
    finally:
        monkeypatch.undo()
        schedule_settings.cache_clear()
    assert {dag_id: str(dag.timezone.name) for dag_id, dag in dags.items()} == dict.fromkeys(
        dags, "Asia/Urumqi"
    )
    assert len(dags) == 3


@pytest.mark.slow
def test_a_plain_trigger_processes_yesterday(airflow_home, popex_db, tmp_path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    load_test_areas(tmp_path)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    landing = tmp_path / "landing"
    landing.mkdir()
    write_feed(landing, "gaj_hj", today - timedelta(days=1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    write_feed(landing, "gaj_hj", today, [hj("H2", LI, "李娜", "女", "1985-05-05")])
    dag = DagBag().dags["exchange_daily"]
    run = dag.test(run_conf={"landing": str(landing), "outbox": str(tmp_path / "outbox")})
    assert run.state == "success"
    engine = create_engine(popex_db)
    with engine.connect() as conn:
        days = conn.execute(text("SELECT as_of_date FROM batch")).scalars().all()
    engine.dispose()
    assert days == [today - timedelta(days=1)]  # today's file waits for tomorrow's run


@pytest.mark.slow
def test_a_broken_batch_fails_alone_and_the_rerun_resumes_it(airflow_home, popex_db, tmp_path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from base.db import session_factory, transaction
    from exchange import service

    load_test_areas(tmp_path)
    # A batch pushed the day before, whose archived file has gone missing: its parse raises.
    pushed = write_feed(tmp_path, "gaj_hj", date(2026, 10, 31), [hj("H2", LI, "李娜", "女", "1985-05-05")])
    with transaction(session_factory()) as session:
        broken = service.receive_file(session=session, path=pushed, channel="api").batch
        broken_id, archived = broken.id, Path(broken.archive_path)
    content = archived.read_bytes()
    archived.unlink()
    landing = tmp_path / "landing"
    landing.mkdir()
    write_feed(landing, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    dag = DagBag().dags["exchange_daily"]
    for task in dag.tasks:
        task.retries = 0  # dag.test would wait out the backoff
    conf = {"as_of": "2026-11-01", "landing": str(landing), "outbox": str(tmp_path / "outbox")}

    run = dag.test(run_conf=conf)
    assert run.state == "failed"  # the day is red …
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert sorted(s for (t, _), s in states.items() if t == "batch.parse") == ["failed", "success"]
    assert states[("resolve", -1)] == "success" and states[("receipts", -1)] == "success"
    assert states[("all_batches_checked", -1)] == "upstream_failed"
    engine = create_engine(popex_db)
    with engine.connect() as conn:
        batches: dict[int, str] = dict(conn.execute(text("SELECT id, state FROM batch")).tuples().all())
        failed_step = conn.execute(
            text("SELECT failed_step FROM batch WHERE id = :b"), {"b": broken_id}
        ).scalar()
    assert batches.pop(broken_id) == "failed" and failed_step == "parse"
    assert list(batches.values()) == ["completed"]  # … but the other department's batch went through

    archived.write_bytes(content)  # the file is back: the same day again resumes the broken batch
    again = dag.test(run_conf=conf)
    assert again.state == "success"
    with engine.connect() as conn:
        assert set(conn.execute(text("SELECT state FROM batch")).scalars()) == {"completed"}
        persons = conn.execute(text("SELECT id_no FROM person ORDER BY id_no")).scalars().all()
    engine.dispose()
    assert persons == [ZHANG, LI]
