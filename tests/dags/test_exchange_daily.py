"""The exchange DAG end to end with dag.test() on real PostgreSQL over two days, and its idempotency."""

from datetime import date

import pytest
from sqlalchemy import create_engine, text

from tests.dags.conftest import load_test_areas
from tests.feedfiles import hj, write_feed

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ZHANG = "330102198001010018"
LI = "330102198505050021"


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in (
                "batch",
                "delivery",
                "source_record",
                "person",
                "link",
                "person_version",
                "change_event",
                "audit_log",
            )
        }
    engine.dispose()
    return out


def test_two_days_through_the_dag(airflow_home, popex_db, tmp_path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from base.db import session_scope

    load_test_areas(tmp_path)
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing.mkdir()
    write_feed(
        landing,
        "gaj_hj",
        date(2026, 11, 1),
        [hj("H1", ZHANG, "张伟", "男", "1980-01-01"), hj("H2", LI, "李娜", "女", "1985-05-05")],
        encoding="gb18030",
    )
    write_feed(
        landing,
        "wjw_sw",
        date(2026, 11, 2),
        [
            {
                "死亡证明编号": "D1",
                "姓名": "张伟",
                "身份证号": ZHANG,
                "性别": "男",
                "出生日期": "1980-01-01",
                "死亡日期": "2026-11-02",
                "死亡地点": "医院",
            }
        ],
    )
    dag = DagBag().dags["exchange_daily"]
    conf = {"landing": str(landing), "outbox": str(outbox)}

    first = dag.test(run_conf={**conf, "as_of": "2026-11-01"})
    assert first.state == "success"
    after_first = counts(popex_db)
    assert (after_first["batch"], after_first["person"], after_first["link"]) == (1, 2, 2)

    second = dag.test(run_conf={**conf, "as_of": "2026-11-02"})
    assert second.state == "success"
    engine = create_engine(popex_db)
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status, death_date FROM person WHERE id_no = :z"), {"z": ZHANG}
        ).one()
        events = conn.execute(text("SELECT event_type FROM change_event ORDER BY id")).scalars().all()
    engine.dispose()
    assert tuple(status) == ("dead", date(2026, 11, 2))
    assert events.count("died") == 1 and events.count("person_created") == 2
    receipt = outbox / "wjw_sw" / "wjw_sw_20261102.csv.receipt.csv"
    lines = receipt.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,record_key,status,person_id,reasons" and lines[1].startswith("1,D1,accepted,P")

    # The decision platform's aggregates were refreshed from the merged batches and agree with a recount.
    from decision.service import aggregate_cells, recount

    with session_scope() as session:
        applied = session.execute(text("SELECT count(*) FROM decision.applied_batch")).scalar_one()
        assert applied == 2
        assert aggregate_cells(session=session, as_of=date(2026, 11, 2)) == recount(
            session=session, as_of=date(2026, 11, 2)
        )

    # The same day again (a retried run): nothing new anywhere.
    before = counts(popex_db)
    again = dag.test(run_conf={**conf, "as_of": "2026-11-02"})
    assert again.state == "success"
    assert counts(popex_db) == before
    with session_scope() as session:
        assert set(session.scalars(text("SELECT state FROM batch"))) == {"completed"}


def test_a_run_killed_after_publishing_is_finished_by_the_next(
    airflow_home, popex_db, tmp_path, monkeypatch
) -> None:
    """The day's batches were published when the run died (one in statistics, one before it): the day
    run again counts each once, writes every receipt and leaves them completed."""
    from airflow.dag_processing.dagbag import DagBag

    from base.db import session_factory, session_scope
    from decision.service import aggregate_cells, recount
    from exchange import flows
    from schemas.canonical import BatchStep

    load_test_areas(tmp_path)
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing.mkdir()
    day = date(2026, 11, 1)
    write_feed(landing, "gaj_hj", day, [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    write_feed(landing, "gaj_hj", day, [hj("H2", LI, "李娜", "女", "1985-05-05")], seq=2)
    factory = session_factory()
    killed = flows.receive_landing(factory, landing, day)
    for step in (BatchStep.PARSE, BatchStep.GATE, BatchStep.RESOLVE, BatchStep.MERGE, BatchStep.PUBLISH):
        for batch_id in killed:
            flows.run_step(factory, step, batch_id)
    with monkeypatch.context() as m:  # the first batch's statistics broke off
        m.setattr("decision.service.refresh_after_batch", lambda **_: 1 / 0)
        assert flows.run_step(factory, BatchStep.STATISTICS, killed[0]) == "failed"
    before = counts(popex_db)

    dag = DagBag().dags["exchange_daily"]
    rerun = dag.test(run_conf={"landing": str(landing), "outbox": str(outbox), "as_of": "2026-11-01"})
    assert rerun.state == "success"
    assert counts(popex_db) == before  # no delivery, record, person, version or audit record added
    with session_scope() as session:
        states = session.execute(text("SELECT state, failed_step FROM batch ORDER BY id")).all()
        assert [tuple(s) for s in states] == [("completed", None), ("completed", None)]
        applied = (
            session.execute(text("SELECT batch_id FROM decision.applied_batch ORDER BY 1")).scalars().all()
        )
        assert applied == sorted(killed)
        assert aggregate_cells(session=session, as_of=day) == recount(session=session, as_of=day)
    assert sorted(p.name for p in outbox.rglob("*.receipt.csv")) == [
        "gaj_hj_20261101.csv.receipt.csv",
        "gaj_hj_20261101_2.csv.receipt.csv",
    ]
