"""Property-based tests of the sharing API against its own OpenAPI schema (schemathesis).

Requests are generated from the schema (valid and invalid bodies, paths and queries) and sent with a
valid key, end user and purpose, so that they reach the services; every response must conform to
the schema (status code, content type, body), and none may be a server error.
"""

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from sqlalchemy.orm import Session

from tests.sharing_api.support import event, person

SHARING_PATHS = r"^/api/v1/(persons|verify|changes|baseline)"


@pytest.fixture
def valid_headers(session: Session, new_client: Callable[..., dict[str, str]]) -> dict[str, str]:
    """A client that may do everything (whole city, every type), and a few persons and events."""
    for i in range(3):
        p = person(session, name=f"测试{i}")
        event(
            session, p, "moved", payload={"changed": ["community_code"], "community_code": p.community_code}
        )
    return new_client(areas=["*"], population_types=["registered", "floating", "foreign"])


# schemathesis' own pytest integration (from_fixture) does not run under pytest 9, so each operation's
# strategy is driven by hypothesis here.
def test_api_conforms_to_its_schema(app: FastAPI, valid_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex=SHARING_PATHS)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) == 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=valid_headers)

        conforms()
