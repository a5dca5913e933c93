"""Fixtures for the sharing API: the app from create_app on the test's session, clients with policies."""

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.orm import Session

from popex.app import create_app
from sharing_api.clients import create_client
from sharing_api.config import sharing_settings
from sharing_api.dependencies import Backends, get_session, rate_limiter
from sharing_api.policy import Policy
from tests.conftest import migrated_database
from tests.sharing_api.support import PURPOSE, policy

_codes = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def rate_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This test session's own rate-limit buckets (client codes repeat from one session to the next)."""
    with pytest.MonkeyPatch.context() as patch:  # restores a value the environment had before
        patch.setenv("POPEX_SHARING_RATE_FILE", str(tmp_path_factory.mktemp("sharing") / "rate-buckets"))
        sharing_settings.cache_clear()
        rate_limiter.cache_clear()
        yield
    sharing_settings.cache_clear()
    rate_limiter.cache_clear()


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """A database of the test module's own, for writers that commit from their own connections."""
    with migrated_database("popex_sharing") as url:
        yield url


@pytest.fixture
def app(session: Session) -> FastAPI:
    """The whole app, its sharing routes reading and auditing through the test's session."""
    application = create_app()
    application.dependency_overrides[get_session] = lambda: session
    application.state.sharing_backends = Backends.of_session(session)
    return application


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client of the app."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def new_client(session: Session) -> Callable[..., dict[str, str]]:
    """Create an API client with a policy; returns the request headers that authenticate it."""

    def make(policy_: Policy | None = None, *, expired: bool = False, **changes: Any) -> dict[str, str]:
        code = f"test_{next(_codes)}"
        client, key = create_client(
            session=session,
            code=code,
            name=f"测试单位{code}",
            policy=policy_ or policy(**changes),
            operator="tester",
        )
        if expired:
            client.key_expires_at = func.now() - timedelta(seconds=1)
            session.flush()
        return {"X-API-Key": key, "X-End-User": "clerk-007", "X-Purpose": PURPOSE}

    return make
