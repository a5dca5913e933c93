"""The server's own backends over real HTTP: reads grouped per loop pass, audit grouped per commit.

The other API tests read and audit in the test's transaction (`Backends.of_session`); here the app is
served by uvicorn as in production, on a database of the module's own, and many requests arrive at
once, so that groups form: every request must get its own person's answer and leave its own record.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from base.settings import database_settings
from popex.app import create_app
from registry.audit import verify_chain
from sharing_api.clients import create_client
from sharing_api.dependencies import api_engine
from tests.browser import served
from tests.sharing_api.support import (
    AWAY,
    PURPOSE,
    birth_date_iso,
    event,
    person,
    policy,
    reset_server_backends,
)


@pytest.fixture
def server_on(own_db: str) -> Iterator[str]:
    """The app with the server's backends on own_db, served on a free port; yields its base URL."""

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POPEX_DATABASE_URL", own_db)
        reset_server_backends()
        try:
            with served(create_app()) as address:
                yield address
        finally:
            reset_server_backends()
    database_settings.cache_clear()


def test_concurrent_requests_each_get_their_own_answer_and_audit_record(own_db: str, server_on: str) -> None:
    engine = create_engine(own_db)
    with Session(engine) as session:
        people = [person(session, name=f"甲{i}") for i in range(20)]
        survivor = people[0]
        retired = [person(session, name="乙", status="retired", merged_into=survivor.id) for _ in range(5)]
        away = [person(session, name="丙", community_code=AWAY) for _ in range(5)]
        _, key = create_client(
            session=session, code="server_t", name="服务测试", policy=policy(), operator="t"
        )
        session.commit()
        docs = {p.id_no: (p.person_no, p.name, birth_date_iso(p)) for p in people}
        retired_nos = [p.person_no for p in retired]
        away_docs = [p.id_no for p in away]
        survivor_no = survivor.person_no
        before = session.scalar(text("SELECT count(*) FROM audit_log")) or 0
    headers = {"X-API-Key": key, "X-End-User": "clerk-9", "X-Purpose": PURPOSE}

    async def all_at_once() -> list[tuple[str, Any, httpx.Response]]:
        async with httpx.AsyncClient(base_url=server_on, headers=headers, timeout=30) as http:
            asks: list[tuple[str, Any, Any]] = []
            for doc in docs:
                assert doc is not None
                asks.append(("lookup", doc, http.post("/api/v1/persons/lookup", json={"id_no": doc})))
                _, name, born = docs[doc]
                # a wrong name of its own: one claim failing for many documents would reach the limit
                wrong = name if doc.endswith(("0", "2", "4", "6", "8")) else f"别{name}"
                body = {"id_no": doc, "name": wrong, "birth_date": born}
                asks.append(("verify", (doc, wrong == name), http.post("/api/v1/verify", json=body)))
            for no in retired_nos:
                asks.append(("merged", no, http.get(f"/api/v1/persons/{no}")))
            for doc in away_docs:
                asks.append(("away", doc, http.post("/api/v1/persons/lookup", json={"id_no": doc})))
            answers = await asyncio.gather(*(call for _, _, call in asks))
            return [(kind, what, answer) for (kind, what, _), answer in zip(asks, answers, strict=True)]

    answered = asyncio.run(all_at_once())
    assert len(answered) == 20 + 20 + 5 + 5
    for kind, what, response in answered:
        if kind == "lookup":
            assert response.status_code == 200, response.text
            assert response.json()["person_no"] == docs[what][0]
            assert response.json()["name"] == docs[what][1]
        elif kind == "verify":
            assert response.status_code == 200, response.text
            assert response.json()["match"] is what[1]
        elif kind == "merged":
            assert response.status_code == 200, response.text
            assert response.json()["person_no"] == survivor_no
            assert response.json()["merged_from"] == what
        else:
            assert response.status_code == 404
            assert response.json()["code"] == "PERSON_NOT_FOUND"

    with Session(engine) as session:
        rows = session.execute(
            text("SELECT detail FROM audit_log WHERE id > 0 ORDER BY id OFFSET :n"), {"n": before}
        ).scalars()
        details = [d for d in rows if d.get("client") == "server_t"]
        assert verify_chain(session=session).ok
    engine.dispose()
    assert len(details) == len(answered)  # one record per request, none doubled
    looked_up = sorted(
        d["person_nos"][0] for d in details if d["operation"] == "lookup" and d["outcome"] == "ok"
    )
    assert looked_up == sorted([docs[d][0] for d in docs] + [survivor_no] * 5)
    assert sum(d["outcome"] == "not_found" for d in details) == 5


def test_after_a_database_restart_a_thread_pool_route_answers_503_json_then_recovers(
    own_db: str, server_on: str
) -> None:
    engine = create_engine(own_db)
    with Session(engine) as session:
        p = person(session, name="丁一")
        _, key = create_client(
            session=session, code="server_r", name="重启测试", policy=policy(), operator="t"
        )
        session.commit()
        search = {"name": "丁一", "birth_date": birth_date_iso(p)}
    headers = {"X-API-Key": key, "X-End-User": "clerk-9", "X-Purpose": PURPOSE}
    with httpx.Client(base_url=server_on, headers=headers, timeout=30) as http:
        assert http.post("/api/v1/persons/search", json=search).json()["items"][0]["name"] == "丁一"
        with engine.connect() as conn:  # the pooled connections of the API die, as in a restart
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND application_name NOT IN ('popex-audit', 'popex-reads')"
                )
            ).all()
        assert ended
        failed = http.post("/api/v1/persons/search", json=search)
        assert failed.status_code == 503
        assert failed.json()["code"] == "DATABASE_UNAVAILABLE" and "丁一" not in failed.text
        again = http.post("/api/v1/persons/search", json=search)  # the pool opened new connections
        assert again.status_code == 200 and again.json()["items"][0]["name"] == "丁一"
    with engine.connect() as conn:  # the audit writer's own connection lived: the failure is on record
        outcomes = conn.execute(
            text(
                "SELECT detail ->> 'outcome', detail ->> 'code' FROM audit_log"
                " WHERE detail ->> 'client' = 'server_r' AND detail ->> 'purpose' <> 'administration' ORDER BY id"
            )
        ).all()
    engine.dispose()
    assert [tuple(o) for o in outcomes] == [("ok", None), ("error", "DATABASE_UNAVAILABLE"), ("ok", None)]


def test_every_endpoint_answers_through_the_servers_database_role(own_db: str, server_on: str) -> None:
    """The served app connects as popex_sharing (migration 0103): every endpoint still has what it reads."""
    engine = create_engine(own_db)
    with Session(engine) as session:
        p = person(session, name="戊一")
        event(session, p, "died")
        _, key = create_client(
            session=session, code="server_role", name="角色测试", policy=policy(), operator="t"
        )
        session.commit()
        no, doc, born = p.person_no, p.id_no, birth_date_iso(p)
    engine.dispose()
    headers = {"X-API-Key": key, "X-End-User": "clerk-9", "X-Purpose": PURPOSE}
    verify = {"id_no": doc, "name": "戊一", "birth_date": born}
    with httpx.Client(base_url=server_on, headers=headers, timeout=30) as http:
        answers = {
            "number": http.get(f"/api/v1/persons/{no}"),
            "document": http.post("/api/v1/persons/lookup", json={"id_no": doc}),
            "search": http.post("/api/v1/persons/search", json={"name": "戊一", "birth_date": born}),
            "verify": http.post("/api/v1/verify", json=verify),
            "batch": http.post("/api/v1/verify/batch", json={"items": [verify, {**verify, "name": "别人"}]}),
            "changes": http.get("/api/v1/changes", params={"event_type": "died"}),
            "baseline": http.get("/api/v1/baseline"),
            "history": http.get(f"/api/v1/persons/{no}/access-history"),
        }
    for what, answer in answers.items():
        assert answer.status_code == 200, (what, answer.text)
    assert answers["number"].json()["name"] == answers["document"].json()["name"] == "戊一"
    assert [i["person_no"] for i in answers["search"].json()["items"]] == [no]
    assert answers["verify"].json()["match"] is True
    assert [r["match"] for r in answers["batch"].json()["results"]] == [True, False]
    assert ("died", no) in [(i["event_type"], i["person_no"]) for i in answers["changes"].json()["items"]]
    assert no in [
        i["person_no"] for i in answers["baseline"].json()["items"]
    ]  # module's database: others too
    # The seven requests before it, each audited through the role, are in the person's history.
    assert len(answers["history"].json()["items"]) == 7
    with api_engine().connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == "popex_sharing"
