"""exchange_daily killed inside a step (kill -9 of `airflow dags test` while a task is in merge or in
receipt), then the day run again: every batch completes, nothing is applied twice.

The run stops itself inside the step through the test hook base.crashpoint (POPEX_TEST_STOP_AT); the
`popex ingest` counterpart, every step and a dropped connection, is tests/popex/test_ingest_crash.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from schemas.canonical import BatchStep
from tests.dags.conftest import load_test_areas
from tests.feedfiles import hj, write_feed

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 1)
ZHANG, LI = "330102198001010018", "330102198505050021"


def _day(conf: dict[str, str], stop_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "POPEX_TEST_STOP_AT"}
    if stop_at:
        env["POPEX_TEST_STOP_AT"] = stop_at
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow",
            "dags",
            "test",
            "exchange_daily",
            "-c",
            json.dumps(conf),
            "-f",
            str(ROOT / "dags" / "exchange_daily.py"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stopped(run: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while Path(f"/proc/{run.pid}/stat").read_text().split(") ")[1][0] != "T":
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run did not reach its step"
        time.sleep(0.1)


@pytest.mark.parametrize("step", ["merge", "receipt"])
def test_a_day_killed_inside_a_step_is_finished_by_its_rerun(step, airflow_home, popex_db, tmp_path) -> None:
    from base.db import session_scope
    from decision.service import aggregate_cells, recount

    load_test_areas(tmp_path)
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing.mkdir()
    write_feed(landing, "gaj_hj", DAY, [hj("H1", ZHANG, "张伟", "男", "1980-01-01")])
    write_feed(landing, "gaj_hj", DAY, [hj("H2", LI, "李娜", "女", "1985-05-05")], seq=2)
    conf = {"landing": str(landing), "outbox": str(outbox), "as_of": DAY.isoformat()}

    killed = _day(conf, stop_at=step)
    _stopped(killed)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    engine = create_engine(popex_db)
    with engine.connect() as conn:
        states = conn.execute(text("SELECT state FROM batch ORDER BY id")).scalars().all()
    assert states[0] == BatchStep(step).starts, states  # the first batch was inside the step: undone

    rerun = _day(conf)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out[-3000:]
    with engine.connect() as conn:
        one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        assert conn.execute(text("SELECT DISTINCT state FROM batch")).scalars().all() == ["completed"]
        assert conn.execute(text("SELECT file_name, duplicate FROM delivery ORDER BY id")).all() == [
            ("gaj_hj_20261101.csv", False),
            ("gaj_hj_20261101_2.csv", False),
        ]
        assert (one("SELECT count(*) FROM person"), one("SELECT count(*) FROM link")) == (2, 2)
        assert one("SELECT count(*) FROM source_record") == 2
        assert one("SELECT count(*) - count(DISTINCT batch_id) FROM decision.applied_batch") == 0
        assert one("SELECT count(*) FROM decision.applied_batch") == 2
    engine.dispose()
    with session_scope() as session:
        assert aggregate_cells(session=session, as_of=DAY) == recount(session=session, as_of=DAY)
    assert sorted(p.name for p in outbox.rglob("*")) == [
        "gaj_hj",
        "gaj_hj_20261101.csv.receipt.csv",
        "gaj_hj_20261101_2.csv.receipt.csv",
    ]
