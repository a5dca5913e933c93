"""The sharing API's answers: masking, verification, batches, change feed, baseline, audit, history."""

import logging
from datetime import date

import psycopg2.errors
import pytest
import sqlalchemy.exc

from registry.audit import verify_chain
from sharing_api import service
from sharing_api.schemas import MAX_BATCH
from tests.sharing_api.support import AWAY, audit_rows, client_code, event, last_audit_id, person


def test_lookup_masks_id_and_phone_unless_granted_in_clear(http, session, new_client) -> None:
    p = person(session, name="张三", id_no="330102199003071234", phone="13812345678")
    masked = http.get(f"/api/v1/persons/{p.person_no}", headers=new_client()).json()
    assert masked["id_no"] == "330102************"  # the district only: no birth date, no check digit
    assert masked["phone"] == "138****5678"
    assert masked["name"] == "张三" and masked["birth_date"] == "1990-03-07"
    clear = http.get(f"/api/v1/persons/{p.person_no}", headers=new_client(unmasked=["id_no"])).json()
    assert clear["id_no"] == "330102199003071234" and clear["phone"] == "138****5678"


def test_only_granted_and_requested_fields_are_returned(http, session, new_client) -> None:
    p = person(session, name="李四")
    headers = new_client(fields=["name", "birth_date", "status"])
    assert http.get(f"/api/v1/persons/{p.person_no}", headers=headers).json() == {
        "person_no": p.person_no,
        "name": "李四",
        "birth_date": "1990-03-07",
        "status": "active",
    }
    narrowed = http.get(f"/api/v1/persons/{p.person_no}", headers=headers, params={"fields": ["status"]})
    assert narrowed.json() == {"person_no": p.person_no, "status": "active"}


def test_lookup_by_document_cleans_the_number(http, session, new_client) -> None:
    p = person(session, id_no="33010219900307123X")
    response = http.post(
        "/api/v1/persons/lookup", json={"id_no": " 330102 19900307 123x"}, headers=new_client(fields=["name"])
    )
    assert response.json() == {"person_no": p.person_no, "name": "王小明"}


def test_retired_number_answers_with_the_surviving_record(http, session, new_client) -> None:
    survivor = person(session, name="王五")
    retired = person(session, name="王五", id_no=None, status="retired")
    retired.merged_into = survivor.id
    session.flush()
    body = http.get(f"/api/v1/persons/{retired.person_no}", headers=new_client(fields=["name"])).json()
    assert body == {"person_no": survivor.person_no, "merged_from": retired.person_no, "name": "王五"}


def test_unknown_person_is_a_json_404(http, session, new_client) -> None:
    response = http.get("/api/v1/persons/P99999999999", headers=new_client())
    assert response.status_code == 404
    assert response.json()["code"] == "PERSON_NOT_FOUND"


def test_search_by_name_and_birth_date_within_area(http, session, new_client) -> None:
    a = person(session, name="赵六", community_code="330102001001")
    b = person(session, name="赵六", community_code="330102001002")
    person(session, name="赵六", birth_date=date(1991, 1, 1))
    person(session, name="赵六", community_code=AWAY)
    headers = new_client(fields=["name", "birth_date"])  # the criteria: fields it may read
    both = http.post(
        "/api/v1/persons/search", json={"name": "赵六", "birth_date": "1990-03-07"}, headers=headers
    )
    assert [i["person_no"] for i in both.json()["items"]] == [a.person_no, b.person_no]
    one = http.post(
        "/api/v1/persons/search",
        json={"name": "赵六", "birth_date": "1990-03-07", "area": "330102001002"},
        headers=headers,
        params={"fields": ["name"]},
    )
    assert one.json() == {"items": [{"person_no": b.person_no, "name": "赵六"}], "truncated": False}


def _verify(http, headers, **body):
    return http.post("/api/v1/verify", json=body, headers=headers).json()


def test_verification_says_yes_and_alive_resident(http, session, new_client) -> None:
    p = person(session, name="钱七")
    headers = new_client()
    assert _verify(http, headers, id_no=p.id_no, name="钱七", birth_date="1990-03-07") == {
        "match": True,
        "alive": True,
        "resident": True,
    }
    dead = person(session, name="孙八", status="dead", death_date=date(2026, 11, 19))
    left = person(session, name="周九", status="left")
    assert _verify(http, headers, id_no=dead.id_no, name="孙八", birth_date="1990-03-07") == {
        "match": True,
        "alive": False,
        "resident": False,
    }
    assert _verify(
        http, headers, id_no=left.id_no, name="周九", birth_date="1990-03-07", checks=["resident"]
    ) == {
        "match": True,
        "resident": False,
    }


def test_verification_reveals_nothing_on_a_mismatch(http, session, new_client) -> None:
    """Unknown number, wrong name, wrong birth date, out of scope, dead: one and the same answer."""
    p = person(session, name="吴十", status="dead")
    away = person(session, name="郑一", community_code=AWAY)
    headers = new_client()
    answers = [
        http.post("/api/v1/verify", json=body, headers=headers)
        for body in (
            {"id_no": "110101199001011234", "name": "吴十", "birth_date": "1990-03-07"},
            {"id_no": p.id_no, "name": "吴十一", "birth_date": "1990-03-07"},
            {"id_no": p.id_no, "name": "吴十", "birth_date": "1990-03-08"},
            {"id_no": away.id_no, "name": "郑一", "birth_date": "1990-03-07"},
        )
    ]
    assert {r.status_code for r in answers} == {200}
    assert {r.content for r in answers} == {b'{"match":false}'}


def test_verification_without_status_grant_answers_identity_only(http, session, new_client) -> None:
    p = person(session, name="冯二")
    headers = new_client(fields=["name"])
    assert _verify(http, headers, id_no=p.id_no, name="冯二", birth_date="1990-03-07") == {"match": True}


def test_batch_verification_keeps_order_and_refs(http, session, new_client) -> None:
    p = person(session, name="陈三")
    q = person(session, name="褚四", status="left")
    items = [
        {"ref": "a", "id_no": p.id_no, "name": "陈三", "birth_date": "1990-03-07"},
        {"ref": "b", "id_no": q.id_no, "name": "错名", "birth_date": "1990-03-07"},
        {"ref": "c", "id_no": q.id_no, "name": "褚四", "birth_date": "1990-03-07"},
        {"id_no": "000000000000000000", "name": "无", "birth_date": "2000-01-01"},
    ]
    before = last_audit_id(session)
    body = http.post("/api/v1/verify/batch", json={"items": items}, headers=new_client()).json()
    assert body == {
        "results": [
            {"ref": "a", "match": True, "alive": True, "resident": True},
            {"ref": "b", "match": False},
            {"ref": "c", "match": True, "alive": True, "resident": False},
            {"match": False},
        ],
        "matched": 2,
        "limited": 0,
    }
    [row] = audit_rows(session, before)
    assert sorted(row.detail["person_nos"]) == sorted([p.person_no, q.person_no])
    assert row.detail["items"] == 4 and row.detail["matched"] == 2
    assert row.detail["fields"] == ["match", "alive", "resident"]


def test_batch_of_1000_is_answered_and_1001_refused(http, session, new_client) -> None:
    p = person(session, name="卫五")
    item = {"id_no": p.id_no, "name": "卫五", "birth_date": "1990-03-07"}
    headers = new_client()
    ok = http.post("/api/v1/verify/batch", json={"items": [item] * MAX_BATCH}, headers=headers)
    assert ok.status_code == 200 and ok.json()["matched"] == MAX_BATCH
    before = last_audit_id(session)
    refused = http.post("/api/v1/verify/batch", json={"items": [item] * (MAX_BATCH + 1)}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "BATCH_TOO_LARGE"
    [row] = audit_rows(session, before)
    assert row.detail["outcome"] == "refused" and row.detail["items"] == MAX_BATCH + 1


def test_change_feed_pages_by_cursor(http, session, new_client) -> None:
    people = [person(session, name=f"蒋{i}") for i in range(5)]
    events = [event(session, p, "died") for p in people]
    headers = new_client()
    seen, since = [], events[0].id - 1
    for _ in range(3):
        page = http.get("/api/v1/changes", params={"since": since, "limit": 2}, headers=headers).json()
        seen += [i["cursor"] for i in page["items"]]
        since = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [e.id for e in events]
    assert page["has_more"] is False and page["next_cursor"] == events[-1].id
    empty = http.get("/api/v1/changes", params={"since": since}, headers=headers).json()
    assert empty == {"items": [], "next_cursor": events[-1].id, "has_more": False}


def test_change_feed_filters_by_type_area_and_scope(http, session, new_client) -> None:
    a = person(session, community_code="330102001001")
    b = person(session, community_code="330102001002")
    away = person(session, community_code=AWAY)
    foreign = person(session, population_type="foreign")
    died = event(session, a, "died")
    moved = event(session, b, "moved")
    event(session, away, "died")
    event(session, foreign, "died")
    headers = new_client()
    since = died.id - 1

    def cursors(**params):
        response = http.get("/api/v1/changes", params={"since": since, **params}, headers=headers)
        return [i["cursor"] for i in response.json()["items"]]

    assert cursors() == [died.id, moved.id]
    assert cursors(event_type="died") == [died.id]
    assert cursors(event_type=["died", "moved"], area="330102001002") == [moved.id]
    invalid = http.get("/api/v1/changes", params={"event_type": "exploded"}, headers=headers)
    assert invalid.status_code == 422 and invalid.json()["code"] == "VALIDATION_ERROR"


def test_change_payload_is_filtered_and_masked_by_policy(http, session, new_client) -> None:
    p = person(session)
    e = event(
        session,
        p,
        "attribute_changed",
        payload={
            "changed": ["phone", "address", "marital_status"],
            "phone": "13900001111",
            "address": "新地址",
        },
    )
    headers = new_client(fields=["phone", "address", "community_code"])
    [item] = http.get("/api/v1/changes", params={"since": e.id - 1}, headers=headers).json()["items"]
    assert item["payload"] == {"phone": "139****1111", "address": "新地址", "changed": ["phone", "address"]}
    assert item["person_no"] == p.person_no and item["community_code"] == p.community_code
    no_address = new_client(fields=["name"])
    [item] = http.get("/api/v1/changes", params={"since": e.id - 1}, headers=no_address).json()["items"]
    assert item["payload"] == {"changed": []} and "community_code" not in item


def test_baseline_pages_through_scope_and_gives_the_feed_cursor(http, session, new_client) -> None:
    inside = [person(session, name=f"沈{i}") for i in range(3)]
    person(session, community_code=AWAY)
    person(session, status="retired", id_no=None)
    e = event(session, inside[0], "person_created")
    headers = new_client(fields=["name"])
    first = http.get("/api/v1/baseline", params={"limit": 2}, headers=headers).json()
    second = http.get(
        "/api/v1/baseline", params={"limit": 2, "after": first["next_cursor"]}, headers=headers
    ).json()
    numbers = [i["person_no"] for i in first["items"] + second["items"]]
    assert numbers == [p.person_no for p in inside]
    assert first["has_more"] is True and second["has_more"] is False
    assert first["change_cursor"] == e.id
    assert first["items"][0] == {"person_no": inside[0].person_no, "name": "沈0"}


def test_every_request_writes_one_audit_record(http, session, new_client) -> None:
    p = person(session)
    headers = new_client(fields=["name", "id_no"])
    before = last_audit_id(session)
    http.get(f"/api/v1/persons/{p.person_no}", headers=headers)
    http.post("/api/v1/persons/lookup", json={"id_no": "no-such-number"}, headers=headers)
    rows = audit_rows(session, before)
    assert [(r.action, r.object_id, r.detail["outcome"]) for r in rows] == [
        ("sharing.lookup", p.person_no, "ok"),
        ("sharing.lookup", None, "not_found"),
    ]
    ok = rows[0].detail
    assert ok["person_nos"] == [p.person_no] and ok["fields"] == ["name", "id_no"]
    assert (
        ok["client"] == rows[0].actor and ok["end_user"] == "clerk-007" and ok["purpose"] == "social_security"
    )
    assert verify_chain(session=session).ok


def test_access_history_lists_who_looked_and_why(http, session, new_client) -> None:
    p = person(session)
    other = person(session)
    social = new_client(purposes=["social_security"])
    health = new_client(purposes=["medical_insurance"])
    http.get(f"/api/v1/persons/{p.person_no}", headers=social, params={"fields": ["name"]})
    http.post(
        "/api/v1/verify",
        json={"id_no": p.id_no, "name": "王小明", "birth_date": "1990-03-07"},
        headers={**health, "X-Purpose": "medical_insurance", "X-End-User": "doctor-1"},
    )
    http.get(f"/api/v1/persons/{other.person_no}", headers=social)
    history = http.get(f"/api/v1/persons/{p.person_no}/access-history", headers=social).json()
    assert history["person_no"] == p.person_no and history["next_before"] is None
    # Its own accesses only: the other department's verification is not this client's to see.
    assert [(i["operation"], i["purpose"], i["end_user"], i["fields"]) for i in history["items"]] == [
        ("lookup", "social_security", "clerk-007", ["name"]),
    ]
    theirs = http.get(
        f"/api/v1/persons/{p.person_no}/access-history",
        headers={**health, "X-Purpose": "medical_insurance", "X-End-User": "doctor-1"},
    ).json()
    assert [(i["operation"], i["end_user"]) for i in theirs["items"]] == [("verify", "doctor-1")]
    assert "clerk-007" not in str(theirs) and client_code(session, social) not in str(theirs)


def test_access_history_includes_retired_numbers(http, session, new_client) -> None:
    survivor = person(session)
    retired = person(session, id_no=None)
    headers = new_client()
    http.get(f"/api/v1/persons/{retired.person_no}", headers=headers)  # looked at before the merge
    retired.status, retired.merged_into = "retired", survivor.id
    session.flush()
    items = http.get(f"/api/v1/persons/{survivor.person_no}/access-history", headers=headers).json()["items"]
    assert [i["operation"] for i in items] == ["lookup"]


@pytest.mark.parametrize(
    "body",
    [
        {"id_no": "3301\x00", "name": "王", "birth_date": "1990-01-01"},
        {"id_no": "330102", "name": "", "birth_date": "1990-01-01"},
        {"id_no": "330102", "name": "王", "birth_date": "1990-02-30"},
        {"id_no": "330102", "name": "王", "birth_date": "1990-01-01", "extra": 1},
    ],
)
def test_invalid_requests_are_json_422_without_echoing_input(body, http, session, new_client) -> None:
    response = http.post("/api/v1/verify", json=body, headers=new_client())
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "VALIDATION_ERROR"
    assert all("input" not in d for d in payload["detail"])


def test_openapi_documents_key_headers_and_fields_once_per_route(app) -> None:
    paths = app.openapi()["paths"]
    sharing = {
        (path, method): op
        for path, methods in paths.items()
        if path.startswith("/api/v1/") and not path.startswith(("/api/v1/stats", "/api/v1/exchange"))
        for method, op in methods.items()
        if "信息共享" in op.get("tags", [])
    }
    assert len(sharing) == 8  # two lookups, search, verify, batch, changes, baseline, access history
    for (path, method), op in sharing.items():
        names = [p["name"] for p in op.get("parameters", [])]
        assert op.get("security") == [{"APIKeyHeader": []}], (path, method)
        assert names.count("X-End-User") == 1 and names.count("X-Purpose") == 1, (path, method, names)
        assert names.count("fields") == (0 if "verify" in path or "history" in path else 1), (path, names)


def test_unknown_field_is_a_json_422_naming_its_place_not_its_value(http, session, new_client) -> None:
    p = person(session)
    headers = new_client()
    for response in (
        http.get(f"/api/v1/persons/{p.person_no}", headers=headers, params={"fields": ["name", "王小明"]}),
        http.post(
            "/api/v1/persons/lookup", json={"id_no": p.id_no}, headers=headers, params={"fields": ["王小明"]}
        ),
    ):
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR"
        assert body["detail"][0]["loc"][:2] == ["query", "fields"]
        assert "王小明" not in response.text and p.person_no not in response.text


def test_a_fault_of_the_service_is_a_json_500_whose_log_names_no_personal_data(
    http, session, new_client, monkeypatch, caplog
) -> None:
    p = person(session, name="周九")
    headers = new_client()

    def fails(**_: object) -> None:
        raise sqlalchemy.exc.ProgrammingError(
            "SELECT … WHERE id_no = %(n)s", {"n": p.id_no}, psycopg2.errors.InsufficientPrivilege()
        )

    monkeypatch.setattr(service, "changes", fails)
    before = last_audit_id(session)
    with caplog.at_level(logging.ERROR, logger="base.faults"):
        answer = http.get("/api/v1/changes", headers=headers)
    assert answer.status_code == 500
    assert answer.json()["code"] == "INTERNAL_ERROR" and p.id_no not in answer.text
    [record] = audit_rows(session, after=before)  # unanswered, and audited so: the monitor counts it
    assert record.action == "sharing.changes" and record.detail["outcome"] == "error"
    assert record.detail["code"] == "INTERNAL_ERROR" and record.detail["person_nos"] == []
    assert "GET /api/v1/changes failed: ProgrammingError" in caplog.text
    assert p.id_no not in caplog.text and "周九" not in caplog.text
    looked_up = http.get(f"/api/v1/persons/{p.person_no}", headers=headers)  # the next request is served
    assert looked_up.status_code == 200 and looked_up.json()["name"] == "周九"
