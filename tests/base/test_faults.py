"""A fault no route handled: a Chinese 500 (JSON under /api/), logged without the exception's message
(a database error's carries the statement's values), and not raised on to the server, which would log
it whole."""

import logging

import psycopg2.errors
import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient

from popex.app import create_app

ID_NO = "330102199003071234"


def _boom() -> None:
    raise sqlalchemy.exc.ProgrammingError(
        "SELECT name FROM person WHERE id_no = %(n)s", {"n": ID_NO}, psycopg2.errors.UndefinedColumn()
    )


@pytest.fixture
def http() -> TestClient:
    app = create_app()
    app.add_api_route("/api/v1/_boom", _boom)
    app.add_api_route("/_boom", _boom)
    # raise_server_exceptions (the default): an exception that left the app would be raised here.
    return TestClient(app)


def test_an_api_fault_is_json_with_a_stable_code(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="base.faults"):
        answer = http.get("/api/v1/_boom")
    assert answer.status_code == 500
    assert answer.json() == {
        "code": "INTERNAL_ERROR",
        "message": "服务内部错误，已记入服务日志，请联系平台管理员",
        "detail": None,
    }
    assert "request GET /api/v1/_boom failed: ProgrammingError" in caplog.text
    assert ID_NO not in caplog.text and ID_NO not in answer.text


def test_a_page_fault_is_a_chinese_page(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="base.faults"):
        answer = http.get("/_boom")
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert "服务内部错误" in answer.text and 'href="/"' in answer.text
    assert ID_NO not in caplog.text and "_boom" in caplog.text


def test_the_engines_leave_statement_parameters_out_of_error_messages() -> None:
    from sqlalchemy import text

    from base.db import get_engine
    from sharing_api.dependencies import api_engine

    for engine in (get_engine(), api_engine()):
        with engine.connect() as conn, pytest.raises(sqlalchemy.exc.ProgrammingError) as failed:
            conn.execute(text("SELECT name FROM no_such_table WHERE id_no = :n"), {"n": ID_NO})
        assert "no_such_table" in str(failed.value) and ID_NO not in str(failed.value)
