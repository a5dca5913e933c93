"""The single-person lookups' direct path (sharing_api/router.py `direct`, answered at the app's edge by
sharing_api/edge.py): the same answers, headers and audit records as through Starlette's middleware and
router and FastAPI's request handler, which still take every request the path declines."""

from collections.abc import Iterator

import fastapi.routing
import pytest
import starlette.exceptions
import starlette.routing
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import sharing_api.service
from popex.app import create_app
from sharing_api import router
from sharing_api.dependencies import Backends, get_session
from tests.sharing_api.support import audit_rows, last_audit_id, person


def _client(session: Session) -> TestClient:
    application = create_app()
    application.dependency_overrides[get_session] = lambda: session
    application.state.sharing_backends = Backends.of_session(session)
    return TestClient(application)


@pytest.fixture
def plain(session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app built with no direct paths: every request through FastAPI's handler."""
    with monkeypatch.context() as patch:
        patch.setattr(router, "_DIRECT", {})
        client = _client(session)
    with client:
        yield client


def _exchange(http: TestClient, session: Session, method: str, url: str, **kwargs):
    before = last_audit_id(session)
    response = http.request(method, url, **kwargs)
    records = [(r.actor, r.action, r.object_type, r.object_id, r.detail) for r in audit_rows(session, before)]
    return response.status_code, sorted(response.headers.items()), response.content, records


def test_direct_answers_and_audit_equal_fastapis(http, plain, session, new_client) -> None:
    p = person(session, name="张三", id_no="33010219900307123X", phone="13812345678")
    survivor = person(session, name="王五", id_no="330102199003071111")
    retired = person(session, name="王五", id_no=None, status="retired")
    retired.merged_into = survivor.id
    session.flush()
    headers = new_client(unmasked=["phone"])
    requests = [
        ("GET", f"/api/v1/persons/{p.person_no}", {}),
        ("GET", f"/api/v1/persons/{p.person_no}?fields=name&fields=id_no", {}),
        ("GET", f"/api/v1/persons/{retired.person_no}", {}),
        ("GET", "/api/v1/persons/P99999999999", {}),
        ("GET", f"/api/v1/persons/{p.person_no}?fields=ethnicity", {}),  # not granted: refused
        ("POST", "/api/v1/persons/lookup", {"json": {"id_no": " 330102 19900307 123x"}}),
        ("POST", "/api/v1/persons/lookup", {"json": {"id_type": "RID", "id_no": "330102199003071111"}}),
        ("POST", "/api/v1/persons/lookup?fields=name", {"json": {"id_no": "33010219900307123X"}}),
        ("POST", "/api/v1/persons/lookup", {"json": {"id_no": "330102199901010000"}}),  # no one
    ]
    for method, url, kwargs in requests:
        direct = _exchange(http, session, method, url, headers=headers, **kwargs)
        through_fastapi = _exchange(plain, session, method, url, headers=headers, **kwargs)
        assert direct == through_fastapi, url
        assert direct[3], url  # one audit record each way


@pytest.mark.parametrize(
    ("url", "content", "content_type"),
    [
        ("/api/v1/persons/lookup", b'{"id_no": "330102199003071234", "extra": 1}', "application/json"),
        ("/api/v1/persons/lookup", b'{"id_no": ', "application/json"),
        ("/api/v1/persons/lookup", b"[" * 100_000, "application/json"),
        ("/api/v1/persons/lookup", b'{"id_no": "\xff"}', "application/json"),
        ("/api/v1/persons/lookup", b'{"id_no": "330102199003071234"}', "text/plain"),
        ("/api/v1/persons/lookup", b'{"id_no": "330102199003071234"}', None),
        ("/api/v1/persons/lookup", b"", "application/json"),
        ("/api/v1/persons/lookup", b'{"id_type": "XX", "id_no": "330102199003071234"}', "application/json"),
        ("/api/v1/persons/P\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661", None, None),
        ("/api/v1/persons/P123", None, None),
    ],
)
def test_what_the_direct_path_declines_is_answered_as_before(
    url, content, content_type, http, plain, session, new_client
) -> None:
    headers = new_client()
    if content_type:
        headers["Content-Type"] = content_type
    method = "GET" if content is None else "POST"
    direct = _exchange(http, session, method, url, headers=headers, content=content)
    through_fastapi = _exchange(plain, session, method, url, headers=headers, content=content)
    assert direct == through_fastapi


def test_a_well_formed_lookup_does_not_go_through_fastapis_handler(
    http, plain, session, new_client, monkeypatch
) -> None:
    p = person(session, id_no="330102199003071234")
    headers = new_client()

    async def refuse(*args, **kwargs):
        raise AssertionError("FastAPI's dependency solving ran")

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", refuse)
    assert http.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 200
    found = http.post("/api/v1/persons/lookup", json={"id_no": "330102199003071234"}, headers=headers)
    assert found.status_code == 200
    # The same request without the direct path reaches the patched solver (a fault: 500).
    assert plain.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 500


def test_a_well_formed_lookup_skips_starlettes_middleware_and_router(
    http, plain, session, new_client, monkeypatch
) -> None:
    p = person(session, id_no="330102199003071235")
    headers = new_client()

    async def refuse(*args, **kwargs):
        raise AssertionError("Starlette's router handed the request to its route")

    monkeypatch.setattr(starlette.routing.Route, "handle", refuse)
    assert http.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 200
    assert (
        http.post("/api/v1/persons/lookup", json={"id_no": "330102199003071235"}, headers=headers).status_code
        == 200
    )
    # A lookup the route's parser declines is still the edge's (FastAPI's handler answers it) …
    assert http.get("/api/v1/persons/P123", headers=headers).status_code == 422
    # … any other route goes through the router, and so does every request of an app without direct paths.
    assert http.get("/healthz").status_code == 500
    assert plain.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 500


def test_an_http_exception_out_of_a_lookup_is_answered_as_starlette_would(
    http, plain, session, new_client, monkeypatch
) -> None:
    p = person(session, id_no="330102199003071236")
    headers = new_client()

    async def conflict(**kwargs):
        raise starlette.exceptions.HTTPException(status_code=409, detail="冲突")

    monkeypatch.setattr(sharing_api.service, "lookup_by_number", conflict)
    url = f"/api/v1/persons/{p.person_no}"
    direct = _exchange(http, session, "GET", url, headers=headers)
    assert direct[0] == 409
    assert direct == _exchange(plain, session, "GET", url, headers=headers)
