"""Every route the departments' developers read about at /docs is described in Chinese."""

import re

from fastapi.testclient import TestClient

from popex.app import create_app

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_documented_operation_has_a_chinese_summary_description_and_tag() -> None:
    schema = TestClient(create_app()).get("/openapi.json").json()
    operations = [
        (method.upper(), path, op) for path, item in schema["paths"].items() for method, op in item.items()
    ]
    assert len(operations) >= 15
    for method, path, op in operations:
        for key in ("summary", "description"):
            assert CJK.search(op.get(key, "")), f"{method} {path}: {key} {op.get(key)!r}"
        assert all(CJK.search(tag) for tag in op["tags"]), f"{method} {path}: tags {op['tags']}"


def test_a_browser_gets_error_pages_and_a_program_json() -> None:
    """A malformed page URL or a missing page answers a browser with a page in words (issue 18)."""
    client = TestClient(create_app())
    page = {"accept": "text/html,application/xhtml+xml"}
    for url, status in (("/monitor?now=bad", 422), ("/decision?date=2026-13-01", 422), ("/nope", 404)):
        answer = client.get(url, headers=page)
        assert answer.status_code == status and answer.headers["content-type"].startswith("text/html"), url
        assert "<html" in answer.text and "首页" in answer.text
        assert client.get(url).headers["content-type"] == "application/json"
    assert "返回监控管理" in client.get("/monitor?now=bad", headers=page).text
