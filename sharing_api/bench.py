"""Benchmark of the sharing API: lookup by ID number under load, and one 1,000-item verification batch.

    .venv/bin/python -m sharing_api.bench --persons 1000000

Loads N synthetic persons set-wise (INSERT … SELECT generate_series) into a dedicated database, starts
uvicorn on 127.0.0.1 (a free port, one worker per core), drives POST /api/v1/persons/lookup with wrk
(a Lua script rotating ID numbers and end users), then times verification batches, then checks that
every request left one audit record and that the audit chain still verifies. Loopback only.
A second, paced run offers a fixed rate (each connection pauses between requests, as real clients do)
and reports its latency: in the first, closed-loop run 64 connections always wait, so its mean latency
is 64 / throughput by Little's law and a p99 of 20 ms would need over 3,200 req/s.
Targets (issue 6): >= 1,500 req/s, p99 <= 20 ms at 64 connections on 2 cores; batch <= 200 ms.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from sqlalchemy import create_engine, make_url, text

from registry.db import database_url

ROOT = Path(__file__).resolve().parent.parent
WRK = shutil.which("wrk")

# Synthetic persons, computed from g = 1..N: unique ID numbers '33' + 16 digits (not check-digit
# valid: the lookup does not validate), names from small pools, spread over 6 districts.
LOAD_PERSONS = """
INSERT INTO person (person_no, area_key, status, id_type, id_no, name, sex, birth_date, death_date, phone,
                    address, community_code, population_type, provenance)
SELECT 'P' || lpad(g::text, 11, '0'),
       district,
       CASE WHEN g % 50 = 0 THEN 'dead' WHEN g % 23 = 0 THEN 'left' ELSE 'active' END,
       'RID',
       '33' || lpad(g::text, 16, '0'),
       (ARRAY['王','李','张','刘','陈','杨','赵','黄','周','吴'])[1 + g % 10]
           || (ARRAY['伟','芳','娜','敏','静','丽','强','磊','军','洋','勇','艳'])[1 + (g / 10) % 12]
           || (ARRAY['','明','华','平','红','英'])[1 + (g / 120) % 6],
       (1 + g % 2)::text,
       date '1930-01-01' + ((g::bigint * 7919) % 32000)::int,
       CASE WHEN g % 50 = 0 THEN date '2026-01-01' + g % 300 END,
       '138' || lpad((g % 100000000)::text, 8, '0'),
       '某街道' || (g % 999) || '号',
       district || lpad((1 + g % 9)::text, 3, '0') || lpad((1 + g % 20)::text, 3, '0'),
       CASE WHEN g % 10 < 7 THEN 'registered' WHEN g % 10 < 9 THEN 'floating' ELSE 'foreign' END,
       '{}'::jsonb
FROM generate_series(1, :n) AS g,
     LATERAL (SELECT '3301' || lpad((2 + g % 6)::text, 2, '0') AS district) AS d
"""
LOAD_IDENTIFIERS = (
    "INSERT INTO person_identifier (id_type, id_no, person_id) SELECT id_type, id_no, id FROM person"
)

WRK_SCRIPT = """
local n = {n}
local key = "{key}"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = key
wrk.headers["X-Purpose"] = "benchmark"
local pause = {pause}
math.randomseed(os.time())
delay = function()
  if pause == 0 then return 0 end
  return math.random(math.floor(pause / 2), pause + math.floor(pause / 2))
end
request = function()
  local g = math.random(1, n)
  wrk.headers["X-End-User"] = "clerk-" .. (g % 100)
  local body = string.format('{{"id_no": "33%016d"}}', g)
  return wrk.format(nil, "/api/v1/persons/lookup", nil, body)
end
done = function(summary, latency, requests)
  local s = summary
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    s.requests, s.duration, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
    s.errors.status, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class BenchResult:
    """The figures of one run."""

    persons: int
    workers: int
    connections: int
    seconds: int
    requests: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    batch_ms_median: float
    batch_ms_max: float
    batch_matched: int
    paced_rate: int  # offered load of the paced run (0: none); each connection waits between requests
    paced_requests_per_second: float
    paced_p50_ms: float
    paced_p99_ms: float
    server_cpu_ms_per_request: float  # uvicorn processes only, during the unpaced run
    load_average: float  # of the machine (1 min) before the run: other work shares the 2 cores
    requests_sent: int  # warm-up, measured run and batches (wrk does not count those cut off at its end)
    audit_rows: int
    audit_chain_ok: bool
    load_seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(url: str, persons: int) -> float:
    """Create the schema and N persons with their identifiers; returns the seconds it took."""
    from registry.migrate import upgrade

    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as conn:
        upgrade(conn)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text(LOAD_PERSONS), {"n": persons})
        conn.execute(text(LOAD_IDENTIFIERS))
        conn.execute(text("SELECT setval('person_no_seq', :n)"), {"n": persons})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE person"))
        conn.execute(text("VACUUM ANALYZE person_identifier"))
    engine.dispose()
    return time.perf_counter() - started


def _create_client(url: str) -> str:
    """A benchmark client that may look up and verify anyone, with a rate limit out of the way."""
    from sqlalchemy.orm import Session

    from sharing_api.clients import create_client
    from sharing_api.policy import Policy

    policy = Policy.model_validate(
        {
            "operations": ["lookup", "verify"],
            "purposes": ["benchmark"],
            "fields": ["name", "sex", "birth_date", "id_no", "status", "community_code", "population_type"],
            "population_types": ["registered", "floating", "foreign"],
            "areas": ["*"],
            "rate_limit": {"per_second": 100_000, "burst": 100_000},
        }
    )
    engine = create_engine(url)
    with Session(engine) as session:
        _, key = create_client(session=session, code="bench", name="压测", policy=policy, operator="bench")
        session.commit()
    engine.dispose()
    return key


def _start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "POPEX_DATABASE_URL": url}
    cmd = [
        sys.executable, "-m", "uvicorn", "popex.app:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)  # noqa: S603 (a fixed command line of our own)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("uvicorn did not start within 60 s")


def _server_cpu(server: subprocess.Popen[bytes]) -> float:
    """CPU seconds used so far by uvicorn and its worker processes."""
    import psutil

    procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


def _wrk(port: int, script: Path, *, seconds: int, connections: int, threads: int) -> dict[str, int]:
    assert WRK is not None
    out = subprocess.run(  # noqa: S603 (a fixed command line of our own)
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    return dict(json.loads(line.removeprefix("WRK_JSON ")))


def _batches(port: int, key: str, persons: int, rounds: int) -> tuple[list[float], int]:
    """Time `rounds` verification batches of 1,000 items (two in three match); returns ms and matches."""
    headers = {"X-API-Key": key, "X-Purpose": "benchmark", "X-End-User": "batch-clerk"}
    times, matched = [], 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        for r in range(rounds):
            items = []
            for i in range(1000):
                g = 1 + (r * 7_777 + i * 997) % persons
                info = client_side_person(g)
                items.append({**info, "name": info["name"] if i % 3 else "不对"})
            started = time.perf_counter()
            response = client.post("/api/v1/verify/batch", json={"items": items})
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            matched = response.json()["matched"]
    return times, matched


def client_side_person(g: int) -> dict[str, str]:
    """What a department would send to verify synthetic person g (mirrors LOAD_PERSONS)."""
    import datetime as dt

    surnames = "王李张刘陈杨赵黄周吴"
    given = "伟芳娜敏静丽强磊军洋勇艳"
    third = ["", "明", "华", "平", "红", "英"]
    name = surnames[g % 10] + given[(g // 10) % 12] + third[(g // 120) % 6]
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=(g * 7919) % 32000)
    return {"id_no": f"33{g:016d}", "name": name, "birth_date": birth.isoformat()}


def run_benchmark(
    *,
    persons: int = 1_000_000,
    seconds: int = 30,
    connections: int = 64,
    workers: int = 2,
    threads: int = 2,
    batch_rounds: int = 20,
    paced_rate: int = 1500,
    keep: bool = False,
) -> BenchResult:
    """Load, serve, measure, check the audit; the dedicated database is dropped unless keep."""
    if WRK is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    admin = make_url(database_url())
    url = admin.set(database="popex_bench").render_as_string(hide_password=False)
    admin_engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "popex_bench" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "popex_bench"'))
    server = None
    try:
        load_seconds = _load(url, persons)
        key = _create_client(url)
        port = _free_port()
        server = _start_server(url, port, workers)
        load_average = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "lookup.lua"
            script.write_text(WRK_SCRIPT.format(n=persons, key=key, pause=0))
            warm_up = _wrk(port, script, seconds=5, connections=connections, threads=threads)
            cpu_before = _server_cpu(server)
            figures = _wrk(port, script, seconds=seconds, connections=connections, threads=threads)
            cpu_ms = (_server_cpu(server) - cpu_before) * 1000 / max(figures["requests"], 1)
            paced = {"requests": 0, "duration_us": 1, "p50_us": 0, "p99_us": 0}
            if paced_rate:
                script.write_text(
                    WRK_SCRIPT.format(n=persons, key=key, pause=connections * 1000 // paced_rate)
                )
                paced = _wrk(port, script, seconds=seconds, connections=connections, threads=threads)
        batch_ms, matched = _batches(port, key, persons, batch_rounds)
        engine = create_engine(url)
        with engine.connect() as conn:
            audit_rows = (
                conn.scalar(text("SELECT count(*) FROM audit_log WHERE action LIKE 'sharing.%'")) or 0
            )
            from sqlalchemy.orm import Session

            from registry.audit import verify_chain

            chain_ok = verify_chain(session=Session(bind=conn)).ok
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not keep:
            with admin_engine.connect() as conn:
                conn.execute(text('DROP DATABASE IF EXISTS "popex_bench" WITH (FORCE)'))
        admin_engine.dispose()
    return BenchResult(
        persons=persons,
        workers=workers,
        connections=connections,
        seconds=seconds,
        requests=figures["requests"],
        requests_per_second=round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        errors=figures["errors"],
        non_2xx=figures["non_2xx"],
        batch_ms_median=round(statistics.median(batch_ms), 1),
        batch_ms_max=round(max(batch_ms), 1),
        batch_matched=matched,
        paced_rate=paced_rate,
        paced_requests_per_second=round(paced["requests"] / (paced["duration_us"] / 1e6), 1),
        paced_p50_ms=paced["p50_us"] / 1000,
        paced_p99_ms=paced["p99_us"] / 1000,
        server_cpu_ms_per_request=round(cpu_ms, 3),
        load_average=round(load_average, 2),
        requests_sent=warm_up["requests"] + figures["requests"] + paced["requests"] + batch_rounds,
        audit_rows=audit_rows,
        audit_chain_ok=chain_ok,
        load_seconds=round(load_seconds, 1),
    )


def main(
    persons: Annotated[int, typer.Option(help="合成人口数")] = 1_000_000,
    seconds: Annotated[int, typer.Option(help="压测时长（秒）")] = 30,
    connections: Annotated[int, typer.Option(help="并发连接数")] = 64,
    workers: Annotated[int, typer.Option(help="uvicorn 进程数")] = 2,
    paced_rate: Annotated[int, typer.Option(help="限速压测的目标请求率（0 为不做）")] = 1500,
    keep: Annotated[bool, typer.Option(help="保留压测数据库 popex_bench")] = False,
) -> None:
    """Run the benchmark and print its figures as JSON."""
    result = run_benchmark(
        persons=persons,
        seconds=seconds,
        connections=connections,
        workers=workers,
        paced_rate=paced_rate,
        keep=keep,
    )
    print(json.dumps(asdict(result), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    typer.run(main)
