"""The authorisation matrix, generated from the OpenAPI schema: every operation × every case.

The operations are read from the app's own schema, so a route added without its row in MATRIX fails
`test_every_operation_has_a_row` and every cell of it fails `test_cell`; a case an operation cannot
meet is stated as such, with the reason (`NotApplicable`), never left out.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, text, update
from sqlalchemy.orm import Session

from base import db as base_db
from base.settings import storage_settings
from decision import service as decision_service
from decision.access import add_planner
from exchange.cli import new_push_key
from exchange.dependencies import get_factory
from exchange.models import PushCredential
from popex.app import create_app
from registry.models import Person
from sharing_api.clients import set_status
from sharing_api.dependencies import Backends, client_cache, get_session
from sharing_api.policy import PersonField
from tests.feedfiles import hj, write_feed
from tests.sharing_api.support import AWAY, birth_date_iso, client_code, person

CASES = (
    "no_key",
    "bad_key",
    "disabled",
    "in_scope",
    "out_of_scope",
    "field_not_granted",
    "purpose_not_granted",
)


@dataclass(frozen=True)
class Refused:
    """Answered with this status and error code."""

    status: int
    code: str


@dataclass(frozen=True)
class Answered:
    """Answered 2xx; `check` reads the body (the person is there, or is not)."""

    check: Callable[[Any, "World"], bool]  # the test client's response
    status: int = 200


@dataclass(frozen=True)
class NotApplicable:
    """The case cannot be put to this operation; why."""

    reason: str


Expectation = Refused | Answered | NotApplicable


@dataclass
class World:
    """What the requests are made about and with."""

    http: TestClient
    session: Session
    make_client: Callable[..., dict[str, str]]
    home: Person
    away: Person
    folder: Path
    keys: dict[str, str] = field(default_factory=dict)  # department → push key
    batch_id: int = 0  # gaj's pushed batch


@dataclass(frozen=True)
class Row:
    """How to call one operation (path parameters, query, body), and what each case must answer."""

    call: Callable[[World, str], dict[str, Any]]  # (world, variant: in / out / field) → request kwargs
    expect: dict[str, Expectation]
    family: str  # sharing (API key + policy), push (department key), public


def _target(world: World, variant: str) -> Person:
    return world.away if variant == "out" else world.home


def _verify_item(p: Person, variant: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id_no": p.id_no, "name": p.name}
    if variant == "field":  # compares the birth date, which this client may not verify
        item["birth_date"] = birth_date_iso(p)
    return item


def _fields(variant: str) -> dict[str, Any]:
    return {"fields": ["phone"]} if variant == "field" else {}


def _has(p: Callable[[World], Person]) -> Callable[[Any, World], bool]:
    return lambda r, w: p(w).person_no in r.text


def _lacks(p: Callable[[World], Person]) -> Callable[[Any, World], bool]:
    return lambda r, w: p(w).person_no not in r.text


HOME: Callable[[World], Person] = lambda w: w.home  # noqa: E731
AWAY_P: Callable[[World], Person] = lambda w: w.away  # noqa: E731
FIELD = Refused(403, "FIELD_NOT_GRANTED")
NOT_FOUND = Refused(404, "PERSON_NOT_FOUND")


def sharing(
    call: Callable[[World, str], dict[str, Any]],
    in_scope: Expectation,
    out_of_scope: Expectation,
    field_not_granted: Expectation = FIELD,
) -> Row:
    """A sharing API operation: the key and purpose cases are the same for every one of them."""
    return Row(
        call,
        {
            "no_key": Refused(401, "CREDENTIAL_MISSING"),
            "bad_key": Refused(401, "CREDENTIAL_INVALID"),
            "disabled": Refused(401, "CREDENTIAL_INVALID"),  # like an unknown key
            "in_scope": in_scope,
            "out_of_scope": out_of_scope,
            "field_not_granted": field_not_granted,
            "purpose_not_granted": Refused(403, "PURPOSE_NOT_ALLOWED"),
        },
        "sharing",
    )


def public(call: Callable[[World, str], dict[str, Any]]) -> Row:
    """The statistics API: city-wide aggregates with small cells suppressed, no key, no person."""
    ok = Answered(lambda r, w: w.home.person_no not in r.text)
    no_subject = NotApplicable("公开的汇总统计：无密钥、无授权范围、无人员字段、无用途")
    return Row(
        call,
        {
            "no_key": ok,  # public by design: stated here, so that a key requirement is a decision
            "bad_key": ok,
            "disabled": no_subject,
            "in_scope": ok,
            "out_of_scope": no_subject,
            "field_not_granted": no_subject,
            "purpose_not_granted": no_subject,
        },
        "public",
    )


def planner(call: Callable[[World, str], dict[str, Any]]) -> Row:
    """The statistics a planner reads: a planner's API key (decision.planner), unless an operator opened
    the level to everyone (none is open here)."""
    refused = Refused(401, "AUTH_REQUIRED")
    return Row(
        call,
        {
            "no_key": refused,
            "bad_key": refused,
            "disabled": refused,  # a planner no longer active
            "in_scope": Answered(lambda r, w: w.home.person_no not in r.text),
            "out_of_scope": NotApplicable("规划人员可读各层级的汇总统计：无授权范围"),
            "field_not_granted": NotApplicable("汇总统计不含人员字段"),
            "purpose_not_granted": NotApplicable("汇总统计不按用途授权"),
        },
        "planner",
    )


def push(call: Callable[[World, str], dict[str, Any]], in_scope: Expectation, out_of_scope: Refused) -> Row:
    """A push API operation: a department's key; scope is the department's own sources and batches."""
    return Row(
        call,
        {
            "no_key": Refused(401, "AUTH_REQUIRED"),
            "bad_key": Refused(401, "AUTH_INVALID"),
            "disabled": Refused(401, "AUTH_INVALID"),  # a revoked key
            "in_scope": in_scope,
            "out_of_scope": out_of_scope,
            "field_not_granted": NotApplicable("推送接口不返回人员字段"),
            "purpose_not_granted": NotApplicable("推送接口不按用途授权"),
        },
        "push",
    )


def _push_call(world: World, variant: str) -> dict[str, Any]:
    day = date(2026, 11, 2) if variant == "in" else date(2026, 11, 3)
    path = write_feed(
        world.folder, "gaj_hj", day, [hj("H9", "330102197001010013", "赵九", "男", "1970-01-01")]
    )
    return {"files": {"file": (path.name, path.read_bytes())}}


MATRIX: dict[str, Row] = {
    "get_person_api_v1_persons__person_no__get": sharing(
        lambda w, v: {"path": {"person_no": _target(w, v).person_no}, "params": _fields(v)},
        Answered(_has(HOME)),
        NOT_FOUND,
    ),
    "lookup_person_api_v1_persons_lookup_post": sharing(
        lambda w, v: {"json": {"id_no": _target(w, v).id_no}, "params": _fields(v)},
        Answered(_has(HOME)),
        NOT_FOUND,
    ),
    "search_persons_api_v1_persons_search_post": sharing(
        lambda w, v: {
            "json": {"name": _target(w, v).name, "birth_date": birth_date_iso(_target(w, v))},
            "params": _fields(v),
        },
        Answered(_has(HOME)),
        Answered(_lacks(AWAY_P)),
    ),
    "verify_one_api_v1_verify_post": sharing(
        lambda w, v: {"json": _verify_item(_target(w, v), v)},
        Answered(lambda r, w: r.json()["match"] is True),
        Answered(lambda r, w: r.json() == {"match": False}),
    ),
    "verify_batch_api_v1_verify_batch_post": sharing(
        lambda w, v: {"json": {"items": [_verify_item(_target(w, v), v)]}},
        Answered(lambda r, w: r.json()["matched"] == 1),
        Answered(lambda r, w: r.json()["matched"] == 0 and r.json()["results"] == [{"match": False}]),
    ),
    "get_changes_api_v1_changes_get": sharing(
        lambda w, v: {"params": _fields(v)},
        Answered(lambda r, w: "items" in r.json()),
        Answered(_lacks(AWAY_P)),
    ),
    "get_baseline_api_v1_baseline_get": sharing(
        lambda w, v: {"params": _fields(v)},
        Answered(_has(HOME)),
        Answered(_lacks(AWAY_P)),
    ),
    "get_access_history_api_v1_persons__person_no__access_history_get": sharing(
        lambda w, v: {"path": {"person_no": _target(w, v).person_no}},
        Answered(lambda r, w: r.json()["person_no"] == w.home.person_no),
        NOT_FOUND,
        NotApplicable("访问记录只有何时、何单位、何人、何用途，不含人员字段"),
    ),
    "api_dashboard_api_v1_stats_dashboard_get": planner(lambda w, v: {}),
    "api_table_api_v1_stats_tables__key__get": planner(lambda w, v: {"path": {"key": "type_sex"}}),
    "api_areas_api_v1_stats_areas_get": public(lambda w, v: {}),
    "api_lineage_api_v1_stats_lineage_get": planner(lambda w, v: {}),
    "push_file_api_v1_exchange_files_post": push(
        _push_call,
        Answered(lambda r, w: r.json()["batch_id"] > 0, status=202),
        Refused(403, "SOURCE_NOT_YOURS"),
    ),
    "get_receipt_api_v1_exchange_batches__batch_id__receipt_get": push(
        lambda w, v: {"path": {"batch_id": w.batch_id}},
        Answered(lambda r, w: r.json()["batch_id"] == w.batch_id),
        Refused(404, "BATCH_NOT_FOUND"),
    ),
    "get_receipt_csv_api_v1_exchange_batches__batch_id__receipt_csv_get": push(
        lambda w, v: {"path": {"batch_id": w.batch_id}},
        Answered(lambda r, w: r.text.startswith("row,record_key")),
        Refused(404, "BATCH_NOT_FOUND"),
    ),
}


def _schema_operations() -> dict[str, tuple[str, str]]:
    """operationId → (method, path) of every operation the app's OpenAPI document lists."""
    schema = create_app().openapi()
    return {
        op["operationId"]: (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }


OPERATIONS = _schema_operations()


def test_every_operation_has_a_row_and_every_row_an_operation() -> None:
    missing = sorted(set(OPERATIONS) - set(MATRIX))
    assert not missing, f"operations without a row in the authorisation matrix: {missing}"
    assert not sorted(set(MATRIX) - set(OPERATIONS)), "rows for operations the schema no longer has"
    for name, row in MATRIX.items():
        assert set(row.expect) == set(CASES), f"{name}: cases {sorted(set(CASES) - set(row.expect))} missing"
        for case, expected in row.expect.items():
            assert not isinstance(expected, NotApplicable) or expected.reason, f"{name} × {case}: no reason"


@pytest.fixture(scope="module")
def matrix_app() -> FastAPI:
    """One app for every cell (each test sets its overrides)."""
    return create_app()


@pytest.fixture
def world(matrix_app, session, factory, areas, tmp_path, monkeypatch, new_client) -> Iterator[World]:
    monkeypatch.setenv("POPEX_LANDING_DIR", str(tmp_path / "landing"))
    storage_settings.cache_clear()
    client_cache.clear()
    app: FastAPI = matrix_app
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[base_db.get_session] = lambda: session
    app.dependency_overrides[get_factory] = lambda: factory
    app.state.sharing_backends = Backends.of_session(session)
    home = person(session, name="甲乙")
    away = person(session, name="丙丁", community_code=AWAY)
    yield World(TestClient(app), session, new_client, home, away, tmp_path)
    app.dependency_overrides.clear()
    storage_settings.cache_clear()


def _prepare(world: World, family: str) -> None:
    """What a family's operations need besides persons: the statistics built; push keys and a batch."""
    if family in ("public", "planner"):
        decision_service.rebuild(session=world.session, epoch=date(2026, 1, 1), horizon=date(2027, 1, 1))
    if family == "planner":
        world.keys = {"planner": add_planner(session=world.session, name="规划处", actor="t")}
    elif family == "push":
        world.keys = {d: new_push_key(session=world.session, department=d) for d in ("gaj", "wjw")}
        pushed = world.http.post(
            "/api/v1/exchange/files",
            headers={"Authorization": f"Bearer {world.keys['gaj']}"},
            **_push_call(world, "setup"),
        )
        assert pushed.status_code == 202, pushed.text
        world.batch_id = pushed.json()["batch_id"]


def _headers(world: World, family: str, case: str) -> dict[str, str]:
    """The request's credentials and audit headers for a case."""
    if family == "push":
        key = {"no_key": None, "bad_key": "pk_wrong", "out_of_scope": world.keys["wjw"]}.get(
            case, world.keys["gaj"]
        )
        if case == "disabled":
            world.session.execute(
                update(PushCredential)
                .where(PushCredential.department_code == "gaj")
                .values(revoked_at=func.now())
            )
            world.session.flush()
        return {"Authorization": f"Bearer {key}"} if key else {}
    if family == "public":
        return {"X-API-Key": "pxk_" + "x" * 43} if case == "bad_key" else {}
    if family == "planner":
        if case == "disabled":
            world.session.execute(text("UPDATE decision.planner SET active = false"))
            world.session.flush()
        key = {"no_key": None, "bad_key": "pk_" + "x" * 32}.get(case, world.keys["planner"])
        return {"X-API-Key": key} if key else {}
    if case == "field_not_granted":
        withheld = (PersonField.PHONE, PersonField.STATUS, PersonField.BIRTH_DATE)
        return world.make_client(
            fields=[f.value for f in PersonField if f not in withheld], verifiable=["id_no", "name"]
        )
    headers = world.make_client()
    if case == "no_key":
        del headers["X-API-Key"]
    elif case == "bad_key":
        headers["X-API-Key"] = "pxk_" + "x" * 43
    elif case == "disabled":
        set_status(
            session=world.session, code=client_code(world.session, headers), active=False, operator="t"
        )
    elif case == "purpose_not_granted":
        headers["X-Purpose"] = "marketing"
    return headers


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_cell(operation: str, case: str, request: pytest.FixtureRequest) -> None:
    row = MATRIX.get(operation)
    assert row is not None, f"{operation} has no row in the authorisation matrix"
    expected = row.expect.get(case)
    assert expected is not None, f"{operation} × {case} has no expectation"
    if isinstance(expected, NotApplicable):
        return
    world: World = request.getfixturevalue("world")
    _prepare(world, row.family)
    method, path = OPERATIONS[operation]
    variant = {"out_of_scope": "out", "field_not_granted": "field"}.get(case, "in")
    if row.family == "push" and case == "out_of_scope":
        variant = "in"  # the same request, with another department's key
    kwargs = row.call(world, variant)
    url = path.format(**kwargs.pop("path", {}))
    response = world.http.request(method, url, headers=_headers(world, row.family, case), **kwargs)
    if isinstance(expected, Refused):
        assert response.status_code == expected.status, response.text
        body = response.json()
        code = body["code"] if "code" in body else body["detail"]["code"]  # decision's errors are in detail
        assert code == expected.code, response.text
    else:
        assert response.status_code == expected.status, response.text
        assert expected.check(response, world), response.text
