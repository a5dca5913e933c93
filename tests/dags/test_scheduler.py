"""exchange_daily under Airflow's own scheduler (what dag.test() hides): scheduler, dag-processor and
api-server on a PostgreSQL metadata database, LocalExecutor, tasks reaching the execution API on
127.0.0.1. A run triggered through the REST API for a past day (conf as_of) processes that day's files
into the popex database; a run triggered with the CLI for a day before go-live fails with the reason;
the monitor reads both runs through the REST API. Every process started here is stopped, even when
the test fails."""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from registry.migrate import upgrade
from tests.conftest import create_database, drop_database
from tests.feedfiles import hj, write_feed

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 10, 1)
GO_LIVE = date(2026, 9, 1)
USER = "popex"
RUN_TIMEOUT = 360  # seconds a run may take here (2 shared cores)
ZHANG = "330102198001010018"
LI = "330102198505050021"


@dataclass
class Airflow:
    """The running services: where the API is, the environment they share, the popex database."""

    home: Path
    api: str
    env: dict[str, str]
    password: str
    popex_url: str

    def client(self) -> httpx.Client:
        """An API client with a JWT from the simple auth manager."""
        client = httpx.Client(base_url=self.api, timeout=30)
        got = client.post("/auth/token", json={"username": USER, "password": self.password})
        client.headers["Authorization"] = f"Bearer {got.raise_for_status().json()['access_token']}"
        return client

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An airflow command against the same metadata database."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ours(home: Path) -> list[int]:
    """Processes still running with this test's AIRFLOW_HOME (a task or worker that left its group)."""
    mark = f"AIRFLOW_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop(procs: list[subprocess.Popen[bytes]], home: Path) -> None:
    """SIGINT to each service's process group (SIGTERM orphans the scheduler's children), SIGKILL
    whatever is left after 30 s, then any process of this AIRFLOW_HOME that escaped its group."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in ours(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def airflow(tmp_path: Path) -> Iterator[Airflow]:
    """Scheduler, dag-processor and api-server of a fresh Airflow, stopped afterwards whatever happens."""
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({USER: password}))
    meta_url = create_database("airflow_meta")
    popex_url = create_database("popex_sched")
    engine = create_engine(popex_url)
    with engine.begin() as conn:
        upgrade(conn)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POPEX_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "3",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # 64 bytes and more: HS512
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "POPEX_DATABASE_URL": popex_url,
            "POPEX_ARCHIVE_DIR": str(tmp_path / "archive"),
            "POPEX_LANDING_DIR": str(tmp_path / "landing-scheduled"),  # the scheduled run's: empty
            "POPEX_OUTBOX_DIR": str(tmp_path / "outbox"),
            "POPEX_GO_LIVE_DATE": GO_LIVE.isoformat(),
        }
    )
    (tmp_path / "landing-scheduled").mkdir()
    service = Airflow(home, f"http://127.0.0.1:{port}", env, password, popex_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        done = service.cli("db", "migrate")
        assert done.returncode == 0, done.stderr[-2000:]
        done = service.cli("pools", "set", "popex_identity", "1", "身份识别步骤：同一时间只运行一个")
        assert done.returncode == 0, done.stderr[-2000:]
        for name, args in (
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]),
        ):
            with open(home / f"{name}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "airflow", *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, stopped as one
                    )
                )
        yield service
    finally:
        stop(procs, home)
        left = ours(home)
        drop_database(meta_url)
        drop_database(popex_url)
        assert not left, f"processes left running: {left}"


def wait_for(what: str, check, timeout: float) -> object:
    """Poll `check` until it gives something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def run_state(client: httpx.Client, run_id: str) -> str | None:
    got = client.get(f"/api/v2/dags/exchange_daily/dagRuns/{run_id}")
    state = got.json()["state"] if got.status_code == 200 else None
    return state if state in ("success", "failed") else None


def test_exchange_daily_under_the_scheduler(airflow: Airflow, tmp_path: Path, monkeypatch) -> None:
    engine = create_engine(airflow.popex_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO area (code, name, level, parent_code) VALUES ('330102', '上城区', 'district', NULL),"
                " ('330102001', '清波街道', 'street', '330102'),"
                " ('330102001001', '清波社区', 'community', '330102001')"
            )
        )
    landing = tmp_path / "landing"
    landing.mkdir()
    write_feed(landing, "gaj_hj", DAY, [hj("H1", ZHANG, "张伟", "男", "1980-01-01", when=DAY.isoformat())])
    death = {
        "死亡证明编号": "D1",
        "姓名": "张伟",
        "身份证号": ZHANG,
        "性别": "男",
        "出生日期": "1980-01-01",
        "死亡日期": DAY.isoformat(),
        "死亡地点": "医院",
    }
    write_feed(landing, "wjw_sw", DAY, [death])  # a second department: its own mapped parse and gate
    later = [hj("H2", LI, "李娜", "女", "1985-05-05", when="2026-10-02")]
    write_feed(landing, "gaj_hj", date(2026, 10, 2), later)  # for the backfill below
    # A quiet feed: the same header-only bytes every day. The second day's file joins the first day's
    # settled batch and gets its receipt when the backfill's run receives it (no step runs again).
    for day in (DAY, date(2026, 10, 2)):
        write_feed(landing, "mzj_hy", day, [])

    client = wait_for("the api-server", lambda: airflow.client(), 120)
    assert isinstance(client, httpx.Client)
    with contextlib.closing(client):  # already open: it fetched the token
        wait_for(
            "exchange_daily parsed", lambda: client.get("/api/v2/dags/exchange_daily").status_code == 200, 120
        )
        client.patch("/api/v2/dags/exchange_daily", json={"is_paused": False}).raise_for_status()
        conf = {"as_of": DAY.isoformat(), "landing": str(landing), "outbox": str(tmp_path / "outbox")}
        made = client.post("/api/v2/dags/exchange_daily/dagRuns", json={"logical_date": None, "conf": conf})
        run_id = made.raise_for_status().json()["dag_run_id"]
        # The CLI way, for a day before go-live: it must fail, not succeed with nothing to do.
        early = airflow.cli(
            "dags",
            "trigger",
            "exchange_daily",
            "-r",
            "before_go_live",
            "-c",
            json.dumps({"as_of": "2026-08-31"}),
        )
        assert early.returncode == 0, early.stderr[-2000:]

        assert wait_for("the run", lambda: run_state(client, run_id), RUN_TIMEOUT) == "success"
        assert wait_for("the early run", lambda: run_state(client, "before_go_live"), RUN_TIMEOUT) == "failed"

        tis = client.get(f"/api/v2/dags/exchange_daily/dagRuns/{run_id}/taskInstances").json()[
            "task_instances"
        ]
        by_task: dict[str, list[dict[str, Any]]] = {}
        for ti in tis:
            by_task.setdefault(ti["task_id"], []).append(ti)
        assert [ti["state"] for ti in by_task["batch.parse"]] == ["success"] * 3  # one per batch
        labels = sorted(ti["rendered_map_index"] for ti in by_task["batch.parse"])  # the batch ids
        assert {ti["pool"] for t in ("resolve", "merge", "publish") for ti in by_task[t]} == {
            "popex_identity"
        }
        assert all(ti["state"] == "success" for ti in tis)
        early_tis = client.get("/api/v2/dags/exchange_daily/dagRuns/before_go_live/taskInstances").json()
        states = {ti["task_id"]: ti["state"] for ti in early_tis["task_instances"]}
        assert states["detect"] == "failed" and states["resolve"] == "upstream_failed"
        log = client.get("/api/v2/dags/exchange_daily/dagRuns/before_go_live/taskInstances/detect/logs/1")
        assert "早于上线日期 2026-09-01" in log.text

    with engine.connect() as conn:
        batches = conn.execute(text("SELECT id, source, as_of_date, state FROM batch ORDER BY source")).all()
        persons = conn.execute(text("SELECT id_no, status FROM person")).all()
    assert [(b.source, b.as_of_date) for b in batches] == [("gaj_hj", DAY), ("mzj_hy", DAY), ("wjw_sw", DAY)]
    assert labels == sorted(str(b.id) for b in batches)
    assert {b.state for b in batches} <= {"published", "counted", "completed"}
    assert [tuple(p) for p in persons] == [(ZHANG, "dead")]  # in delivery order; 10-02's file waited
    receipts = sorted(p.name for p in (tmp_path / "outbox").rglob("*.receipt.csv"))
    assert receipts == [
        "gaj_hj_20261001.csv.receipt.csv",
        "mzj_hy_20261001.csv.receipt.csv",
        "wjw_sw_20261001.csv.receipt.csv",
    ]

    # A backfill of the next as-of day as docs/OPERATIONS.md gives it: the run time 10-03 10:00 local.
    created = airflow.cli(
        "backfill", "create", "--dag-id", "exchange_daily", "--max-active-runs", "1",
        "--from-date", "2026-10-03T10:00:00+08:00", "--to-date", "2026-10-03T10:00:00+08:00",
        "--dag-run-conf", json.dumps({"landing": conf["landing"], "outbox": conf["outbox"]}),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr[-2000:]

    def backfilled(client: httpx.Client) -> str | None:
        runs = client.get("/api/v2/dags/exchange_daily/dagRuns").json()["dag_runs"]
        done = [
            r["state"] for r in runs if r["run_type"] == "backfill" and r["state"] in ("success", "failed")
        ]
        return done[0] if done else None

    with contextlib.closing(airflow.client()) as client:
        assert wait_for("the backfill", lambda: backfilled(client), RUN_TIMEOUT) == "success"
    with engine.connect() as conn:
        days = conn.execute(
            text("SELECT as_of_date FROM batch WHERE source = 'gaj_hj' ORDER BY id")
        ).scalars()
        assert list(days) == [DAY, date(2026, 10, 2)]
        assert (
            conn.execute(text("SELECT count(*) FROM person WHERE id_no = :li"), {"li": LI}).scalar_one() == 1
        )
        quiet = conn.execute(
            text("SELECT d.file_name, d.duplicate, b.state FROM delivery d JOIN batch b ON b.id = d.batch_id"
                 " WHERE d.source = 'mzj_hy' ORDER BY d.file_name")
        ).all()  # fmt: skip
    engine.dispose()
    assert [tuple(q) for q in quiet] == [
        ("mzj_hy_20261001.csv", False, "completed"),
        ("mzj_hy_20261002.csv", False, "completed"),
    ]
    quiet_receipt = tmp_path / "outbox" / "mzj_hy" / "mzj_hy_20261002.csv.receipt.csv"
    assert (
        quiet_receipt.read_bytes()
        == (tmp_path / "outbox" / "mzj_hy" / "mzj_hy_20261001.csv.receipt.csv").read_bytes()
    )

    # The monitor reads the same runs through the REST API.
    from monitor import health
    from monitor.config import airflow_settings

    monkeypatch.setenv("POPEX_AIRFLOW_API_URL", airflow.api)
    monkeypatch.setenv("POPEX_AIRFLOW_USERNAME", USER)
    monkeypatch.setenv("POPEX_AIRFLOW_PASSWORD", airflow.password)
    airflow_settings.cache_clear()
    try:
        assert health.airflow_configured()
        runs = {r.run_id: r for r in health.airflow_runs()}
    finally:
        airflow_settings.cache_clear()
    assert runs[run_id].state == "success" and runs[run_id].tasks["batch.parse"] == "success"
    assert runs["before_go_live"].state == "failed" and runs["before_go_live"].tasks["detect"] == "failed"
