"""FastAPI dependencies of decision analysis: who may read the statistics of the area asked for."""

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from base.db import get_session
from decision import access
from decision.schemas import ErrorOut

COOKIE = "popex_planner"
SessionDep = Annotated[Session, Depends(get_session)]
AreaParam = Annotated[str, Query(max_length=12, pattern=r"^[0-9]*$", description="区划代码；空为全市")]
DateParam = Annotated[
    date | None,
    Query(alias="date", description="统计日期，默认为数据截至日（不晚于今天）；晚于数据截至日的日期不予统计"),
]
AUTH_MESSAGE = "该层级的统计数据仅向规划人员提供：请登录，或在请求头 X-API-Key 中提供 API 密钥"


def presented_key(request: Request) -> str | None:
    """The API key of a request: the X-API-Key header or a bearer token (a browser has a session instead)."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return None


def client_address(request: Request) -> str:
    """The address a request came from, as the server sees it (behind a proxy: uvicorn --proxy-headers)."""
    return request.client.host if request.client else "unknown"


def locked_out(minutes: int) -> HTTPException:
    """429 for an address locked out after too many wrong keys."""
    return HTTPException(
        429,
        ErrorOut(
            code="TOO_MANY_FAILURES", message=f"API 密钥错误次数过多，请 {minutes} 分钟后再试"
        ).model_dump(),
        headers={"Retry-After": str(minutes * 60)},
    )


def _may_read(request: Request, session: Session, area: str) -> bool:
    """True for an open level, a live planner's session, or a planner's key; a wrong key is counted
    against the address (committed at once: the 401 that follows rolls the request's work back)."""
    if access.level_of(area) in access.open_levels(session):
        return True
    if access.planner_for_session(session, request.cookies.get(COOKIE)) is not None:
        return True
    key = presented_key(request)
    if not key:
        return False
    try:
        planner = access.check_key(session=session, key=key, ip=client_address(request), via="api")
    except access.AddressLocked as exc:
        raise locked_out(exc.minutes) from exc
    if planner is None:
        session.commit()
    return planner is not None


def api_reader(request: Request, session: SessionDep, area: AreaParam = "") -> None:
    """401 unless the area's level is open or the request carries a planner's key or session; 429 from an
    address locked out after too many wrong keys."""
    if not _may_read(request, session, area):
        raise HTTPException(
            401,
            ErrorOut(code="AUTH_REQUIRED", message=AUTH_MESSAGE).model_dump(),
            headers={"WWW-Authenticate": "Bearer"},
        )


def page_reader(request: Request, session: SessionDep, area: AreaParam = "", day: DateParam = None) -> None:
    """A page of an area the visitor may not read sends them to the planners' login (a malformed
    request is answered first: its parameters are checked before this runs)."""
    if not _may_read(request, session, area):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "请先登录", headers={"Location": f"/decision/login?next={quote(target)}"})


ApiReader = Depends(api_reader)
PageReader = Depends(page_reader)
