"""FastAPI dependencies of the collection platform: the database session and the logged-in officer."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from base.db import get_session
from collection.auth import COOKIE, SessionData, csrf_ok, password_version, read_session
from collection.models import Officer
from registry.models import Area

SessionDep = Annotated[Session, Depends(get_session)]


@dataclass
class Auth:
    """The logged-in officer and their session."""

    officer: Officer
    data: SessionData
    community_name: str = ""

    def require_csrf(self, token: str | None) -> None:
        """403 unless the token sent is the session's."""
        if not csrf_ok(self.data, token):
            raise HTTPException(403, "页面已过期或来源不明（CSRF 校验失败），请刷新页面后重试")


def _current(request: Request, session: Session) -> Auth | None:
    data = read_session(request.cookies.get(COOKIE))
    if data is None:
        return None
    officer = session.get(Officer, data.officer_id)
    if officer is None or not officer.active or password_version(officer) != data.password_version:
        return None
    area = session.get(Area, officer.community_code)
    return Auth(officer, data, area.name if area else "")


def page_auth(request: Request, session: SessionDep) -> Auth:
    """The officer of a page request; anyone else is sent to the login page."""
    auth = _current(request, session)
    if auth is None:
        raise HTTPException(303, "请先登录", headers={"Location": "/collection/login"})
    return auth


def api_auth(request: Request, session: SessionDep) -> Auth:
    """The officer of a JSON request; 401 otherwise."""
    auth = _current(request, session)
    if auth is None:
        raise HTTPException(401, "登录已过期，请重新登录")
    return auth


PageAuth = Annotated[Auth, Depends(page_auth)]
ApiAuth = Annotated[Auth, Depends(api_auth)]
