"""The collection DAG with dag.test(): the day's accepted rows reach the one database, clearance is stored."""

from datetime import date

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAY = date(2026, 11, 20)


def test_collection_day_through_the_dag(airflow_home, popex_db, tmp_path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from base.db import session_scope
    from collection import service
    from registry.areas import load_areas

    areas = tmp_path / "areas.csv"
    areas.write_text(
        "code,name,level,parent_code\n330102,上城区,district,\n330102001,清波街道,street,330102\n"
        "330102001001,清波社区,community,330102001\n330102001002,柳翠社区,community,330102001\n",
        encoding="utf-8",
    )
    cells = {"性别": "男", "现住址": "清波街1号", "人口类型": "户籍", "居住状态": "在住"}
    with session_scope() as session:
        load_areas(session=session, path=areas)
        a = service.add_officer(
            session=session, officer_no="A001", name="甲", community_code="330102001001", password="x" * 10
        )
        service.add_officer(
            session=session, officer_no="B001", name="乙", community_code="330102001002", password="x" * 10
        )
        good = service.store_form(
            session=session,
            officer=a,
            values={**cells, "姓名": "张伟", "身份证号": "330102198001010018"},
            work_date=DAY,
        )
        bad = service.store_form(
            session=session,
            officer=a,
            values={**cells, "姓名": "王五", "身份证号": "330102198001010019"},
            work_date=DAY,
        )
        for sub in (good, bad):
            service.validate_submission(session=session, submission_id=sub.id)
        session.execute(text("UPDATE collection_row SET created_at = '2026-11-20 10:00'"))

    dag = DagBag().dags["collection_daily"]
    assert set(dag.tags) == {"collection", "popex"}
    run = dag.test(run_conf={"as_of": "2026-11-20"})
    assert run.state == "success"

    engine = create_engine(popex_db)
    try:
        with engine.connect() as conn:
            batch = conn.execute(text("SELECT id, source, channel, state, rows_accepted FROM batch")).one()
            assert tuple(batch[1:]) == ("sq_cj", "collection", "completed", 1)
            person = conn.execute(text("SELECT name, id_no, community_code FROM person")).one()
            assert tuple(person) == ("张伟", "330102198001010018", "330102001001")
            events = conn.execute(text("SELECT event_type FROM change_event")).scalars().all()
            assert events == ["person_created"]
            forwarded = conn.execute(text("SELECT status, batch_id FROM collection_row ORDER BY id")).all()
            assert [tuple(r) for r in forwarded] == [("accepted", batch[0]), ("rejected", None)]
            cleared = conn.execute(
                text(
                    "SELECT community_code, submitted, accepted, rejected, still_open, cleared "
                    "FROM collection_clearance ORDER BY community_code"
                )
            ).all()
            assert [tuple(r) for r in cleared] == [
                ("330102001001", 2, 1, 1, 1, False),
                ("330102001002", 0, 0, 0, 0, True),
            ]
        # A retried run forwards nothing again.
        again = dag.test(run_conf={"as_of": "2026-11-20"})
        assert again.state == "success"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM batch")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM person")).scalar_one() == 1

        # A row of 11-20 entered after that day's run goes with the next day's file, not never.
        from sqlalchemy import select

        from collection.models import Officer

        with session_scope() as session:
            officer = session.scalars(select(Officer).where(Officer.officer_no == "A001")).one()
            late = service.store_form(
                session=session,
                officer=officer,
                values={**cells, "性别": "女", "姓名": "李娜", "身份证号": "330102198505050021"},
                work_date=DAY,
            )
            service.validate_submission(session=session, submission_id=late.id)
            late_id = late.id
        assert dag.test(run_conf={"as_of": "2026-11-21"}).state == "success"
        with engine.connect() as conn:
            batches = conn.execute(text("SELECT id, as_of_date FROM batch ORDER BY id")).all()
            assert [b.as_of_date for b in batches] == [DAY, date(2026, 11, 21)]
            late_row = conn.execute(
                text("SELECT batch_id FROM collection_row WHERE submission_id = :s"), {"s": late_id}
            ).scalar_one()
            assert late_row == batches[1].id
            assert conn.execute(text("SELECT count(*) FROM person")).scalar_one() == 2
    finally:
        engine.dispose()
