"""Officers' login: throttling, session expiry, password reset and CSRF."""

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collection import service
from collection.models import LoginFailure, SubmissionRow
from registry.models import AuditLog
from tests.collection.conftest import PASSWORD, log_in, person_form


def test_login_sets_an_http_only_session_and_bad_password_is_refused(client: TestClient, officers) -> None:
    bad = client.post("/collection/login", data={"officer_no": "A001", "password": "wrong"})
    assert bad.status_code == 401 and "工号或密码不正确" in bad.text
    good = client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD})
    assert good.status_code == 303 and good.headers["location"] == "/collection"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie


def test_fifth_failure_throttles_the_account_from_that_address(client: TestClient, officers) -> None:
    codes = [
        client.post("/collection/login", data={"officer_no": "A001", "password": f"guess{i}"}).status_code
        for i in range(6)
    ]
    assert codes == [401, 401, 401, 401, 401, 429]
    refused = client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD})
    assert refused.status_code == 429 and "登录失败次数过多，请 15 分钟后再试" in refused.text
    # Another account from the same address is not locked out by A's failures.
    assert (
        client.post("/collection/login", data={"officer_no": "B001", "password": PASSWORD}).status_code == 303
    )


def test_a_locked_officer_is_told_the_minutes_left_not_the_whole_window(
    client: TestClient, session: Session, officers
) -> None:
    """Locked by failures that began 12 minutes ago, the account opens when the oldest of the five
    leaves the 15-minute window: 3 minutes from now (as the planners' login tells); the audit says so too.
    The address's own lock, when later (20 failures in 5 minutes), is the one told."""
    session.add_all(
        LoginFailure(officer_no="A001", ip="testclient", at=func.now() - timedelta(minutes=12 - i))
        for i in range(4)
    )
    session.flush()
    assert client.post("/collection/login", data={"officer_no": "A001", "password": "x"}).status_code == 401
    locked = client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD})
    assert locked.status_code == 429 and "请 3 分钟后再试" in locked.text
    detail = session.scalar(select(AuditLog.detail).where(AuditLog.action == "collection.login.throttled"))
    assert detail == {"ip": "testclient", "minutes": 3, "scope": "account"}
    session.add_all(
        LoginFailure(officer_no=f"X{i:04d}", ip="testclient", at=func.now() - timedelta(minutes=5))
        for i in range(19)
    )
    session.flush()
    locked = client.post("/collection/login", data={"officer_no": "B001", "password": PASSWORD})
    assert locked.status_code == 429 and "请 10 分钟后再试" in locked.text


def test_a_locked_account_is_audited_once_however_often_it_is_tried(
    client: TestClient, session: Session, officers
) -> None:
    def audited(action: str) -> int:
        return (
            session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)) or 0
        )

    for i in range(5):
        assert (
            client.post("/collection/login", data={"officer_no": "A001", "password": f"guess{i}"}).status_code
            == 401
        )
    assert (audited("collection.login.failed"), audited("collection.login.throttled")) == (5, 1)
    codes = {
        client.post("/collection/login", data={"officer_no": "A001", "password": p}).status_code
        for p in [f"script{i}" for i in range(49)] + [PASSWORD]
    }
    assert codes == {429}  # every attempt refused, the right password too
    assert (audited("collection.login.failed"), audited("collection.login.throttled")) == (5, 1)


def test_made_up_officer_numbers_lock_the_address_after_twenty_and_are_audited_once(
    client: TestClient, session: Session, officers
) -> None:
    """A script trying a new officer number each time is counted per address: the 21st attempt from it
    is refused without a look at the password (the real officer's too), the lock audited once."""

    def audited(action: str) -> int:
        return (
            session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)) or 0
        )

    codes = [
        client.post("/collection/login", data={"officer_no": f"X{i:04d}", "password": "guess"}).status_code
        for i in range(30)
    ]
    assert codes == [401] * 20 + [429] * 10
    assert (
        client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).status_code == 429
    )
    assert (audited("collection.login.failed"), audited("collection.login.throttled")) == (20, 1)
    throttled = session.scalars(
        select(AuditLog.detail).where(AuditLog.action == "collection.login.throttled")
    )
    assert [d["scope"] for d in throttled] == ["address"]
    # Another address is not locked out by this one's failures.
    other = TestClient(
        client.app, base_url=str(client.base_url), follow_redirects=False, client=("10.9.9.9", 50000)
    )
    assert (
        other.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).status_code == 303
    )


def test_the_session_cookie_is_secure_over_https_or_when_set(
    client: TestClient, officers, monkeypatch
) -> None:
    """Secure whenever the request came over HTTPS, and always with POPEX_COLLECTION_COOKIE_SECURE (a
    proxy ending TLS); plain HTTP without the setting (a development machine) has none."""
    from collection.config import collection_settings

    def cookie(base_url: str) -> str:
        with TestClient(client.app, base_url=base_url, follow_redirects=False) as c:
            return c.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).headers[
                "set-cookie"
            ]

    assert "Secure" not in cookie("http://testserver")
    assert "Secure" in cookie("https://testserver")
    monkeypatch.setenv("POPEX_COLLECTION_COOKIE_SECURE", "true")
    collection_settings.cache_clear()
    try:
        assert "Secure" in cookie("http://testserver")
    finally:
        monkeypatch.delenv("POPEX_COLLECTION_COOKIE_SECURE")
        collection_settings.cache_clear()


def test_session_expires(client: TestClient, officers, monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 8 * 3600 - 60)  # signed 8 h 1 min ago
    log_in_response = client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD})
    assert log_in_response.status_code == 303
    monkeypatch.setattr(time, "time", real)
    page = client.get("/collection")
    assert page.status_code == 303 and page.headers["location"] == "/collection/login"
    assert client.post("/collection/api/check", json={"values": {}}).status_code == 401


def test_forged_cookie_and_password_reset_end_the_session(
    client: TestClient, session: Session, officers
) -> None:
    log_in(client)
    service.reset_password(session=session, officer_no="A001", password="another-pass-1")
    session.flush()
    assert client.get("/collection").status_code == 303
    client.cookies.set("popex_collection", "eyJmb3JnZWQiOjF9.forged.sig", path="/collection")
    assert client.get("/collection").status_code == 303


def test_disabled_officer_is_logged_out(client: TestClient, session: Session, officers) -> None:
    log_in(client)
    service.disable_officer(session=session, officer_no="A001")
    session.flush()
    assert client.get("/collection").status_code == 303
    assert (
        client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).status_code == 401
    )


def test_form_without_the_session_csrf_token_is_refused_and_writes_nothing(
    client: TestClient, session: Session, officers
) -> None:
    log_in(client)
    missing = client.post("/collection/form", data=person_form())
    wrong = client.post("/collection/form", data={**person_form(), "csrf": "not-the-token"})
    check = client.post("/collection/api/check", json={"values": {}}, headers={"X-CSRF-Token": "nope"})
    assert (missing.status_code, wrong.status_code, check.status_code) == (403, 403, 403)
    assert "CSRF" in wrong.text
    assert session.scalar(select(func.count()).select_from(SubmissionRow)) == 0


def test_failures_past_the_window_are_forgotten_by_the_next_one(
    client: TestClient, session: Session, officers
) -> None:
    """Years of failures from an address do not pile up: the next failure from it removes those no
    longer counted (older than the window), and they do not count towards a lock."""
    session.add_all(
        LoginFailure(officer_no=f"X{i:04d}", ip="testclient", at=func.now() - timedelta(days=1 + i))
        for i in range(30)
    )
    session.flush()
    assert (
        client.post("/collection/login", data={"officer_no": "A001", "password": "guess"}).status_code == 401
    )
    left = session.scalars(select(LoginFailure.officer_no).where(LoginFailure.ip == "testclient")).all()
    assert left == ["A001"]
    assert (
        client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).status_code == 303
    )
