"""Benchmark of the sharing API: lookup by ID number under load, and one 1,000-item verification batch.

    .venv/bin/python -m sharing_api.bench --persons 1000000

Loads N synthetic persons set-wise (INSERT … SELECT generate_series) into a dedicated database, starts
uvicorn on 127.0.0.1 (a free port, one worker per core), drives POST /api/v1/persons/lookup with wrk
(a Lua script rotating ID numbers and end users), then times verification batches, then checks that
every request left one audit record and that the audit chain still verifies. Loopback only.

Two kinds of run, both over 64 connections:
- closed loop (unpaced): every connection sends again as soon as it is answered: the throughput. Its
  mean latency is 64 / throughput by Little's law (a p99 of 20 ms would need over 3,200 req/s), so
  its latency says little.
- paced: wrk keeps a fixed schedule of `rate` requests per second however the server answers, as
  many independent clients would: the latency at that offered load. Each rate is run `repeats`
  times, since other work on the 2 cores moves single runs.
CPU per request is measured for every run: the server's processes, PostgreSQL's (the backends connected
to the benchmark's database: its reads, audit commits and autovacuum, not other databases' work on a
shared machine, nor the WAL writer and checkpointer), and wrk's own.
The machine's speed is printed beside the figures (`python_loop_s`: the best of three runs of a
pure-Python loop of 10⁷ additions, before and after the runs, and one run of it just before each), so
that runs on different machines can be compared: on a shared machine it drifts within minutes (0.32 s
at the start of one run, 0.68-0.74 s just after it).
Targets (issue 6): >= 1,500 req/s, p99 <= 20 ms at 64 connections on 2 cores; batch <= 200 ms.
Issue 19 item 5: p99 <= 20 ms at 1,500 req/s paced where that loop takes up to 1.0 s.
"""

import functools
import json
import math
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
from sqlalchemy import create_engine, text

from base.db import create_database, drop_database

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

# wrk runs this in each of its threads. Unpaced (interval 0) every connection sends its next request
# as soon as the last is answered (closed loop). Paced, the thread keeps a fixed schedule, one request
# every `interval` ms over all its connections (LuaJIT's ffi reads the monotonic clock), so the offered
# rate stays what was asked however slowly the server answers, as long as a connection is free.
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} popex_timespec;
int clock_gettime(int clk, popex_timespec *tp);
]]
local ts = ffi.new("popex_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local n = {n}
local interval = {interval_ms}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
wrk.headers["X-Purpose"] = "benchmark"
local next_at = nil
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
end
delay = function()
  if interval == 0 then return 0 end
  local now = now_ms()
  if next_at == nil then next_at = now + math.random() * interval end
  local wait = next_at - now
  next_at = next_at + interval
  if wait < 0 then return 0 end
  return wait
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
class LoadRun:
    """One wrk run: offered rate (0: closed loop), what was achieved, latency, CPU per request."""

    rate: int
    requests: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    server_cpu_ms: float  # uvicorn processes, per request
    postgres_cpu_ms: (
        float  # the benchmark database's backends (reads, audit commits, autovacuum), per request
    )
    wrk_cpu_ms: float  # the load generator, per request
    python_loop_s: float  # the 10⁷-addition loop run once just before this run: the machine's speed then


@dataclass
class BenchResult:
    """The figures of the whole benchmark."""

    database: str  # this run's own (popex_bench_<pid>), dropped at the end unless kept
    persons: int
    workers: int
    connections: int
    seconds: int
    unpaced: LoadRun
    paced: list[LoadRun]
    batch_ms_median: float
    batch_ms_max: float
    batch_matched: int
    load_average: float  # of the machine (1 min) before the runs: other work shares the 2 cores
    load_average_after: float  # and after them
    python_loop_s: float  # a pure-Python loop of 10⁷ additions, best of 3: the machine's speed
    python_loop_after_s: float  # the same after the runs (a shared machine's speed drifts within minutes)
    requests_sent: int  # warm-up, measured runs and batches (wrk does not count those cut off at its end)
    audit_rows: int
    audit_chain_ok: bool
    load_seconds: float
    machine: str  # CPU model, cores, memory: figures from different machines differ a lot


def _machine() -> str:
    import platform

    import psutil

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next(
        (x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.processor()
    )
    memory = psutil.virtual_memory().total / 2**30
    return f"{model}, {psutil.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def python_loop_seconds(runs: int = 3) -> float:
    """Seconds a pure-Python loop of 10⁷ additions takes here, the best of `runs` (other work on the
    machine only slows a run down)."""
    best = math.inf
    for _ in range(runs):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


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
        # The load's dirty pages written now, not by a checkpoint in the middle of a measured run.
        conn.execute(text("CHECKPOINT"))
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
            "verifiable": ["id_no", "name", "birth_date"],
        }
    )
    engine = create_engine(url)
    with Session(engine) as session:
        _, key = create_client(session=session, code="bench", name="压测", policy=policy, operator="bench")
        session.commit()
    engine.dispose()
    return key


def _start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    # Every failed verification of the batch benchmark counted and compared, never cut short by the
    # limit on guessing (its rounds verify the same persons again).
    env = {**os.environ, "POPEX_DATABASE_URL": url, "POPEX_SHARING_VERIFY_FAILURES_PER_DAY": "1000000"}
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


def _cpu_seconds(server: subprocess.Popen[bytes], database: str) -> dict[str, float]:
    """CPU seconds used so far: by uvicorn and its workers, by the PostgreSQL backends connected to
    `database` (their process title names it), by finished children (wrk)."""
    import resource

    import psutil

    def used(p: psutil.Process) -> float:
        try:
            t = p.cpu_times()
        except psutil.Error:  # gone meanwhile
            return 0.0
        return float(t.user + t.system)

    root = psutil.Process(server.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "server": used(root) + sum(used(p) for p in root.children(recursive=True)),
        "postgres": sum(
            used(p)
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" and f" {database} " in " ".join(p.info["cmdline"] or ()) + " "
        ),
        "wrk": children.ru_utime + children.ru_stime,
    }


def _wrk(port: int, script: Path, *, seconds: int, connections: int, threads: int) -> dict[str, int]:
    assert WRK is not None
    out = subprocess.run(  # noqa: S603 (a fixed command line of our own)
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    return dict(json.loads(line.removeprefix("WRK_JSON ")))


def _load_run(
    server: subprocess.Popen[bytes],
    port: int,
    *,
    key: str,
    persons: int,
    rate: int,
    seconds: int,
    connections: int,
    threads: int,
    database: str,
) -> LoadRun:
    """One wrk run at an offered rate (0: closed loop), with the CPU every party used for it."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "lookup.lua"
        interval_ms = threads * 1000 / rate if rate else 0
        script.write_text(WRK_SCRIPT.format(n=persons, key=key, interval_ms=interval_ms))
        loop = python_loop_seconds(runs=1)
        before = _cpu_seconds(server, database)
        figures = _wrk(port, script, seconds=seconds, connections=connections, threads=threads)
        after = _cpu_seconds(server, database)
    n = max(figures["requests"], 1)
    per_request = {k: round((after[k] - before[k]) * 1000 / n, 3) for k in before}
    return LoadRun(
        rate=rate,
        requests=figures["requests"],
        requests_per_second=round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        errors=figures["errors"],
        non_2xx=figures["non_2xx"],
        server_cpu_ms=per_request["server"],
        postgres_cpu_ms=per_request["postgres"],
        wrk_cpu_ms=per_request["wrk"],
        python_loop_s=loop,
    )


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
    threads: int = 1,
    batch_rounds: int = 20,
    rates: tuple[int, ...] = (1000, 1500),
    repeats: int = 3,
    keep: bool = False,
) -> BenchResult:
    """Load, serve, measure, check the audit; the dedicated database is dropped unless keep."""
    if WRK is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    # A database of this run's own: on a shared machine a fixed name let one run drop another's
    # database in the middle of it (DROP … WITH (FORCE)).
    database = f"popex_bench_{os.getpid()}"
    url = create_database(database)
    server = None
    try:
        load_seconds = _load(url, persons)
        key = _create_client(url)
        port = _free_port()
        server = _start_server(url, port, workers)
        python_loop = python_loop_seconds()
        load_average = os.getloadavg()[0]
        run = functools.partial(
            _load_run,
            server,
            port,
            key=key,
            persons=persons,
            connections=connections,
            threads=threads,
            database=database,
        )
        warm_up = run(rate=0, seconds=5)
        unpaced = run(rate=0, seconds=seconds)
        paced = [run(rate=rate, seconds=seconds) for rate in rates for _ in range(repeats)]
        batch_ms, matched = _batches(port, key, persons, batch_rounds)
        load_average_after = os.getloadavg()[0]
        python_loop_after = python_loop_seconds()
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
            drop_database(database)
    return BenchResult(
        database=database,
        persons=persons,
        workers=workers,
        connections=connections,
        seconds=seconds,
        unpaced=unpaced,
        paced=paced,
        batch_ms_median=round(statistics.median(batch_ms), 1),
        batch_ms_max=round(max(batch_ms), 1),
        batch_matched=matched,
        load_average=round(load_average, 2),
        load_average_after=round(load_average_after, 2),
        python_loop_s=python_loop,
        python_loop_after_s=python_loop_after,
        requests_sent=sum(r.requests for r in (warm_up, unpaced, *paced)) + batch_rounds,
        audit_rows=audit_rows,
        audit_chain_ok=chain_ok,
        load_seconds=round(load_seconds, 1),
        machine=_machine(),
    )


def main(
    persons: Annotated[int, typer.Option(help="合成人口数")] = 1_000_000,
    seconds: Annotated[int, typer.Option(help="每轮压测时长（秒）")] = 30,
    connections: Annotated[int, typer.Option(help="并发连接数")] = 64,
    workers: Annotated[int, typer.Option(help="uvicorn 进程数")] = 2,
    rate: Annotated[list[int] | None, typer.Option(help="限速压测的目标请求率（可重复）")] = None,
    repeats: Annotated[int, typer.Option(help="每个请求率重复的轮数")] = 3,
    keep: Annotated[bool, typer.Option(help="保留压测数据库（库名见输出的 database）")] = False,
) -> None:
    """Run the benchmark and print its figures as JSON."""
    result = run_benchmark(
        persons=persons,
        seconds=seconds,
        connections=connections,
        workers=workers,
        rates=tuple(rate or (1000, 1500)),
        repeats=repeats,
        keep=keep,
    )
    print(json.dumps(asdict(result), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    typer.run(main)
