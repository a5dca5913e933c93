"""The popex command as a user runs it: a database it cannot reach is one clear line, not a traceback;
`popex ingest` runs every batch to completed and says what a rerun finished; `popex stats`."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import make_url, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from base.db import transaction
from decision.service import aggregate_cells, recount
from exchange.flows import run_step
from exchange.service import receive_file
from popex.cli import app
from registry.models import Batch, Delivery
from schemas.canonical import BatchStep
from tests.conftest import admin_url, create_database, drop_database
from tests.feedfiles import hj, write_feed

ZHANG = "330102198001010018"
LI = "330102198505050021"


def _db_check(database_url: str) -> subprocess.CompletedProcess[str]:
    """`popex db check` as the installed command runs it (popex.cli.run), on this database."""
    return subprocess.run(
        [sys.executable, "-c", "from popex.cli import run; run()", "db", "check"],
        env={**os.environ, "POPEX_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_database_is_said_in_one_line() -> None:
    missing = make_url(admin_url()).set(database="popex_no_such_database")
    done = _db_check(missing.render_as_string(hide_password=False))
    assert done.returncode == 2
    assert "无法连接数据库" in done.stderr and "popex_no_such_database" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_database_not_yet_migrated_is_said_in_one_line() -> None:
    empty = create_database("popex_cli_empty")
    try:
        done = _db_check(empty)
    finally:
        drop_database(empty)
    assert done.returncode == 2
    assert "popex db upgrade" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# `popex ingest` and `popex stats` on the test's database (sessions joined to its outer transaction).
@pytest.fixture
def cli(session: Session, factory, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)
    monkeypatch.setattr("base.db.session_factory", lambda: factory)

    def invoke(*args: str, code: int = 0) -> Result:
        done = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
        assert done.exit_code == code, done.output
        return done

    return invoke


def _statistics_agree(session: Session) -> bool:
    day = date(2026, 11, 3)
    return aggregate_cells(session=session, as_of=day) == recount(session=session, as_of=day)


def test_ingest_again_says_what_it_finished(cli, session, areas, tmp_path, monkeypatch) -> None:
    first = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    assert "状态 已完成" in cli("ingest", str(first)).output
    second = write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), [hj("H2", LI, "李娜", "女", "1985-05-05")])
    with monkeypatch.context() as m:  # the statistics fail (say the database went away while counting)
        m.setattr("decision.service.refresh_after_batch", lambda **_: 1 / 0)
        failed = cli("ingest", str(second), code=1).output
    assert "状态 失败" in failed and "步骤「统计」失败" in failed
    [batch_id] = session.scalars(select(Batch.id).where(Batch.file_name == second.name)).all()

    again = cli("ingest", str(second)).output
    assert "状态 已完成" in again
    assert f"相同文件此前已接收（批次 {batch_id}）；本次完成了：统计、回执" in again
    assert "未重复处理" not in again
    idle = cli("ingest", str(second)).output
    assert f"相同文件此前已接收（批次 {batch_id}）；没有剩余的工作，未重复处理" in idle
    # The reruns were the operator's recovery, not the department delivering twice.
    deliveries = session.execute(select(Delivery.file_name, Delivery.duplicate).order_by(Delivery.id)).all()
    assert [tuple(d) for d in deliveries] == [(first.name, False), (second.name, False)]
    assert _statistics_agree(session)


def test_ingest_a_landing_folder_runs_every_file_to_completed(cli, session, areas, tmp_path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    assert "中没有按标准命名的文件，无事可做" in cli("ingest", "--dir", str(landing)).output
    write_feed(landing, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    write_feed(landing, "gaj_hj", date(2026, 11, 2), [hj("H2", LI, "李娜", "女", "1985-05-05")])
    write_feed(landing, "wjw_sw", date(2026, 11, 2), [])
    out = cli("ingest", "--dir", str(landing)).output
    assert out.count("状态 已完成") == 3
    assert set(session.scalars(select(Batch.state))) == {"completed"}
    assert len(list((tmp_path / "outbox").rglob("*.receipt.csv"))) == 3
    assert _statistics_agree(session)
    # `popex receipt` prints what the outbox holds, line by line.
    written = (tmp_path / "outbox" / "gaj_hj" / "gaj_hj_20261102.csv.receipt.csv").read_text(
        encoding="utf-8-sig"
    )
    assert cli("receipt", "gaj_hj_20261102.csv").output == written and written.count("\n") == 2
    assert (
        "接收 1，通过 1，拒收 0，待核查 0"
        in cli("receipt", "gaj_hj_20261102.csv", "--format", "summary").output
    )


def _published(factory, path: Path) -> int:
    """A batch taken as far as published (what a run killed while counting leaves)."""
    with transaction(factory) as s:
        batch_id = receive_file(session=s, path=path).batch.id
    for step in (BatchStep.PARSE, BatchStep.GATE, BatchStep.RESOLVE, BatchStep.MERGE, BatchStep.PUBLISH):
        run_step(factory, step, batch_id)
    return batch_id


def test_stats_refresh_counts_each_published_batch_once(cli, session, factory, areas, tmp_path) -> None:
    ids = [
        _published(
            factory,
            write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")]),
        ),
        _published(
            factory,
            write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), [hj("H2", LI, "李娜", "女", "1985-05-05")]),
        ),
    ]
    assert "已将 2 个批次计入统计" in cli("stats", "refresh").output
    assert set(session.scalars(select(Batch.state).where(Batch.id.in_(ids)))) == {"counted"}
    assert _statistics_agree(session)
    assert "没有待计入统计的批次，统计已是最新" in cli("stats", "refresh").output
    applied = session.execute(text("SELECT batch_id FROM decision.applied_batch ORDER BY 1")).scalars().all()
    assert applied == ids


def test_stats_rebuild_recounts_and_marks_the_published_batches(
    cli, session, factory, areas, tmp_path
) -> None:
    done = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    cli("ingest", str(done))
    waiting = _published(
        factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), [hj("H2", LI, "李娜", "女", "1985-05-05")])
    )
    out = cli("stats", "rebuild").output
    assert "统计已重建：2 人" in out and "1 个已发布批次已包含在重建的统计中，标记为已计入统计" in out
    assert session.scalar(select(Batch.state).where(Batch.id == waiting)) == "counted"
    assert set(session.execute(text("SELECT how FROM decision.applied_batch")).scalars()) == {"rebuild"}
    assert _statistics_agree(session)


def test_repair_history_reports_then_repairs_and_rebuilds_the_statistics(
    cli, session, areas, tmp_path
) -> None:
    first = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    assert "状态 已完成" in cli("ingest", str(first)).output
    assert "无需修复" in cli("db", "repair-history").output
    session.execute(  # a phone number dated years back, as the merge wrote it until 8cb3cb3
        text(
            "INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, status,"
            " community_code, population_type, sex, birth_date, id_no, name, phone)"
            " SELECT id, area_key, DATE '2021-01-01', (SELECT max(id) FROM batch), '[\"phone\"]', status,"
            " community_code, population_type, sex, birth_date, id_no, name, '13800138000'"
            " FROM person WHERE id_no = :z"
        ),
        {"z": ZHANG},
    )
    assert "1 个人员版本早于其所接续的版本" in cli("db", "repair-history").output
    assert "已修复 1 个人员版本" in cli("db", "repair-history", "--apply").output
    assert session.scalar(
        text("SELECT min(valid_from) FROM person_version WHERE phone = '13800138000'")
    ) > date(2021, 1, 1)
    assert _statistics_agree(session)
    assert "无需修复" in cli("db", "repair-history").output
