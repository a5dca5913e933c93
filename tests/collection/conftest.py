"""Officers of two communities, and a test client whose requests share the test's rolled-back transaction."""

import re
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from base.db import get_session
from base.web import ROOT
from collection import service
from collection.models import Officer
from collection.router import pages, work_date

TODAY = date.today()
PASSWORD = "correct-horse-9"
ZHANG = "330102198001010018"  # valid check character
ZHANG_BAD = "330102198001010019"
LI = "330102198505050021"


@pytest.fixture
def officers(session: Session, areas: list[str]) -> tuple[Officer, Officer]:
    """Officer A of 清波社区 and officer B of 柳翠社区."""
    a = service.add_officer(
        session=session, officer_no="A001", name="张信息", community_code=areas[0], password=PASSWORD
    )
    b = service.add_officer(
        session=session, officer_no="B001", name="李信息", community_code=areas[1], password=PASSWORD
    )
    return a, b


def collection_app() -> FastAPI:
    """The collection pages and the shared static files, as popex.app mounts them (without the other platforms)."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=ROOT / "popex" / "static"), name="static")
    app.include_router(pages)
    return app


@pytest.fixture
def client(session: Session) -> Iterator[TestClient]:
    """The app with the collection pages on the test's session and a fixed working day."""
    app = collection_app()
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[work_date] = lambda: TODAY
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


def log_in(client: TestClient, officer_no: str = "A001", password: str = PASSWORD) -> str:
    """Log in and return the CSRF token of the new session."""
    response = client.post("/collection/login", data={"officer_no": officer_no, "password": password})
    assert response.status_code == 303, response.text
    page = client.get("/collection")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def person_form(**overrides: str) -> dict[str, str]:
    """A good one-person form."""
    form = {
        "name": "张伟",
        "id_no": ZHANG,
        "sex": "男",
        "birth_date": "1980-01-01",
        "ethnicity": "汉族",
        "phone": "13812345678",
        "address": "清波街1号",
        "population_type": "户籍",
        "residence_status": "在住",
        "remark": "",
    }
    form.update(overrides)
    return form
