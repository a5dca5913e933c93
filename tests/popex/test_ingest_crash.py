"""`popex ingest` killed inside each step of a batch, or its database connection dropped mid-step, then
run again: the batch completes and the database holds exactly what one clean run gives.

Issue 15: "a rerun after a crash reports success and leaves work undone"; "tests kill at each step".
The process stops itself inside the step (base.crashpoint: POPEX_TEST_STOP_AT, the step's work done,
its transaction not committed), then the test does what a crash does: kill -9, or terminate its
database backend (with the database still there, or refusing connections as while it restarts) and
let it go on. A small city (300 persons): the department's register is loaded, then one social
insurance file (rsj_cb) is ingested under test, linking to the persons it finds.
"""

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.orm import Session, sessionmaker

from base.db import transaction
from base.settings import storage_settings
from decision.service import aggregate_cells, recount
from exchange import flows
from exchange.service import receive_file
from registry.areas import load_areas
from registry.consistency import check_consistency
from registry.models import Delivery
from schemas.canonical import BatchStep
from synth import generate_city
from tests.conftest import admin_url, create_database, drop_database, migrated_database
from tests.feedfiles import hj, write_feed

pytestmark = pytest.mark.slow
REGISTER, FILE = "gaj_hj_20261101.csv", "rsj_cb_20261101.csv"
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    generate_city(out, persons=300, days=0, seed=15)
    return out


@pytest.fixture(scope="module")
def template(city: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the city's areas and its household register (ingested to completed): each
    test copies it (CREATE DATABASE … TEMPLATE)."""
    saved = {k: os.environ.get(k) for k in ("POPEX_ARCHIVE_DIR", "POPEX_OUTBOX_DIR")}
    os.environ["POPEX_ARCHIVE_DIR"] = str(city / "archive")
    os.environ["POPEX_OUTBOX_DIR"] = str(tmp_path_factory.mktemp("register_outbox"))
    storage_settings.cache_clear()
    try:
        with migrated_database("popex_crash_tpl") as url:
            engine = create_engine(url)
            with Session(engine) as session:
                load_areas(session=session, path=city / "areas.csv")
                session.commit()
            assert (
                flows.ingest_file(
                    sessionmaker(engine, expire_on_commit=False), city / "landing" / REGISTER
                ).state
                == "completed"
            )
            engine.dispose()
            yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        storage_settings.cache_clear()


def _copy(template: str) -> str:
    url = create_database("popex_crash")
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{make_url(url).database}"'))
        conn.execute(
            text(f'CREATE DATABASE "{make_url(url).database}" TEMPLATE "{make_url(template).database}"')
        )
    admin.dispose()
    return url


@pytest.fixture
def database(template: str) -> Iterator[str]:
    url = _copy(template)
    try:
        yield url
    finally:
        drop_database(url)


def _env(url: str, city: Path, outbox: Path, stop_at: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "POPEX_DATABASE_URL": url,
        "POPEX_ARCHIVE_DIR": str(city / "archive"),
        "POPEX_OUTBOX_DIR": str(outbox),
        "COLUMNS": "300",  # rich wraps at 80 columns without a terminal
    }
    env.pop("POPEX_TEST_STOP_AT", None)
    if stop_at:
        env["POPEX_TEST_STOP_AT"] = stop_at
    return env


def _ingest(
    url: str, city: Path, outbox: Path, stop_at: str | None = None, path: Path | None = None
) -> subprocess.Popen[str]:
    """`popex ingest FILE` as the installed command runs it (popex.cli.run); FILE unless `path`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from popex.cli import run; run()",
            "ingest",
            str(path or city / "landing" / FILE),
        ],
        env=_env(url, city, outbox, stop_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ingest_dir(
    url: str, city: Path, outbox: Path, folder: Path, stop_at: str | None = None
) -> subprocess.Popen[str]:
    """`popex ingest --dir FOLDER` as the installed command runs it."""
    return subprocess.Popen(
        [sys.executable, "-c", "from popex.cli import run; run()", "ingest", "--dir", str(folder)],
        env=_env(url, city, outbox, stop_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ingest_once(
    url: str, city: Path, outbox: Path, path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    run = _ingest(url, city, outbox, path=path)
    out, err = run.communicate(timeout=300)
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


def _stopped(run: subprocess.Popen[str]) -> None:
    """Wait until the process has stopped itself inside its step (state T in /proc)."""
    deadline = time.monotonic() + 120
    while Path(f"/proc/{run.pid}/stat").read_text().split(") ")[1][0] != "T":
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the process did not reach its step"
        time.sleep(0.05)


def _backends(url: str, *, in_transaction: bool) -> list[int]:
    """The process ids of the database's sessions other than ours (those inside a transaction only)."""
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid() "
                "AND (NOT :t OR state = 'idle in transaction')"
            ),
            {"d": make_url(url).database, "t": in_transaction},
        ).scalars()
        found = list(pids)
    engine.dispose()
    return found


def _terminate(pids: list[int]) -> None:
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar_one()
    engine.dispose()


def _allow_connections(url: str, allow: bool) -> None:
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(
            text(f'ALTER DATABASE "{make_url(url).database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        )
    engine.dispose()


def _database_gone(url: str, run: subprocess.Popen[str]) -> tuple[str, str]:
    """As while the server restarts (every session ends, none starts), let the stopped process go on;
    its output once it has ended."""
    _allow_connections(url, False)
    try:
        _terminate(_backends(url, in_transaction=False))
        os.kill(run.pid, signal.SIGCONT)
        return run.communicate(timeout=120)
    finally:
        _allow_connections(url, True)


def outcome(url: str, outbox: Path) -> dict[str, Any]:
    """What the database and the outbox hold, without the arbitrary numbers (a killed transaction uses
    up sequence values): counts, who holds which ID number, which rows are one person, the file's batch
    and deliveries, the statistics, and the receipts with each person number replaced by its holder."""
    engine = create_engine(url)
    with engine.connect() as conn:
        one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        batch = conn.execute(
            text(
                "SELECT id, state, failed_step, error, rows_received, rows_accepted, rows_rejected, rows_review "
                "FROM batch WHERE file_name = :f"
            ),
            {"f": FILE},
        ).one()
        holder: dict[str, str] = dict(
            conn.execute(
                text(
                    "SELECT p.person_no, coalesce(min(x.id_no), p.name || p.birth_date) FROM person p "
                    "LEFT JOIN person_identifier x ON x.person_id = p.id GROUP BY p.id"
                )
            ).all()
        )
        found = {
            "batch": tuple(batch)[1:],
            "persons": one("SELECT count(*) FROM person WHERE status <> 'retired'"),
            "identifiers": one("SELECT count(*) FROM person_identifier"),
            "links": one("SELECT count(*) FROM link"),
            "review": one("SELECT count(*) FROM review_item"),
            "versions": one("SELECT count(*) FROM person_version"),
            "records": Counter(
                dict(
                    conn.execute(
                        text("SELECT batch_id || ':' || status, count(*) FROM source_record GROUP BY 1")
                    ).all()
                )
            ),
            "events": Counter(
                dict(conn.execute(text("SELECT event_type, count(*) FROM change_event GROUP BY 1")).all())
            ),
            "holders": set(
                conn.execute(
                    text(
                        "SELECT x.id_no, p.name, p.sex, p.birth_date, p.status, p.community_code, p.population_type "
                        "FROM person_identifier x JOIN person p ON p.id = x.person_id"
                    )
                ).all()
            ),
            "same_person": set(
                conn.execute(
                    text(
                        "SELECT array_agg(r.source || ':' || r.row_no ORDER BY r.source, r.row_no)::text "
                        "FROM link l JOIN source_record r ON r.id = l.source_record_id GROUP BY l.person_id"
                    )
                ).scalars()
            ),
            "deliveries": conn.execute(
                text("SELECT file_name, channel, duplicate FROM delivery ORDER BY id")
            ).all(),
            "audit": Counter(
                dict(
                    conn.execute(
                        text(
                            "SELECT action, count(*) FROM audit_log WHERE object_id = :b "
                            "AND action NOT IN ('batch.recovered', 'batch.failed') GROUP BY 1"
                        ),
                        {"b": str(batch.id)},
                    ).all()
                )
            ),
            "applied": one(f"SELECT count(*) FROM decision.applied_batch WHERE batch_id = {batch.id}"),
        }
    with Session(engine) as session:
        found["cells"] = aggregate_cells(session=session, as_of=AS_OF)
        found["recount"] = recount(session=session, as_of=AS_OF)
    engine.dispose()
    receipts = {}
    for path in sorted(outbox.rglob("*")):
        if path.is_file():
            rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
            receipts[str(path.relative_to(outbox))] = [[*r[:3], holder.get(r[3], r[3]), *r[4:]] for r in rows]
    found["receipts"] = receipts
    return found


@pytest.fixture(scope="module")
def clean(template: str, city: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file ingested once, nothing killed."""
    url, outbox = _copy(template), tmp_path_factory.mktemp("clean_outbox")
    try:
        started = time.perf_counter()
        done = _ingest_once(url, city, outbox)
        assert done.returncode == 0, done.stderr
        found = outcome(url, outbox)
        found["seconds"] = time.perf_counter() - started
    finally:
        drop_database(url)
    assert found["batch"][:3] == ("completed", None, None)
    assert found["cells"] == found["recount"] and found["applied"] == 1
    assert list(found["receipts"]) == [f"rsj_cb/{FILE}.receipt.csv"]
    return found


def _same_as_clean(url: str, outbox: Path, clean: dict[str, Any]) -> dict[str, Any]:
    found = outcome(url, outbox)
    differ = [k for k in clean if k != "seconds" and found[k] != clean[k]]
    assert not differ, {k: (found[k], clean[k]) for k in differ}
    engine = create_engine(url)
    with Session(engine) as session:  # what `popex db check` checks: two persons one number, …
        assert not any(check_consistency(session=session).values())
    engine.dispose()
    return found


def _recovered(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT actor, detail FROM audit_log WHERE action = 'batch.recovered' ORDER BY id")
        ).all()
    engine.dispose()
    return [{"actor": a, **d} for a, d in found]


def _no_traceback(said: str) -> bool:
    """Neither a traceback nor the frames of one (the service log's, shown only with -v)."""
    return "Traceback" not in said and 'File "' not in said


def _state(url: str) -> tuple[int, str, str | None]:
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT id, state, failed_step FROM batch WHERE file_name = :f"), {"f": FILE}
        ).one()
    engine.dispose()
    return row.id, row.state, row.failed_step


@pytest.mark.parametrize("step", list(BatchStep))
def test_killed_inside_a_step_the_rerun_finishes_exactly_the_rest(
    step, database, city, tmp_path, clean
) -> None:
    outbox = tmp_path / "outbox"
    run = _ingest(database, city, outbox, stop_at=step)
    _stopped(run)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    batch_id, state, failed_step = _state(database)
    assert (state, failed_step) == (step.starts, None)  # the step's transaction died with the process

    again = _ingest_once(database, city, outbox)
    assert again.returncode == 0, again.stderr
    rest = "、".join(s.label for s in (step, *step.later))
    assert f"相同文件此前已接收（批次 {batch_id}）；本次完成了：{rest}" in again.stdout
    assert _no_traceback(again.stdout + again.stderr)

    # One delivery, the receipt once, the statistics exact, nobody twice …
    found = _same_as_clean(database, outbox, clean)
    assert found["deliveries"] == [(REGISTER, "cli", False), (FILE, "cli", False)]
    # … and the rerun is on record as the operator's recovery, not as a delivery of the department's.
    assert _recovered(database) == [
        {"actor": "operator", "file": FILE, "channel": "cli", "steps": [str(s) for s in (step, *step.later)]}
    ]


def test_a_quiet_days_file_killed_at_receive_is_received_once_with_its_receipt(
    database, city, tmp_path
) -> None:
    """A quiet feed's second header-only file joins the first day's settled batch and gets its receipt at
    receive (no step runs again): killed there, before its transaction commits, the rerun records one
    delivery and writes the same receipt."""
    folder, outbox = tmp_path / "quiet", tmp_path / "outbox"
    folder.mkdir()
    first, second = (write_feed(folder, "mzj_hy", day, []) for day in (AS_OF, AS_OF + timedelta(days=1)))
    assert first.read_bytes() == second.read_bytes()
    done = _ingest_once(database, city, outbox, first)
    assert done.returncode == 0, done.stderr

    run = _ingest(database, city, outbox, stop_at="receive", path=second)
    _stopped(run)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert [d[0] for d in outcome_deliveries(database)] == [REGISTER, first.name]  # died uncommitted

    again = _ingest_once(database, city, outbox, second)
    assert again.returncode == 0, again.stderr
    assert _no_traceback(again.stdout + again.stderr)
    assert outcome_deliveries(database) == [
        (REGISTER, "cli", False, "completed"),
        (first.name, "cli", False, "completed"),
        (second.name, "cli", False, "completed"),
    ]
    quiet = outbox / "mzj_hy"
    assert sorted(p.name for p in quiet.iterdir()) == [
        f"{first.name}.receipt.csv",
        f"{second.name}.receipt.csv",
    ]
    assert (quiet / f"{second.name}.receipt.csv").read_bytes() == (
        quiet / f"{first.name}.receipt.csv"
    ).read_bytes()


def outcome_deliveries(url: str) -> list[tuple[str, str, bool, str]]:
    """Each delivery's file, channel, whether a duplicate, and its batch's state, in order."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT d.file_name, d.channel, d.duplicate, b.state FROM delivery d"
                " JOIN batch b ON b.id = d.batch_id ORDER BY d.id"
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in found]


def test_a_dropped_connection_fails_the_step_and_says_so(database, city, tmp_path, clean) -> None:
    outbox = tmp_path / "outbox"
    run = _ingest(database, city, outbox, stop_at=BatchStep.MERGE)
    _stopped(run)
    [merging] = _backends(database, in_transaction=True)  # the merge's session: the database stays up
    _terminate([merging])
    os.kill(run.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=120)
    batch_id, state, failed_step = _state(database)
    assert (run.returncode, state, failed_step) == (1, "failed", "merge"), err
    assert f"批次 {batch_id} {FILE} 状态 失败（步骤「合并」）" in out
    assert "步骤「合并」失败：与数据库的连接中断；重新运行即从该步骤继续" in err
    assert _no_traceback(out + err)

    again = _ingest_once(database, city, outbox)
    assert again.returncode == 0, again.stderr
    assert f"相同文件此前已接收（批次 {batch_id}）；本次完成了：合并、发布、统计、回执" in again.stdout
    _same_as_clean(database, outbox, clean)


def test_a_database_gone_mid_step_is_said_with_the_batch_and_its_state(
    database, city, tmp_path, clean
) -> None:
    outbox = tmp_path / "outbox"
    run = _ingest(database, city, outbox, stop_at=BatchStep.MERGE)
    _stopped(run)
    out, err = _database_gone(database, run)
    batch_id, state, failed_step = _state(database)
    assert (run.returncode, state, failed_step) == (1, "resolved", None), out + err
    assert (
        f"与数据库的连接中断：批次 {batch_id} 在步骤「合并」中断，仍处于「已识别」；数据库恢复后重新运行即从该步骤继续"
        in err
    )
    assert _no_traceback(out + err)

    again = _ingest_once(database, city, outbox)
    assert again.returncode == 0, again.stderr
    assert f"相同文件此前已接收（批次 {batch_id}）；本次完成了：合并、发布、统计、回执" in again.stdout
    _same_as_clean(database, outbox, clean)


def test_popex_ingest_finishing_a_landing_file_is_a_recovery_not_a_delivery(
    session, factory, areas, tmp_path
) -> None:
    """A day's run died after receiving a department's file from the landing folder; the operator
    finishes that file with `popex ingest` (exchange.flows.ingest_file): no delivery is added, so the
    department's scorecard does not count a duplicate it never sent."""
    path = write_feed(
        tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01")]
    )
    with transaction(factory) as received:
        batch_id = receive_file(session=received, path=path, channel="landing", once_per_name=True).batch.id
    flows.run_step(factory, BatchStep.PARSE, batch_id)
    done = flows.ingest_file(factory, path)
    assert (done.batch_id, done.duplicate, done.state) == (batch_id, True, "completed")
    deliveries = session.execute(select(Delivery.channel, Delivery.duplicate)).all()
    assert [tuple(d) for d in deliveries] == [("landing", False)]


# A landing folder: the register again (received before: no delivery, nothing to do), the floating
# population and the file under test. `popex ingest --dir` reads the next file and counts and receipts
# the one before while a file is resolved, merged and published (exchange.flows.ingest_files).
FOLDER_FILES = (REGISTER, "gaj_ld_20261101.csv", FILE)


@pytest.fixture(scope="module")
def folder(city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    for name in FOLDER_FILES:
        shutil.copy(city / "landing" / name, out / name)
    return out


@pytest.fixture(scope="module")
def clean_folder(
    template: str, city: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The folder ingested once, nothing killed."""
    url, outbox = _copy(template), tmp_path_factory.mktemp("clean_folder_outbox")
    try:
        run = _ingest_dir(url, city, outbox, folder)
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert out.count("状态 已完成") == 3, out
        found = outcome(url, outbox)
    finally:
        drop_database(url)
    assert found["batch"][:3] == ("completed", None, None)
    assert found["cells"] == found["recount"] and found["applied"] == 1
    assert sorted(found["receipts"]) == [
        "gaj_ld/gaj_ld_20261101.csv.receipt.csv",
        f"rsj_cb/{FILE}.receipt.csv",
    ]
    return found


@pytest.mark.parametrize("step", list(BatchStep))
def test_a_landing_folder_killed_inside_a_step_the_rerun_gives_what_one_clean_run_gives(
    step, database, city, folder, tmp_path, clean_folder
) -> None:
    """Killed inside the first batch to reach the step (the floating population's: in its read-ahead
    thread for parse and gate, the file under test then still waiting or being read), then run again."""
    outbox = tmp_path / "outbox"
    run = _ingest_dir(database, city, outbox, folder, stop_at=step)
    _stopped(run)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    engine = create_engine(database)
    with engine.connect() as conn:
        unfinished = conn.execute(text("SELECT count(*) FROM batch WHERE state <> 'completed'")).scalar_one()
    engine.dispose()
    assert unfinished >= 1

    again = _ingest_dir(database, city, outbox, folder)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.count("状态 已完成") == 3, out
    assert _no_traceback(out + err)
    found = _same_as_clean(database, outbox, clean_folder)
    assert found["deliveries"] == [
        (REGISTER, "cli", False),
        (FOLDER_FILES[1], "cli", False),
        (FILE, "cli", False),
    ]
    assert {r["file"] for r in _recovered(database)} <= {FOLDER_FILES[1], FILE}


def test_a_landing_folder_whose_database_goes_mid_step_stops_says_so_and_is_finished_by_a_rerun(
    database, city, folder, tmp_path, clean_folder
) -> None:
    """The database goes while the floating population's merge is under way and the next file is read
    ahead in another thread: the command stops (no thread left waiting), names a batch and its state
    without a traceback, and the same command run again gives what one clean run gives."""
    outbox = tmp_path / "outbox"
    run = _ingest_dir(database, city, outbox, folder, stop_at=BatchStep.MERGE)
    _stopped(run)
    out, err = _database_gone(database, run)
    assert run.returncode == 1, out + err
    assert "与数据库的连接中断：批次" in err and "数据库恢复后重新运行即从该步骤继续" in err, err
    assert _no_traceback(out + err)

    again = _ingest_dir(database, city, outbox, folder)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.count("状态 已完成") == 3, out
    _same_as_clean(database, outbox, clean_folder)
