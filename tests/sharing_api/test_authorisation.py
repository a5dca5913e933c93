"""The authorisation matrix: every endpoint × every way a request can be refused, over HTTP."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from registry.models import Person
from sharing_api.dependencies import client_cache
from sharing_api.policy import Operation, PersonField
from tests.sharing_api.support import (
    AWAY,
    PURPOSE,
    audit_rows,
    birth_date_iso,
    client_code,
    last_audit_id,
    person,
)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: how to call it for a person, and how to ask it for a field or an area."""

    name: str
    operation: Operation
    call: Callable[[TestClient, Person, dict[str, str], dict[str, Any]], Any]


def _verify_body(p: Person) -> dict[str, Any]:
    return {"id_no": p.id_no, "name": p.name, "birth_date": birth_date_iso(p)}


ENDPOINTS = [
    Endpoint(
        "lookup_by_number",
        Operation.LOOKUP,
        lambda http, p, h, q: http.get(f"/api/v1/persons/{p.person_no}", headers=h, params=q),
    ),
    Endpoint(
        "lookup_by_document",
        Operation.LOOKUP,
        lambda http, p, h, q: http.post(
            "/api/v1/persons/lookup", json={"id_no": p.id_no}, headers=h, params=q
        ),
    ),
    Endpoint(
        "search",
        Operation.SEARCH,
        lambda http, p, h, q: http.post(
            "/api/v1/persons/search",
            json={"name": p.name, "birth_date": birth_date_iso(p), **q.get("body", {})},
            headers=h,
            params={k: v for k, v in q.items() if k != "body"},
        ),
    ),
    Endpoint(
        "verify",
        Operation.VERIFY,
        lambda http, p, h, q: http.post(
            "/api/v1/verify", json={**_verify_body(p), **q.get("body", {})}, headers=h
        ),
    ),
    Endpoint(
        "verify_batch",
        Operation.VERIFY,
        lambda http, p, h, q: http.post(
            "/api/v1/verify/batch", json={"items": [_verify_body(p)], **q.get("body", {})}, headers=h
        ),
    ),
    Endpoint(
        "changes", Operation.CHANGES, lambda http, p, h, q: http.get("/api/v1/changes", headers=h, params=q)
    ),
    Endpoint(
        "baseline",
        Operation.BASELINE,
        lambda http, p, h, q: http.get("/api/v1/baseline", headers=h, params=q),
    ),
    Endpoint(
        "access_history",
        Operation.ACCESS_HISTORY,
        lambda http, p, h, q: http.get(f"/api/v1/persons/{p.person_no}/access-history", headers=h, params=q),
    ),
]
BY_NAME = {e.name: e for e in ENDPOINTS}
each_endpoint = pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])


@pytest.fixture(autouse=True)
def _fresh_client_cache() -> None:
    client_cache.clear()


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"]  # a Chinese message for the caller


@each_endpoint
def test_allowed_request_succeeds(endpoint: Endpoint, http, session, new_client) -> None:
    p = person(session, name="张三")
    response = endpoint.call(http, p, new_client(), {})
    assert response.status_code == 200, response.text


@each_endpoint
def test_no_credential(endpoint: Endpoint, http, session, new_client) -> None:
    headers = new_client()
    del headers["X-API-Key"]
    _error(endpoint.call(http, person(session), headers, {}), 401, "CREDENTIAL_MISSING")


@each_endpoint
def test_invalid_credential(endpoint: Endpoint, http, session, new_client) -> None:
    headers = {**new_client(), "X-API-Key": "pxk_" + "x" * 43}
    _error(endpoint.call(http, person(session), headers, {}), 401, "CREDENTIAL_INVALID")


@each_endpoint
def test_expired_credential(endpoint: Endpoint, http, session, new_client) -> None:
    """An expired key is answered like an unknown one: the answer confirms nothing about a key."""
    _error(endpoint.call(http, person(session), new_client(expired=True), {}), 401, "CREDENTIAL_INVALID")


@each_endpoint
def test_disabled_client(endpoint: Endpoint, http, session, new_client) -> None:
    from sharing_api.clients import set_status

    headers = new_client()
    set_status(session=session, code=client_code(session, headers), active=False, operator="tester")
    _error(endpoint.call(http, person(session), headers, {}), 401, "CREDENTIAL_INVALID")


@each_endpoint
@pytest.mark.parametrize(
    ("header", "code"), [("X-End-User", "END_USER_REQUIRED"), ("X-Purpose", "PURPOSE_REQUIRED")]
)
def test_missing_header(endpoint: Endpoint, header: str, code: str, http, session, new_client) -> None:
    headers = new_client()
    del headers[header]
    _error(endpoint.call(http, person(session), headers, {}), 400, code)


@each_endpoint
def test_purpose_not_allowed(endpoint: Endpoint, http, session, new_client) -> None:
    headers = {**new_client(), "X-Purpose": "marketing"}
    before = last_audit_id(session)
    _error(endpoint.call(http, person(session), headers, {}), 403, "PURPOSE_NOT_ALLOWED")
    [row] = audit_rows(session, before)
    assert row.detail["outcome"] == "refused" and row.detail["code"] == "PURPOSE_NOT_ALLOWED"
    assert row.detail["purpose"] == "marketing" and row.detail["person_nos"] == []


@each_endpoint
def test_operation_not_granted(endpoint: Endpoint, http, session, new_client) -> None:
    others = [o.value for o in Operation if o != endpoint.operation]
    _error(
        endpoint.call(http, person(session), new_client(operations=others), {}), 403, "OPERATION_NOT_GRANTED"
    )


# Asking for a field the policy does not grant. Verification returns no field, but alive and resident
# reveal the status, so asking for them needs `status`; the access history returns no person attribute.
FIELD_REQUESTS: dict[str, dict[str, Any]] = {
    "lookup_by_number": {"fields": ["phone"]},
    "lookup_by_document": {"fields": ["phone"]},
    "search": {"fields": ["phone"]},
    "verify": {"body": {"checks": ["alive"]}},
    "verify_batch": {"body": {"checks": ["resident"]}},
    "changes": {"fields": ["phone"]},
    "baseline": {"fields": ["phone"]},
}


@pytest.mark.parametrize("name", list(FIELD_REQUESTS))
def test_field_not_granted(name: str, http, session, new_client) -> None:
    granted = [f.value for f in PersonField if f not in (PersonField.PHONE, PersonField.STATUS)]
    before = last_audit_id(session)
    response = BY_NAME[name].call(http, person(session), new_client(fields=granted), FIELD_REQUESTS[name])
    _error(response, 403, "FIELD_NOT_GRANTED")
    [row] = audit_rows(session, before)
    assert row.detail["outcome"] == "refused" and row.detail["code"] == "FIELD_NOT_GRANTED"


def test_access_history_returns_no_person_field(http, session, new_client) -> None:
    """The one endpoint without a field cell: its items hold who/when/why, never an attribute."""
    p = person(session)
    headers = new_client(fields=["name"])
    http.get(f"/api/v1/persons/{p.person_no}", headers=headers)
    items = http.get(f"/api/v1/persons/{p.person_no}/access-history", headers=headers).json()["items"]
    assert set(items[0]) == {"at", "client", "end_user", "purpose", "operation", "outcome", "fields"}
    assert items[0]["fields"] == ["name"]


@each_endpoint
def test_wrong_area(endpoint: Endpoint, http, session, new_client) -> None:
    """A person outside the client's areas is as good as absent; an area filter outside them is refused."""
    away = person(session, community_code=AWAY)
    headers = new_client()
    response = endpoint.call(http, away, headers, {})
    if endpoint.name in ("lookup_by_number", "lookup_by_document", "access_history"):
        _error(response, 404, "PERSON_NOT_FOUND")
    elif endpoint.name == "verify":
        assert response.json() == {"match": False}
    elif endpoint.name == "verify_batch":
        assert response.json() == {"results": [{"match": False}], "matched": 0, "limited": 0}
    elif endpoint.name == "search":
        assert response.json() == {"items": [], "truncated": False}
        refused = endpoint.call(http, away, headers, {"body": {"area": AWAY}})
        _error(refused, 403, "AREA_NOT_GRANTED")
    else:  # changes, baseline: nothing of the person, and an area filter outside is refused
        assert away.person_no not in response.text
        _error(endpoint.call(http, away, headers, {"area": AWAY}), 403, "AREA_NOT_GRANTED")


@each_endpoint
def test_over_rate_limit(endpoint: Endpoint, http, session, new_client) -> None:
    headers = new_client(rate_limit={"per_second": 0.01, "burst": 2})
    p = person(session)
    for _ in range(2):
        assert endpoint.call(http, p, headers, {}).status_code == 200
    response = endpoint.call(http, p, headers, {})
    _error(response, 429, "RATE_LIMITED")
    assert 1 <= int(response.headers["Retry-After"]) <= 100


def test_wrong_population_type_is_absent(http, session, new_client) -> None:
    foreigner = person(session, population_type="foreign")
    response = http.get(f"/api/v1/persons/{foreigner.person_no}", headers=new_client())
    _error(response, 404, "PERSON_NOT_FOUND")


def test_end_user_may_be_percent_encoded_chinese(http, session: Session, new_client) -> None:
    p = person(session)
    before = last_audit_id(session)
    headers = {**new_client(), "X-End-User": "%E7%8E%8B%E5%B0%8F%E7%BA%A2"}
    assert http.get(f"/api/v1/persons/{p.person_no}", headers=headers).status_code == 200
    [row] = audit_rows(session, before)
    assert row.detail["end_user"] == "王小红" and row.detail["purpose"] == PURPOSE
