"""Reads that scale out: a streaming replica for the reads, PgBouncer in transaction mode, Redis buckets.

The replica is real: a primary and a hot standby started by the test (tests/pgcluster.py), the app
served by uvicorn with POPEX_DATABASE_URL on the primary and POPEX_SHARING_REPLICA_URL on the standby.
"""

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from base.settings import ROOT
from popex.app import create_app
from registry.migrate import upgrade
from sharing_api.audit import GroupCommitAudit
from sharing_api.clients import create_client
from sharing_api.dependencies import _server_backends, api_engine, read_engine
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.policy import RateLimit
from sharing_api.ratelimit import RedisRateLimiter
from sharing_api.reads import GroupedReads
from tests.browser import served
from tests.pgcluster import Cluster, free_port, pgbouncer, primary_and_replica
from tests.sharing_api.support import PURPOSE, event, person, policy, reset_server_backends

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A migrated primary and its streaming replica, for this module."""
    with primary_and_replica() as pair:
        engine = create_engine(pair.primary)
        with engine.begin() as conn:
            upgrade(conn)
        engine.dispose()
        pair.wait_replayed()
        yield pair


@contextmanager
def serving(**env: str) -> Iterator[str]:
    """The app with the server's backends under these POPEX_ settings, on a free port; yields its URL."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        reset_server_backends()
        try:
            with served(create_app()) as address:
                yield address
        finally:
            reset_server_backends()
    reset_server_backends()


def _client_and_person(url: str, name: str, **limits: Any) -> tuple[dict[str, str], Any]:
    """A client (headers that authenticate it, its code in X-Client for the test) and a person who died."""
    engine = create_engine(url)
    code = f"scale_{uuid.uuid4().hex[:8]}"
    with Session(engine, expire_on_commit=False) as session:
        p = person(session, name=name)
        event(session, p, "died")
        _, key = create_client(
            session=session,
            code=code,
            name="扩展测试",
            policy=policy(**limits),
            operator="t",
        )
        session.commit()
    engine.dispose()
    return {"X-API-Key": key, "X-End-User": "clerk-9", "X-Purpose": PURPOSE, "X-Client": code}, p


def _every_endpoint(address: str, headers: dict[str, str], p: Any) -> dict[str, httpx.Response]:
    no, doc, born = p.person_no, p.id_no, p.birth_date.isoformat()
    verify = {"id_no": doc, "name": p.name, "birth_date": born}
    with httpx.Client(base_url=address, headers=headers, timeout=30) as http:
        return {
            "number": http.get(f"/api/v1/persons/{no}"),
            "document": http.post("/api/v1/persons/lookup", json={"id_no": doc}),
            "search": http.post("/api/v1/persons/search", json={"name": p.name, "birth_date": born}),
            "verify": http.post("/api/v1/verify", json=verify),
            "changes": http.get("/api/v1/changes", params={"event_type": "died"}),
            "baseline": http.get("/api/v1/baseline"),
            "history": http.get(f"/api/v1/persons/{no}/access-history"),
        }


def _sessions(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = set(conn.scalars(text("SELECT application_name FROM pg_stat_activity")))
    engine.dispose()
    return names


def test_reads_come_from_the_replica_and_audit_goes_to_the_primary(cluster: Cluster) -> None:
    headers, p = _client_and_person(cluster.primary, "庚一")
    cluster.wait_replayed()
    with serving(POPEX_DATABASE_URL=cluster.primary, POPEX_SHARING_REPLICA_URL=cluster.replica) as address:
        answers = _every_endpoint(address, headers, p)
        for what, answer in answers.items():
            assert answer.status_code == 200, (what, answer.text)
        assert answers["number"].json()["name"] == answers["document"].json()["name"] == "庚一"
        assert [i["person_no"] for i in answers["search"].json()["items"]] == [p.person_no]
        assert p.person_no in [i["person_no"] for i in answers["changes"].json()["items"]]
        # The thread-pool routes' reads on the standby, the rest (verify, history, clients) on the primary.
        with read_engine().connect() as conn:
            assert conn.scalar(text("SELECT pg_is_in_recovery()")) is True
        with api_engine().connect() as conn:
            assert conn.scalar(text("SELECT pg_is_in_recovery()")) is False
        # The loop's grouped reads on the standby, its audit commits on the primary.
        assert "popex-reads" in _sessions(cluster.replica)
        assert "popex-reads" not in _sessions(cluster.primary)
        assert "popex-audit" in _sessions(cluster.primary)
    # Every request before the history was audited on the primary (the history reads it there).
    assert len(answers["history"].json()["items"]) == 6


def test_a_person_written_meanwhile_is_not_found_until_the_replica_has_replayed_it(cluster: Cluster) -> None:
    headers, _ = _client_and_person(cluster.primary, "庚二")
    cluster.wait_replayed()
    replica = create_engine(cluster.replica, isolation_level="AUTOCOMMIT")
    with replica.connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_pause()"))
    try:
        engine = create_engine(cluster.primary)
        with Session(engine) as session:
            new = person(session, name="庚三")
            session.commit()
            no = new.person_no
        engine.dispose()
        with (
            serving(POPEX_DATABASE_URL=cluster.primary, POPEX_SHARING_REPLICA_URL=cluster.replica) as address,
            httpx.Client(base_url=address, headers=headers, timeout=30) as http,
        ):
            before = http.get(f"/api/v1/persons/{no}")
            assert before.status_code == 404
            assert before.json()["code"] == "PERSON_NOT_FOUND"
            with replica.connect() as conn:
                conn.execute(text("SELECT pg_wal_replay_resume()"))
            cluster.wait_replayed()
            after = http.get(f"/api/v1/persons/{no}")
            assert after.status_code == 200
            assert after.json()["name"] == "庚三"
    finally:
        with replica.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))
        replica.dispose()
    # Both answers audited on the primary, in order: not found (the lag), then found.
    engine = create_engine(cluster.primary)
    with engine.connect() as conn:
        outcomes = conn.execute(
            text(
                "SELECT detail->>'outcome', detail->'person_nos' FROM audit_log WHERE detail->>'client' = :c AND detail->>'end_user' = 'clerk-9' ORDER BY id"
            ),
            {"c": headers["X-Client"]},
        ).all()
    engine.dispose()
    assert [tuple(o) for o in outcomes] == [("not_found", []), ("ok", [no])]


def _port(url: str) -> int:
    port = make_url(url).port
    assert port is not None
    return port


def test_behind_pgbouncer_in_transaction_mode(cluster: Cluster) -> None:
    """Two server connections for every client connection the app opens: statements of one client
    connection land on different server connections, so nothing may be left on one."""
    headers, p = _client_and_person(cluster.primary, "辛一")
    cluster.wait_replayed()
    with (
        pgbouncer(_port(cluster.primary), cluster.root, pool_size=2) as primary_port,
        pgbouncer(_port(cluster.replica), cluster.root, pool_size=2) as replica_port,
    ):
        primary = make_url(cluster.primary).set(port=primary_port).render_as_string(hide_password=False)
        replica = make_url(cluster.replica).set(port=replica_port).render_as_string(hide_password=False)
        with serving(
            POPEX_DATABASE_URL=primary,
            POPEX_SHARING_REPLICA_URL=replica,
            POPEX_SHARING_TRANSACTION_POOLING="true",
        ) as address:
            for _ in range(3):  # again and again: each time on whichever server connection is free
                answers = _every_endpoint(address, headers, p)
                for what, answer in answers.items():
                    assert answer.status_code == 200, (what, answer.text)
                assert answers["number"].json()["name"] == "辛一"
            # The loop's statements carry their role and timeouts themselves, and prepare nothing.
            backends = _server_backends()
            assert isinstance(backends.reads, GroupedReads) and isinstance(backends.audit, GroupCommitAudit)
            sql = backends.reads._sql()
            assert sql.startswith("SET LOCAL statement_timeout = 2000; ")
            assert "SET LOCAL role = popex_sharing; " in sql
            assert "PREPARE" not in sql and "PREPARE" not in backends.audit._sql()
        # Verification's per-client lock was a transaction's: none is left on any server connection.
        engine = create_engine(cluster.primary)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")) == 0
        engine.dispose()


# Redis: one bucket for every process of every host.

SLOW = RateLimit(per_second=0.001, burst=20)


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")


def _allowed(client: str, tries: int) -> int:
    limiter = RedisRateLimiter(REDIS)
    return sum(limiter.take(client, SLOW) == 0 for _ in range(tries))


def test_four_processes_on_one_redis_bucket_get_exactly_its_burst() -> None:
    _redis_or_skip()
    client = f"test_{uuid.uuid4().hex}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        allowed = pool.starmap(_allowed, [(client, 200)] * 4)
    assert sum(allowed) == SLOW.burst


def test_a_redis_bucket_refills_and_starts_full_on_a_changed_policy() -> None:
    _redis_or_skip()
    limiter, client = RedisRateLimiter(REDIS), f"test_{uuid.uuid4().hex}"
    limit = RateLimit(per_second=1, burst=2)
    assert [limiter.take(client, limit, now=100.0) for _ in range(3)] == [0, 0, 1.0]
    assert limiter.take(client, limit, now=101.0) == 0  # a second later, one token back
    assert limiter.left(client, RateLimit(per_second=1, burst=5), now=101.0) == 5


@contextmanager
def _uvicorn(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "popex.app:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_two_servers_with_files_of_their_own_share_one_budget_through_redis(
    own_db: str, tmp_path: Any
) -> None:
    _redis_or_skip()
    headers, p = _client_and_person(own_db, "壬一", rate_limit={"per_second": 0.001, "burst": 10})
    env = {"POPEX_DATABASE_URL": own_db, "POPEX_SHARING_RATE_REDIS_URL": REDIS}
    with (
        _uvicorn({**env, "POPEX_SHARING_RATE_FILE": str(tmp_path / "a")}) as first,
        _uvicorn({**env, "POPEX_SHARING_RATE_FILE": str(tmp_path / "b")}) as second,
    ):
        codes = [
            httpx.get(f"{server}/api/v1/persons/{p.person_no}", headers=headers, timeout=30).status_code
            for _ in range(10)
            for server in (first, second)
        ]
    assert codes.count(200) == 10  # the policy's burst once, not once per server
    assert codes.count(429) == 10


def test_with_redis_unreachable_the_api_refuses_in_words_and_grants_nothing(
    own_db: str, tmp_path: Any
) -> None:
    """The shared buckets' Redis down (nothing listens on its port): 503 RATE_LIMIT_UNAVAILABLE, never a
    500 and never a request let through unlimited."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SharingError) as refused:
        RedisRateLimiter(down).take("c", SLOW)
    assert refused.value.code == ErrorCode.RATE_LIMIT_UNAVAILABLE
    headers, p = _client_and_person(own_db, "癸一")
    env = {"POPEX_DATABASE_URL": own_db, "POPEX_SHARING_RATE_REDIS_URL": down}
    with _uvicorn({**env, "POPEX_SHARING_RATE_FILE": str(tmp_path / "a")}) as server:
        answers = [
            httpx.get(f"{server}/api/v1/persons/{p.person_no}", headers=headers, timeout=30) for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert answers[0].json()["code"] == "RATE_LIMIT_UNAVAILABLE"
    assert "访问频率控制服务暂时无法访问" in answers[0].json()["message"]
