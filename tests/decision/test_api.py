"""The stats API and the dashboard page return the indicators, suppressed, with stable error codes."""

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.orm import Session

from base.db import get_session
from decision import access, service
from decision.config import decision_settings
from decision.dependencies import COOKIE
from popex.app import create_app
from tests.decision.conftest import add_person
from tests.factories import make_batch

AS_OF = "2026-06-30"


@pytest.fixture
def client(session: Session, communities: list[str]) -> Iterator[TestClient]:
    """A client of the app on the test session, with a known population built."""
    c1, c2, c3 = communities[0], communities[1], communities[4]
    # The first extract, delivered on the date asked for: the data run to that day.
    batch = make_batch(session, source="gaj_hj", as_of=date(2026, 6, 30))
    for i in range(40):
        add_person(
            session,
            batch=batch,
            valid_from=date(2025, 1, 1),
            sex="1" if i < 20 else "2",
            birth_date=date(1940 + i * 2, 5, 1),
            community_code=c1,
        )
    for ptype, community, men, women in (("floating", c2, 3, 6), ("foreign", c3, 8, 9)):
        for i in range(men + women):
            add_person(
                session,
                valid_from=date(2025, 1, 1),
                population_type=ptype,
                sex="1" if i < men else "2",
                id_no=f"41010219900101{i:03d}X" if ptype == "floating" else f"E{i:08d}",
                id_type="居民身份证" if ptype == "floating" else "护照",
                birth_date=date(2018, 1, 1),
                community_code=community,
            )
    service.rebuild(session=session, epoch=date(2025, 1, 1), horizon=date(2028, 1, 1))
    # A known secret: the perturbed values below are the same on every run.
    session.execute(text("UPDATE decision.publication SET cell_key_secret = 'api-test'"))
    app = create_app()
    app.dependency_overrides[get_session] = lambda: session
    key = access.add_planner(session=session, name="规划局", actor="test")
    with TestClient(app, headers={"X-API-Key": key}) as test_client:
        yield test_client


def test_statistics_need_a_planner_unless_a_level_is_open(client: TestClient, session: Session) -> None:
    key = client.headers.pop("X-API-Key")
    for path in ("/api/v1/stats/dashboard", "/api/v1/stats/tables/pyramid", "/api/v1/stats/lineage"):
        refused = client.get(path, params={"date": AS_OF})
        assert refused.status_code == 401, path
        assert refused.json()["detail"]["code"] == "AUTH_REQUIRED"
        assert client.get(path, params={"date": AS_OF}, headers={"Authorization": f"Bearer {key}"}).is_success
    assert client.get("/api/v1/stats/dashboard", headers={"X-API-Key": "pk_wrong"}).status_code == 401
    assert client.get("/api/v1/stats/areas").is_success  # names of areas are no statistics
    for path in ("/decision", "/decision/lineage", "/decision/export/pyramid.csv"):
        page = client.get(path, params={"date": AS_OF, "area": "330102"}, follow_redirects=False)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith(f"/decision/login?next={path}%3F")
    # An operator opens the district level: districts for everyone, the city and streets still not.
    access.set_open(session=session, level="district", opened=True, actor="test")
    assert client.get("/api/v1/stats/dashboard", params={"date": AS_OF, "area": "330102"}).is_success
    assert client.get("/api/v1/stats/dashboard", params={"date": AS_OF}).status_code == 401
    assert (
        client.get("/api/v1/stats/dashboard", params={"date": AS_OF, "area": "330102001"}).status_code == 401
    )
    # A planner logs in with the key: the browser keeps it in an HTTP-only cookie.
    assert client.post("/decision/login", data={"key": "pk_wrong", "next": "/decision"}).status_code == 401
    login = client.post(
        "/decision/login", data={"key": key, "next": "https://evil.example/"}, follow_redirects=False
    )
    assert login.status_code == 303 and login.headers["location"] == "/decision"
    assert "httponly" in login.headers["set-cookie"].lower()
    assert client.get("/decision", params={"date": AS_OF}).status_code == 200
    log_out(client)
    assert client.get("/decision", params={"date": AS_OF}, follow_redirects=False).status_code == 303


def log_out(client: TestClient) -> None:
    """Log out as a planner does: the button of a page (a form with its CSRF token)."""
    page = client.get("/decision", params={"date": AS_OF})
    match = re.search(
        r'action="/decision/logout"><input type="hidden" name="csrf" value="([0-9a-f]+)"', page.text
    )
    assert match, "the page has a logout button"
    out = client.post("/decision/logout", data={"csrf": match.group(1)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/decision/login"


def test_the_login_cookie_names_the_planner_not_the_key(client: TestClient, session: Session) -> None:
    key = client.headers.pop("X-API-Key")
    page = {"date": AS_OF}
    # The key itself as the cookie (what the login set before) opens nothing.
    client.cookies.set(COOKIE, key)
    assert client.get("/decision", params=page, follow_redirects=False).status_code == 303
    client.cookies.clear()
    login = client.post("/decision/login", data={"key": key, "next": "/decision"}, follow_redirects=False)
    assert login.status_code == 303
    cookie = client.cookies[COOKIE]
    planner_id = session.scalar(text("SELECT id FROM decision.planner WHERE name = '规划局'"))
    assert key not in cookie and key not in login.headers["set-cookie"]
    payload = base64.urlsafe_b64decode(cookie.split(".")[0] + "==")
    assert json.loads(payload) == [planner_id]  # readable by anyone: it names the planner, nothing more
    assert f"Max-Age={8 * 3600}" in login.headers["set-cookie"]
    assert client.get("/decision", params=page).status_code == 200
    assert client.get("/api/v1/stats/dashboard", params=page).status_code == 200
    # A changed signature is refused.
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert client.get("/decision", params=page, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie)
    # Deactivated: the live cookie stops working at the next request.
    assert access.disable_planner(session=session, name="规划局", actor="test")
    refused = client.get("/decision", params=page, follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/decision/login")
    assert client.get("/api/v1/stats/dashboard", params=page).status_code == 401
    session.execute(text("UPDATE decision.planner SET active = true"))
    assert client.get("/decision", params=page).status_code == 200
    # Logout forgets the session in this browser.
    client.cookies.clear()
    assert client.post("/decision/login", data={"key": key}, follow_redirects=False).status_code == 303
    log_out(client)
    assert COOKIE not in client.cookies
    assert client.get("/decision", params=page, follow_redirects=False).status_code == 303


def test_logout_is_a_form_of_this_site_not_a_link(client: TestClient, session: Session) -> None:
    """Another site can make a browser GET /decision/logout (a link, an image) or POST a form to it, but
    cannot read the page's token: neither ends the planner's session."""
    key = client.headers.pop("X-API-Key")
    page = {"date": AS_OF}
    assert client.post("/decision/login", data={"key": key}, follow_redirects=False).status_code == 303
    confirm = client.get("/decision/logout", follow_redirects=False)
    assert confirm.status_code == 200 and 'method="post" action="/decision/logout"' in confirm.text
    assert COOKIE in client.cookies and client.get("/decision", params=page).status_code == 200
    for forged in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        refused = client.post("/decision/logout", data=forged, follow_redirects=False)
        assert refused.status_code == 403 and "CSRF 校验失败" in refused.text
        assert "set-cookie" not in refused.headers
    # A token of another session (another planner's page) does not fit this one.
    other_key = access.add_planner(session=session, name="统计局", actor="test")
    with TestClient(client.app) as other:
        assert (
            other.post("/decision/login", data={"key": other_key}, follow_redirects=False).status_code == 303
        )
        theirs = re.search(r'name="csrf" value="([0-9a-f]+)"', other.get("/decision/logout").text)
        assert theirs and theirs.group(1) not in client.get("/decision/logout").text
        wrong = client.post("/decision/logout", data={"csrf": theirs.group(1)}, follow_redirects=False)
        assert wrong.status_code == 403
    assert client.get("/decision", params=page, follow_redirects=False).status_code == 200
    log_out(client)
    assert client.get("/decision", params=page, follow_redirects=False).status_code == 303
    # Without a session the confirm page has nothing to ask: on to the login.
    assert client.get("/decision/logout", follow_redirects=False).headers["location"] == "/decision/login"


def test_the_login_cookie_is_secure_when_set_behind_a_tls_proxy(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy that ends TLS the server sees http: POPEX_DECISION_COOKIE_SECURE marks it Secure."""
    key = client.headers.pop("X-API-Key")

    def login_cookie() -> str:
        login = client.post("/decision/login", data={"key": key}, follow_redirects=False)
        assert login.status_code == 303
        return login.headers["set-cookie"]

    assert "secure" not in login_cookie().lower()  # plain http, not set: as before
    monkeypatch.setenv("POPEX_DECISION_COOKIE_SECURE", "true")
    decision_settings.cache_clear()
    try:
        assert "; secure" in login_cookie().lower()
    finally:
        monkeypatch.delenv("POPEX_DECISION_COOKIE_SECURE")
        decision_settings.cache_clear()


def test_the_login_session_expires(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    key = client.headers.pop("X-API-Key")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 8 * 3600 - 60)  # signed 8 h 1 min ago
    assert client.post("/decision/login", data={"key": key}, follow_redirects=False).status_code == 303
    kept = client.cookies[COOKIE]
    monkeypatch.setattr(time, "time", real)
    client.cookies.clear()
    client.cookies.set(COOKIE, kept)  # a browser that keeps the cookie beyond its Max-Age
    assert client.get("/decision", params={"date": AS_OF}, follow_redirects=False).status_code == 303


def audited(session: Session, prefix: str) -> list[tuple[str, str, dict[str, object]]]:
    rows = session.execute(
        text("SELECT actor, action, detail FROM audit_log WHERE action LIKE :p ORDER BY id"),
        {"p": prefix + "%"},
    ).all()
    return [(r.actor, r.action, r.detail) for r in rows]


def test_wrong_keys_lock_the_address_out(client: TestClient, session: Session) -> None:
    key = client.headers.pop("X-API-Key")
    guesses = [f"pk_guess{i}" for i in range(6)]
    codes = [client.post("/decision/login", data={"key": g}).status_code for g in guesses]
    assert codes == [401, 401, 401, 401, 401, 429]
    locked = client.post("/decision/login", data={"key": key}, follow_redirects=False)
    assert locked.status_code == 429 and "登录失败次数过多，请 15 分钟后再试" in locked.text
    assert COOKIE not in client.cookies  # the right key is not even looked at while locked
    # The API from the same address: refused too, with the time to wait.
    api = client.get("/api/v1/stats/dashboard", params={"date": AS_OF}, headers={"X-API-Key": key})
    assert api.status_code == 429 and api.json()["detail"]["code"] == "TOO_MANY_FAILURES"
    assert api.headers["retry-after"] == "900"
    # Another address is not locked out by these failures.
    with TestClient(client.app, client=("10.0.0.9", 50000)) as other:
        assert other.post("/decision/login", data={"key": key}, follow_redirects=False).status_code == 303
    # Audited: the address, each refusal and the lock once; never the key or a guess.
    events = audited(session, "decision.key.")
    assert [a for _, a, _ in events] == ["decision.key.refused"] * 5 + ["decision.key.locked"]
    assert {actor for actor, _, _ in events} == {"address:testclient"}
    assert events[-1][2] == {"ip": "testclient", "via": "login", "minutes": 15}
    logged = json.dumps(audited(session, "decision."), ensure_ascii=False)
    assert "pk_" not in logged and key not in logged
    # An operator lifts it.
    assert access.unlock_address(session=session, ip="testclient", actor="test") == 5
    assert client.post("/decision/login", data={"key": key}, follow_redirects=False).status_code == 303


def test_a_locked_address_is_told_the_minutes_left(client: TestClient, session: Session) -> None:
    """Failures that began 11 minutes ago lock the address until the oldest of five leaves the window."""
    key = client.headers.pop("X-API-Key")
    session.execute(
        text(
            "INSERT INTO decision.login_failure (ip, at) SELECT 'testclient', now() - make_interval(mins => 11 - g)"
            " FROM generate_series(0, 3) g"
        )
    )
    assert client.post("/decision/login", data={"key": "pk_guess"}).status_code == 401
    locked = client.post("/decision/login", data={"key": key}, follow_redirects=False)
    assert locked.status_code == 429 and "请 4 分钟后再试" in locked.text
    api = client.get("/api/v1/stats/dashboard", params={"date": AS_OF}, headers={"X-API-Key": key})
    assert api.status_code == 429 and 180 < int(api.headers["retry-after"]) <= 240


def test_wrong_api_keys_lock_the_address_out(client: TestClient, session: Session) -> None:
    key = client.headers.pop("X-API-Key")
    codes = [
        client.get(
            "/api/v1/stats/dashboard", params={"date": AS_OF}, headers={"X-API-Key": f"pk_{i}"}
        ).status_code
        for i in range(6)
    ]
    assert codes == [401, 401, 401, 401, 401, 429]
    bearer = client.get("/api/v1/stats/dashboard", headers={"Authorization": f"Bearer {key}"})
    assert bearer.status_code == 429
    assert "API 密钥错误次数过多，请 15 分钟后再试" in bearer.json()["detail"]["message"]
    # Open levels need no key and stay open to that address.
    access.set_open(session=session, level="district", opened=True, actor="test")
    assert client.get("/api/v1/stats/dashboard", params={"date": AS_OF, "area": "330102"}).is_success
    with TestClient(client.app, client=("10.0.0.9", 50000), headers={"X-API-Key": key}) as other:
        assert other.get("/api/v1/stats/dashboard", params={"date": AS_OF}).is_success
    assert [a for _, a, d in audited(session, "decision.key.") if d["via"] == "api"] == [
        "decision.key.refused"
    ] * 5 + ["decision.key.locked"]


def test_dashboard_api_returns_perturbed_indicators(client: TestClient) -> None:
    response = client.get("/api/v1/stats/dashboard", params={"date": AS_OF})
    assert response.status_code == 200
    body = response.json()
    kpis = {k["key"]: k["cell"] for k in body["kpis"]}
    # True counts: 66 residents, 40 registered (20 + 20), 9 floating (3 men, 6 women), 17 foreign (8 + 9).
    # Each count is published with a noise of at most ±5 from its cell key; one below 5 shows as "*".
    assert kpis["population"] == {"value": 66, "suppressed": False, "display": "66"}
    assert kpis["registered"]["value"] == 42
    assert kpis["floating"]["value"] == 7
    tables = {t["key"]: t for t in body["tables"]}
    type_sex = tables["type_sex"]
    assert type_sex["columns"] == ["男", "女"]
    rows = {r["label"]: ([c["display"] for c in r["cells"]], r["total"]["display"]) for r in type_sex["rows"]}
    # Perturbed independently, a table need not add up: that is what keeps the 3 floating men hidden.
    assert rows == {"户籍": (["18", "18"], "42"), "流动": (["*", "9"], "7"), "境外": (["8", "10"], "19")}
    assert [c["display"] for c in type_sex["total_row"]["cells"]] == ["32", "37"]
    assert type_sex["total_row"]["total"]["display"] == "66"
    origin = tables["origin"]
    assert [(r["label"], r["cells"][0]["display"]) for r in origin["rows"]] == [("河南省", "11")]
    # The same count shows the same value wherever it is published: the city's floating total here too.
    assert origin["total_row"]["cells"][0]["display"] == "7"
    assert [a["name"] for a in body["children"]] == ["上城区", "西湖区"]
    assert tables["sub_areas"]["rows"][0]["code"] == "330102"


def test_table_areas_lineage_and_errors(client: TestClient) -> None:
    pyramid = client.get(
        "/api/v1/stats/tables/pyramid", params={"date": AS_OF, "area": "330102001001"}
    ).json()
    assert pyramid["key"] == "pyramid" and len(pyramid["rows"]) == 21
    assert pyramid["total_row"]["total"]["value"] == 40
    areas = client.get("/api/v1/stats/areas", params={"parent": "330102"}).json()
    assert [a["code"] for a in areas] == ["330102001", "330102002"]
    lineage = client.get("/api/v1/stats/lineage", params={"date": AS_OF, "area": "330102001001"}).json()
    assert lineage["population"]["value"] == 40
    assert lineage["departments"][0]["sources"][0]["source"] == "gaj_hj"
    # 40 versions, perturbed by a key that includes the batch's id (which differs between runs).
    assert abs(lineage["departments"][0]["sources"][0]["batches"][0]["versions"]["value"] - 40) <= 3
    assert client.get("/api/v1/stats/dashboard", params={"area": "999999"}).json() == {
        "detail": {"code": "UNKNOWN_AREA", "message": "区划代码 999999 不存在"}
    }
    out = client.get("/api/v1/stats/dashboard", params={"date": "2020-01-01"})
    assert out.status_code == 422 and out.json()["detail"]["code"] == "DATE_OUT_OF_RANGE"
    for path in ("/api/v1/stats/dashboard", "/api/v1/stats/lineage", "/decision/export/type_sex.csv"):
        after = client.get(path, params={"date": "2026-07-01"})
        assert after.status_code == 422, path
        assert after.json()["detail"] == {
            "code": "DATE_AFTER_DATA",
            "message": "统计日期 2026-07-01 晚于数据截至日 2026-06-30：此后的出生、死亡、迁入迁出尚未报送，"
            "无法统计。请选择 2026-06-30 或更早的日期。",
        }
    page = client.get("/decision", params={"date": "2026-07-01"})
    assert page.status_code == 422 and "晚于数据截至日 2026-06-30" in page.text
    default = client.get("/api/v1/stats/dashboard").json()
    assert default["as_of"] == default["data_until"] == "2026-06-30"
    assert (
        client.get("/api/v1/stats/tables/nope", params={"date": AS_OF}).json()["detail"]["code"]
        == "UNKNOWN_TABLE"
    )


def test_page_exports_and_static_assets(client: TestClient) -> None:
    page = client.get("/decision", params={"date": AS_OF})
    assert page.status_code == 200
    assert "全市人口统计" in page.text and "/decision/static/echarts.min.js" in page.text
    assert "数据截至 <strong>2026-06-30</strong>" in page.text and 'max="2026-06-30"' in page.text
    assert 'href="/decision?area=330102&amp;date=2026-06-30"' in page.text or "area=330102&date" in page.text
    script = client.get("/decision/static/echarts.min.js")
    assert script.status_code == 200 and len(script.content) > 500_000
    assert client.get("/decision/static/../router.py").status_code == 404
    csv = client.get("/decision/export/type_sex.csv", params={"date": AS_OF})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[1:6] == [
        "人口类型,男,女,合计",
        "户籍,18,18,42",
        "流动,*,9,7",
        "境外,8,10,19",
        "合计,32,37,66",
    ]
    xlsx = client.get("/decision/export/pyramid.xlsx", params={"date": AS_OF, "area": "330102001001"})
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["年龄组", "男", "女", "合计"]
    assert sheet["A1"].value == "上城一甲社区 年龄金字塔（5岁组）（截至 2026-06-30）　数据截至 2026-06-30"
    total = next(r for r in sheet.iter_rows(min_row=3) if r[0].value == "合计")
    assert [c.value for c in total] == ["合计", 18, 18, 40]
    assert [c.data_type for c in total] == ["s", "n", "n", "n"]
    assert "*" in [c.value for r in sheet.iter_rows(min_row=3) for c in r]  # suppressed cells stay text
    lineage_page = client.get("/decision/lineage", params={"date": AS_OF, "area": "330102001001"})
    assert lineage_page.status_code == 200 and "gaj_hj" in lineage_page.text
