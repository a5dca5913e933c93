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
