"""The batch state machine: the table beside BatchState, advance / fail / resume on real rows, and a
batch's failure and recovery through exchange.flows (statistics equal to a recount, nothing twice)."""

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from base.db import transaction
from decision import service as decision_service
from exchange import flows, service
from registry import batches
from registry.models import AuditLog, Batch, Delivery
from schemas.canonical import BATCH_MOVES, RELEASE, UNFINISHED_STATES, BatchState, BatchStep
from tests.factories import make_batch
from tests.feedfiles import hj, write_feed

ZHANG = "330102198001010018"
LI = "330102198505050021"
WANG = "330102199003070035"
AS_OF = date(2026, 11, 3)


def reachable(start: BatchState) -> set[BatchState]:
    seen, todo = {start}, [start]
    while todo:
        for target in BATCH_MOVES[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_table_is_the_pipeline() -> None:
    line = [BatchState.RECEIVED]
    while (step := BatchStep.starting_from(line[-1])) is not None:
        line.append(min(step.ends - {BatchState.REJECTED, BatchState.QUARANTINED}))
    assert [str(s) for s in line] == [
        "received",
        "parsed",
        "gated",
        "resolved",
        "merged",
        "published",
        "counted",
        "completed",
    ]
    assert BATCH_MOVES[BatchState.RECEIVED] == {BatchState.PARSED, BatchState.REJECTED, BatchState.FAILED}
    assert BATCH_MOVES[BatchState.PARSED] == {BatchState.GATED, BatchState.QUARANTINED, BatchState.FAILED}
    assert BATCH_MOVES[BatchState.QUARANTINED] == {BatchState.GATED} == {RELEASE[1]}
    assert BATCH_MOVES[BatchState.COMPLETED] == BATCH_MOVES[BatchState.REJECTED] == frozenset()
    assert BATCH_MOVES[BatchState.FAILED] == {step.starts for step in BatchStep}
    assert all(BatchState.FAILED in BATCH_MOVES[s] for s in UNFINISHED_STATES - {BatchState.FAILED})
    assert BatchStep.MERGE.done_states == {
        BatchState.MERGED,
        BatchState.PUBLISHED,
        BatchState.COUNTED,
        BatchState.COMPLETED,
    }
    assert BatchStep.MERGE.later == (BatchStep.PUBLISH, BatchStep.STATISTICS, BatchStep.RECEIPT)


def test_every_state_is_reachable_from_received_and_each_can_still_end() -> None:
    assert reachable(BatchState.RECEIVED) == set(BatchState)
    for state in BatchState:
        assert reachable(state) & {BatchState.COMPLETED, BatchState.REJECTED}, state


MOVES = st.lists(st.tuples(st.sampled_from(list(BatchState)), st.sampled_from(list(BatchStep))), max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
def test_random_moves_never_leave_the_table(session, moves) -> None:
    """Every move is tried on a real row: the allowed ones happen, the others raise and change nothing."""
    batch_id = make_batch(session).id
    state, failed_in = BatchState.RECEIVED, None
    for to, step in moves:
        if to == BatchState.FAILED:  # a step fails on a batch in the state it starts from
            allowed = step.starts == state and state in UNFINISHED_STATES

            def move() -> object:
                return batches.fail(session, batch_id, step=step, exc=RuntimeError("x"))
        else:
            allowed = to in BATCH_MOVES[state] and (failed_in is None or to == failed_in.starts)

            def move() -> object:
                return batches.advance(session, batch_id, to=to)

        try:
            move()
        except batches.ForbiddenMove:
            assert not allowed, (state, to)
        else:
            assert allowed, (state, to)
            state, failed_in = to, step if to == BatchState.FAILED else None
        row = session.execute(select(Batch.state, Batch.failed_step).where(Batch.id == batch_id)).one()
        assert (row.state, row.failed_step) == (state, failed_in)


def test_advance_checks_what_the_step_expects(session) -> None:
    batch_id = make_batch(session).id
    with pytest.raises(batches.ForbiddenMove, match="处于「已接收」，不能转为「已识别」"):
        batches.advance(session, batch_id, to=BatchState.RESOLVED)
    with pytest.raises(batches.ForbiddenMove):  # allowed by the table, but not the state the step expects
        batches.advance(session, batch_id, to=BatchState.PARSED, expect=BatchState.PARSED)
    with pytest.raises(ValueError, match="fail"):
        batches.advance(session, batch_id, to=BatchState.FAILED)
    assert (
        batches.advance(session, batch_id, to=BatchState.PARSED, expect=BatchState.RECEIVED).state == "parsed"
    )


def snapshot_rows() -> list[dict[str, str]]:
    return [hj("H1", ZHANG, "张伟", "男", "1980-01-01"), hj("H2", LI, "李娜", "女", "1985-05-05")]


def moved_rows() -> list[dict[str, str]]:
    return [
        hj("H1", ZHANG, "张伟", "男", "1980-01-01", event="迁出", when="2026-11-02"),
        hj("H3", WANG, "王小明", "男", "1990-03-07", when="2026-11-02", community="330102001002"),
    ]


def state_of(session: Session, batch_id: int) -> Batch:
    return session.scalars(
        select(Batch).where(Batch.id == batch_id).execution_options(populate_existing=True)
    ).one()


def statistics_agree(session) -> None:
    assert decision_service.aggregate_cells(session=session, as_of=AS_OF) == decision_service.recount(
        session=session, as_of=AS_OF
    )


def test_a_step_that_raises_leaves_the_batch_failed_and_a_rerun_completes_it(
    session, factory, areas, tmp_path, monkeypatch
) -> None:
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows())

    def broken(*, session, batch_id: int) -> None:  # a database error whose message holds an ID number
        session.execute(text("SELECT CAST(:v AS integer)"), {"v": ZHANG})

    monkeypatch.setitem(flows.STEPS, BatchStep.MERGE, broken)
    first = flows.ingest_file(factory, path)
    assert (first.state, first.steps) == ("failed", [BatchStep.PARSE, BatchStep.GATE, BatchStep.RESOLVE])
    batch = state_of(session, first.batch_id)
    assert batch.failed_step == "merge" and batch.error is not None
    assert batch.error.startswith("[DataError] 步骤「合并」失败：数据库错误（SQLSTATE 22003）")
    assert ZHANG not in batch.error and "integer" not in batch.error
    audited = session.scalars(select(AuditLog).where(AuditLog.action == "batch.failed")).one()
    assert audited.detail == {"step": "merge", "type": "DataError", "sqlstate": "22003"}

    monkeypatch.undo()
    again = flows.ingest_file(factory, path)  # the operator runs the same file again
    assert again.duplicate and again.state == "completed"
    assert again.steps == [BatchStep.MERGE, BatchStep.PUBLISH, BatchStep.STATISTICS, BatchStep.RECEIPT]
    batch = state_of(session, first.batch_id)
    assert (batch.state, batch.failed_step, batch.error) == ("completed", None, None)
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1  # a recovery, not a delivery
    recovered = session.scalars(select(AuditLog).where(AuditLog.action == "batch.recovered")).one()
    assert recovered.detail["steps"] == ["merge", "publish", "statistics", "receipt"]
    assert (tmp_path / "outbox" / "gaj_hj" / f"{path.name}.receipt.csv").exists()
    statistics_agree(session)
    done = flows.ingest_file(factory, path)
    assert (done.state, done.steps) == ("completed", [])


def test_statistics_and_receipts_left_undone_are_finished_once_by_a_rerun(
    session, factory, areas, tmp_path, monkeypatch
) -> None:
    first = flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    assert first.state == "completed"

    # Statistics raise on the next day's batch: it stays failed there, nothing counted.
    def lost(**_: object) -> None:
        raise ConnectionError(f"lost while counting {ZHANG}")

    monkeypatch.setattr(decision_service, "refresh_after_batch", lost)
    second_path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), moved_rows())
    second = flows.ingest_file(factory, second_path)
    batch = state_of(session, second.batch_id)
    assert (second.state, batch.failed_step) == ("failed", "statistics")
    assert batch.error == "[ConnectionError] 步骤「统计」失败：程序错误，详见服务日志；重新运行即从该步骤继续"
    monkeypatch.undo()
    again = flows.ingest_file(factory, second_path)
    assert (again.state, again.steps) == ("completed", [BatchStep.STATISTICS, BatchStep.RECEIPT])

    # A run killed after publishing (during statistics) left the third batch published.
    third_path = write_feed(tmp_path, "rsj_cb", date(2026, 11, 3), [])
    with transaction(factory) as s:
        third = service.receive_file(session=s, path=third_path).batch.id
    for step in (BatchStep.PARSE, BatchStep.GATE, BatchStep.RESOLVE, BatchStep.MERGE, BatchStep.PUBLISH):
        flows.run_step(factory, step, third)
    assert state_of(session, third).state == "published"
    # … and the receipt of the fourth raised after its statistics.
    monkeypatch.setattr(service, "write_receipts", lambda **_: 1 / 0)
    fourth_path = write_feed(
        tmp_path, "gaj_hj", date(2026, 11, 3), [hj("H4", WANG, "王小明", "男", "1990-03-07")]
    )
    fourth = flows.ingest_file(factory, fourth_path)
    assert (fourth.state, state_of(session, fourth.batch_id).failed_step) == ("failed", "receipt")
    monkeypatch.undo()

    for batch_id in (third, fourth.batch_id):
        assert flows.process_batch(factory, batch_id) == "completed"
    applied = session.execute(
        text("SELECT batch_id, how FROM decision.applied_batch ORDER BY batch_id")
    ).all()
    assert [b for b, _ in applied] == [first.batch_id, second.batch_id, third, fourth.batch_id]  # once each
    statistics_agree(session)
    receipt = tmp_path / "outbox" / "gaj_hj" / f"{fourth_path.name}.receipt.csv"
    with transaction(factory) as s:
        expected = service.build_receipt(session=s, batch_id=fourth.batch_id).csv_text()
    assert receipt.read_bytes() == expected.encode("utf-8-sig")  # the same bytes as a fresh receipt
    # Nothing is left: every entry point finds the batches completed.
    assert {flows.process_batch(factory, b) for b in (first.batch_id, second.batch_id, third)} == {
        "completed"
    }
    assert flows.waiting_for(factory, BatchStep.STATISTICS) == []


def test_the_look_ups_per_person_run_without_jit_and_the_rest_as_the_server_says(
    session, factory, connection, areas, tmp_path
) -> None:
    """The statements that look up a version per person (the merge's new versions, the publish step's
    events, the statistics' persons of a batch) run without PostgreSQL's JIT (base.db.without_jit: it
    cost more than it saved there); every other statement keeps the server's setting, which is put back
    after each (on a server where JIT is on)."""
    connection.execute(text("SET jit = on"))
    seen: list[tuple[str, str]] = []

    def watch(conn, cursor, statement: str, *_: object) -> None:
        probe = cursor.connection.cursor()
        probe.execute("SELECT current_setting('jit')")
        seen.append((" ".join(statement.split()), probe.fetchone()[0]))

    event.listen(connection, "before_cursor_execute", watch)
    try:
        for day, rows in ((1, snapshot_rows()), (2, moved_rows())):
            path = write_feed(tmp_path, "gaj_hj", date(2026, 11, day), rows)
            assert flows.ingest_file(factory, path).state == "completed"
    finally:
        event.remove(connection, "before_cursor_execute", watch)
    off = {
        "new versions": [jit for sql, jit in seen if "greatest(coalesce(d.batch_observed" in sql],
        "events": [
            jit for sql, jit in seen if sql.startswith("INSERT INTO change_event (person_id, event_type")
        ],
        "statistics": [jit for sql, jit in seen if sql.startswith("CREATE TEMP TABLE _decision_persons")],
    }
    assert {name: set(jits) for name, jits in off.items()} == {
        "new versions": {"off"},
        "events": {"off"},
        "statistics": {"off"},
    }
    assert (
        len(off["new versions"]) == len(off["events"]) == 2 and len(off["statistics"]) == 1
    )  # day 1: a rebuild
    rest = {
        jit for sql, jit in seen if sql.startswith(("INSERT INTO source_record", "CREATE TEMP TABLE golden"))
    }
    assert rest == {"on"} and seen[-1][1] == "on"


def test_a_published_batch_the_statistics_hold_already_is_not_counted_again(
    session, factory, areas, tmp_path
) -> None:
    """What the migration leaves: batches published before counted existed, some already in the
    aggregates (a rebuild took them in); the next run counts each only once."""
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows())
    with transaction(factory) as s:
        batch_id = service.receive_file(session=s, path=path).batch.id
    for step in list(BatchStep)[:5]:
        flows.run_step(factory, step, batch_id)
    with transaction(factory) as s:
        decision_service.rebuild(session=s)
    before = decision_service.aggregate_cells(session=session, as_of=AS_OF)
    assert flows.process_batch(factory, batch_id) == "completed"
    assert session.execute(text("SELECT how FROM decision.applied_batch")).scalars().all() == ["rebuild"]
    assert decision_service.aggregate_cells(session=session, as_of=AS_OF) == before
    statistics_agree(session)


def test_counting_while_the_statistics_are_rebuilt_waits_instead_of_deadlocking(
    tmp_path, archive_dir
) -> None:
    """A rebuild holding the statistics' lock marks every merged batch applied (a foreign key: it locks
    each batch's row for key share). A count that locked its batch's row before waiting for the
    statistics' lock deadlocked with it (seen with two `popex ingest` at once: SQLSTATE 40P01)."""
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from tests.conftest import migrated_database
    from tests.factories import make_areas

    with migrated_database("popex_count_lock") as url:
        engine = create_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        with transaction(factory) as s:
            make_areas(s)
            batch_id = service.receive_file(
                session=s, path=write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows())
            ).batch.id
        for step in list(BatchStep)[:5]:
            flows.run_step(factory, step, batch_id)
        results: list[str] = []
        with engine.connect() as rebuilding:
            rebuilding.execute(text("SET lock_timeout = '20s'"))
            rebuilding.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('decision.aggregates'))")
            )  # decision's
            counting = threading.Thread(
                target=lambda: results.append(flows.run_step(factory, BatchStep.STATISTICS, batch_id))
            )
            counting.start()
            with engine.connect() as watcher:
                while not watcher.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one():
                    assert counting.is_alive()
            with Session(bind=rebuilding) as s:
                decision_service.rebuild(session=s)  # its lock again, then key share on the batch's row
            rebuilding.commit()
            counting.join(timeout=60)
        with factory() as s:
            assert results == ["counted"]
            assert s.execute(text("SELECT how FROM decision.applied_batch")).scalars().all() == ["rebuild"]
            statistics_agree(s)
        engine.dispose()


def test_the_migration_keeps_published_batches_and_gives_failed_ones_their_step(tmp_path) -> None:
    from sqlalchemy import create_engine

    from registry.migrate import downgrade, upgrade
    from tests.conftest import migrated_database

    with migrated_database("popex_lifecycle") as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            downgrade(conn, "0006_audit_at_brin")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO department (code, name) VALUES ('gaj', '公安局')"))
            conn.execute(
                text("INSERT INTO feed (source, department_code, title) VALUES ('gaj_hj', 'gaj', '户籍')")
            )
            for n, state in enumerate(("published", "failed", "failed", "merged"), start=1):
                conn.execute(
                    text(
                        "INSERT INTO batch (id, source, file_name, sha256, size_bytes, archive_path, as_of_date, seq,"
                        " channel, state, rows_received, rows_accepted, rows_rejected, rows_review, step_seconds)"
                        " VALUES (:n, 'gaj_hj', 'f.csv', md5(:s) || md5(:s), 0, '/dev/null', '2026-11-01', 1,"
                        " 'cli', :state, 0, 0, 0, 0, '{}')"
                    ),
                    {"n": n, "s": str(n), "state": state},
                )
            conn.execute(  # the second failed batch had been parsed: its rows are staged
                text(
                    "INSERT INTO source_record (batch_id, row_no, source, raw, status, reasons, extra, id_valid)"
                    " VALUES (3, 1, 'gaj_hj', '{}', 'accepted', '[]', '{}', false)"
                )
            )
        with engine.begin() as conn:
            upgrade(conn)
            rows = conn.execute(text("SELECT state, failed_step FROM batch ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [
            ("published", None),  # the next run counts it and writes its receipts
            ("failed", "parse"),
            ("failed", "gate"),
            ("merged", None),
        ]
        engine.dispose()
