"""Both guessing attacks of issue 16, replayed: neither may confirm a value the client cannot read.

A: a client sees the ID number masked, the birth date and the sex, and verifies every number they leave
(46 when the mask showed the check digit; 500 with the default mask) in one batch. B: a client refused
the birth date verifies a passport holder's document with every date since 1930. Each must end with no
match, the further tries answered `limited`.
"""

from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from monitor import alerts
from monitor.config import MonitorSettings
from sharing_api.config import sharing_settings
from sharing_api.dependencies import lookup_misses
from sharing_api.policy import MASKS, Mask, Policy, id_candidates
from tests.sharing_api.support import audit_rows, client_code, last_audit_id, person, policy

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_digit(first17: str) -> str:
    """GB 11643's check character of the first 17 digits."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def citizen(first17: str) -> str:
    return first17 + check_digit(first17)


def candidates(shown: str, birth_date: str, male: bool, check: str | None = None) -> list[str]:
    """Every valid number agreeing with a masked one (district shown), the birth date and the sex, in
    the order an attacker would try them; with `check`, only those ending in that check digit."""
    head = shown[:6] + birth_date.replace("-", "")
    found = []
    for seq in range(100):
        for sex in range(1 if male else 0, 10, 2):
            number = citizen(f"{head}{seq:02d}{sex}")
            if check is None or number.endswith(check):
                found.append(number)
    return found


def _batch(http, headers, items):
    return http.post("/api/v1/verify/batch", json={"items": items}, headers=headers)


def test_masked_id_number_cannot_be_found_among_its_candidates(http, session, new_client) -> None:
    true_no = citizen("33010219900307979")  # late in the attacker's order, so luck does not find it
    victim = person(session, name="周九", sex="1", id_no=true_no)
    attacker = new_client(fields=["name", "sex", "birth_date", "id_no"])
    seen = http.get(f"/api/v1/persons/{victim.person_no}", headers=attacker).json()
    assert seen["id_no"] == "330102************"  # no birth date, no check digit

    # The attack as reported: the old mask showed the check digit, leaving 45 or 46 numbers.
    old = candidates(seen["id_no"], seen["birth_date"], male=True, check=true_no[-1])
    assert len(old) in (45, 46) and true_no in old
    before = last_audit_id(session)
    items = [{"id_no": n, "name": seen["name"], "birth_date": seen["birth_date"]} for n in old]
    answer = _batch(http, attacker, items).json()
    assert answer["matched"] == 0, "the 46-candidate attack found the number"
    limit = sharing_settings().verify_failures_per_day
    assert answer["limited"] == len(old) - limit
    assert [r.get("match") for r in answer["results"][:limit]] == [False] * limit
    [row] = audit_rows(session, before)
    assert row.detail["failed"] == limit and row.detail["limited"] == len(old) - limit

    # With the default mask: 500 numbers, without the name, one number at a time: still nothing.
    wide = candidates(seen["id_no"], seen["birth_date"], male=True)
    assert len(wide) == 500
    answered = [_batch(http, attacker, [{"id_no": n, "birth_date": seen["birth_date"]}]) for n in wide[-60:]]
    assert not any(r.json()["matched"] for r in answered), "guessing without the name found the number"
    assert sum(r.json()["limited"] for r in answered) == 60 - limit
    # ... nor without the name and birth date (a question of existence: one shared identity).
    only = [_batch(http, attacker, [{"id_no": n}]).json() for n in wide[-40:]]
    assert not any(a["matched"] for a in only) and sum(a["limited"] for a in only) == 40 - limit

    # The monitor raises the guessing alert for this client, and for no other.
    now = session.scalar(text("SELECT localtimestamp")) + timedelta(minutes=1)  # as the monitor is given
    raised = alerts.evaluate(
        session=session, now=now, settings=MonitorSettings(expected_from=now.date())
    ).raised
    code = client_code(session, attacker)
    [alert] = [a for a in raised if a.rule == "verify_guessing"]
    assert alert.key == f"verify_guessing:{code}" and alert.severity == "critical"
    assert alert.detail["exhausted"] == 3  # the identity with the name, without it, and the empty one
    later = now + timedelta(hours=25)
    resolved = alerts.evaluate(session=session, now=later, settings=MonitorSettings(expected_from=now.date()))
    assert f"verify_guessing:{code}" in [a.key for a in resolved.resolved]


def test_birth_date_cannot_be_learned_by_a_client_refused_it(http, session, new_client) -> None:
    holder = person(
        session, name="JOHN SMITH", id_type="PASSPORT", id_no="E12345678", birth_date=date(1987, 6, 5)
    )
    days = [date(1930, 1, 1) + timedelta(days=n) for n in range((date(1990, 1, 1) - date(1930, 1, 1)).days)]
    items = [
        {"id_type": "PASSPORT", "id_no": holder.id_no, "name": holder.name, "birth_date": d.isoformat()}
        for d in days
    ]
    # B as reported: birth date not granted, nor verifiable. Its first try is refused.
    b = new_client(fields=["name", "sex", "status"], verifiable=["id_no", "name"])
    refused = _batch(http, b, items[:1000])
    assert refused.status_code == 403 and refused.json()["code"] == "FIELD_NOT_GRANTED"
    assert refused.json()["detail"]["fields"] == ["birth_date"]
    single = http.post("/api/v1/verify", json=items[0], headers=b)
    assert single.status_code == 403 and single.json()["code"] == "FIELD_NOT_GRANTED"
    # A client that may verify the birth date without reading it: 22 batches, no match.
    verifier = new_client(
        fields=["name"],
        verifiable=["id_no", "name", "birth_date"],
        rate_limit={"per_second": 100_000, "burst": 1000},
    )
    matched = limited = 0
    for start in range(0, len(items), 1000):
        answer = _batch(http, verifier, items[start : start + 1000])
        assert answer.status_code == 200, answer.text
        matched += answer.json()["matched"]
        limited += answer.json()["limited"]
    assert matched == 0, "the birth date was found by trying every date"
    assert limited == len(items) - sharing_settings().verify_failures_per_day
    # A single verification of it is refused outright.
    last = http.post("/api/v1/verify", json=items[-1], headers=verifier)
    assert last.status_code == 429 and last.json()["code"] == "VERIFY_LIMITED"


def test_batch_items_count_against_the_rate_limit(http, session, new_client) -> None:
    p = person(session, name="吴十")
    headers = new_client(rate_limit={"per_second": 0.01, "burst": 10})
    item = {"id_no": p.id_no, "name": "吴十", "birth_date": "1990-03-07"}
    assert _batch(http, headers, [item] * 6).status_code == 200  # 6 of 10 tokens
    late = _batch(http, headers, [item] * 6)
    assert late.status_code == 429 and late.json()["code"] == "RATE_LIMITED"
    too_many = _batch(http, headers, [item] * 11)
    assert too_many.status_code == 422 and too_many.json()["code"] == "BATCH_TOO_LARGE"


def test_masks_are_policy_settings_and_the_default_hands_out_little() -> None:
    granted = {"name", "sex", "birth_date", "id_no"}
    assert id_candidates(MASKS["id_no"], granted) == 500
    assert round(id_candidates(Mask(head=6, tail=1), granted)) == 45  # region, birth date, check digit
    with pytest.raises(ValidationError, match="只剩约"):
        policy(masks={"id_no": {"head": 6, "tail": 1}})
    with pytest.raises(ValidationError, match="只剩约"):
        policy(masks={"id_no": {"head": 16, "tail": 0}})
    # Without the birth date and sex beside it, the same mask leaves enough.
    assert policy(fields=["name", "id_no"], masks={"id_no": {"head": 6, "tail": 1}}).show(
        {"id_no": "330102199003071234"}, ["id_no"]
    ) == {"id_no": "330102***********4"}
    assert policy(masks={"phone": {"head": 3, "tail": 2}}).show({"phone": "13812345678"}, ["phone"]) == {
        "phone": "138******78"
    }


def test_masked_id_number_cannot_be_found_by_looking_up_its_candidates(
    http, session, new_client, monkeypatch
) -> None:
    """The same candidates tried through lookup by document: a 200 would confirm the number."""
    monkeypatch.setenv("POPEX_SHARING_LOOKUP_MISSES_PER_DAY", "5")
    sharing_settings.cache_clear()
    lookup_misses.cache_clear()
    try:
        true_no = citizen("33010219900307979")
        victim = person(session, name="郑八", sex="1", id_no=true_no)
        known = person(session, name="王二")
        client = new_client(fields=["name", "sex", "birth_date", "id_no"])
        seen = http.get(f"/api/v1/persons/{victim.person_no}", headers=client).json()
        tried = candidates(seen["id_no"], seen["birth_date"], male=True)
        before = last_audit_id(session)
        answers = [http.post("/api/v1/persons/lookup", json={"id_no": n}, headers=client) for n in tried]
        assert [a.status_code for a in answers[:5]] == [404] * 5
        assert {a.status_code for a in answers[5:]} == {429}, "a candidate was found by lookup"
        assert {a.json()["code"] for a in answers[5:]} == {"LOOKUP_LIMITED"}
        assert len(answers) == 500 and answers[tried.index(true_no)].status_code == 429
        refused = [r for r in audit_rows(session, before) if r.detail.get("code") == "LOOKUP_LIMITED"]
        assert len(refused) == 495
        # Another client is not affected; a lookup that finds someone takes nothing from the budget.
        other = new_client()
        for _ in range(10):
            found = http.post("/api/v1/persons/lookup", json={"id_no": known.id_no}, headers=other)
            assert found.status_code == 200
    finally:
        sharing_settings.cache_clear()
        lookup_misses.cache_clear()


def test_birth_date_cannot_be_learned_by_searching_every_date(http, session, new_client) -> None:
    """Search matches a name and a birth date: a hit would confirm the date to a client refused it."""
    holder = person(session, name="钱十一", birth_date=date(1987, 6, 5))
    client = new_client(fields=["name", "sex", "status"])
    before = last_audit_id(session)
    answer = http.post(
        "/api/v1/persons/search", json={"name": holder.name, "birth_date": "1987-06-05"}, headers=client
    )
    assert answer.status_code == 403 and answer.json()["code"] == "FIELD_NOT_GRANTED"
    assert answer.json()["detail"]["fields"] == ["birth_date"] and holder.person_no not in answer.text
    [row] = audit_rows(session, before)
    assert row.detail["outcome"] == "refused" and row.detail["person_nos"] == []
    granted = new_client(fields=["name", "birth_date"])
    found = http.post(
        "/api/v1/persons/search", json={"name": holder.name, "birth_date": "1987-06-05"}, headers=granted
    )
    assert [p["person_no"] for p in found.json()["items"]] == [holder.person_no]


def test_a_policy_without_verifiable_compares_what_it_may_read(http, session, new_client) -> None:
    """Policies stored before `verifiable` existed keep verifying the document and the readable fields."""
    data = policy().model_dump(mode="json")
    del data["verifiable"]
    assert Policy.model_validate({**data, "fields": ["name", "sex"]}).verifiable == ["id_no", "name"]
    assert Policy.model_validate(data).verifiable == ["id_no", "name", "birth_date"]
    p = person(session, name="孙十二")
    reader = new_client(Policy.model_validate({**data, "fields": ["name", "sex"]}))
    ok = http.post("/api/v1/verify", json={"id_no": p.id_no, "name": "孙十二"}, headers=reader)
    assert ok.status_code == 200 and ok.json()["match"] is True
    dated = http.post(
        "/api/v1/verify",
        json={"id_no": p.id_no, "name": "孙十二", "birth_date": "1990-03-07"},
        headers=reader,
    )
    assert dated.status_code == 403 and dated.json()["code"] == "FIELD_NOT_GRANTED"
