"""Routes of the decision platform: the dashboard page, table exports, static assets and the stats API."""

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from base import clock
from base.web import render
from decision import access, aggregates, export, indicators
from decision.config import decision_settings
from decision.dependencies import (
    COOKIE,
    ApiReader,
    AreaParam,
    DateParam,
    PageReader,
    SessionDep,
    client_address,
)
from decision.protection import DEFAULT_THRESHOLD
from decision.schemas import AreaOut, Dashboard, ErrorOut, Lineage, StatTable

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {p.name for p in STATIC.iterdir() if p.suffix in (".js", ".css")} if STATIC.is_dir() else set()

pages = APIRouter(prefix="/decision", include_in_schema=False)
api = APIRouter(
    prefix="/stats",
    tags=["决策分析"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)

Months = Annotated[int, Query(ge=1, le=60)]


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=ErrorOut(code=code, message=message).model_dump())


def _as_of(session: Session, day: date | None, until: date | None) -> date:
    """The requested date, or the data's last day (today at the latest) brought inside the aggregates' window."""
    if day is not None:
        return day
    window = aggregates.read_window(session)
    latest = min(clock.today(), until) if until is not None else clock.today()
    if window is None:
        return latest
    return min(max(latest, window.epoch), window.horizon - timedelta(days=1))


def dashboard_for(session: Session, area: str, day: date | None, months: int = 12) -> Dashboard:
    """The dashboard, with the service's errors as HTTP errors with stable codes."""
    until = indicators.data_until(session)
    try:
        return indicators.build_dashboard(
            session=session,
            area_code=area,
            as_of=_as_of(session, day, until),
            threshold=DEFAULT_THRESHOLD,
            months=months,
            until=until,
        )
    except indicators.UnknownAreaError as exc:
        raise _error(404, "UNKNOWN_AREA", f"区划代码 {exc.args[0]} 不存在") from exc
    except indicators.AfterDataError as exc:
        raise _error(422, "DATE_AFTER_DATA", str(exc)) from exc
    except indicators.OutOfWindowError as exc:
        raise _error(422, "DATE_OUT_OF_RANGE", str(exc)) from exc
    except indicators.NotBuiltError as exc:
        raise _error(503, "NOT_BUILT", str(exc)) from exc


@pages.get("", response_class=HTMLResponse, dependencies=[PageReader])
def dashboard_page(
    request: Request, session: SessionDep, area: AreaParam = "", day: DateParam = None, months: Months = 12
) -> HTMLResponse:
    """The dashboard of one area on one date."""
    try:
        board = dashboard_for(session, area, day, months)
    except HTTPException as exc:
        return render(request, "decision/error.html", {"error": exc.detail}, status_code=exc.status_code)
    return render(
        request,
        "decision/dashboard.html",
        {
            "d": board,
            "data": board.model_dump(mode="json"),
            "indicators": indicators.LINEAGE_INDICATORS,
            "logout_csrf": _logout_csrf(request, session),
        },
    )


@pages.get("/export/{key}.{fmt}", dependencies=[PageReader])
def export_table(
    key: str, fmt: Literal["csv", "xlsx"], session: SessionDep, area: AreaParam = "", day: DateParam = None
) -> Response:
    """One table of the dashboard as CSV or XLSX (numbers as numbers, text guarded against formulas)."""
    board = dashboard_for(session, area, day)
    table = next((t for t in board.tables if t.key == key), None)
    if table is None:
        raise _error(404, "UNKNOWN_TABLE", f"没有名为 {key} 的表")
    caption = f"{board.area.name} {table.title}（截至 {board.as_of:%Y-%m-%d}）"
    if board.data_until is not None:
        caption += f"　数据截至 {board.data_until:%Y-%m-%d}"
    body = export.to_csv(table, caption) if fmt == "csv" else export.to_xlsx(table, caption)
    name = f"popex_{key}_{board.area.code or 'city'}_{board.as_of:%Y%m%d}.{fmt}"
    return Response(
        body,
        media_type=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@pages.get("/lineage", response_class=HTMLResponse, dependencies=[PageReader])
def lineage_page(
    request: Request,
    session: SessionDep,
    area: AreaParam = "",
    day: DateParam = None,
    indicator: str = "population",
) -> HTMLResponse:
    """Which departments and batches a number comes from."""
    try:
        result = _lineage(session, area, day, indicator)
    except HTTPException as exc:
        return render(request, "decision/error.html", {"error": exc.detail}, status_code=exc.status_code)
    return render(
        request,
        "decision/lineage.html",
        {
            "l": result,
            "indicators": indicators.LINEAGE_INDICATORS,
            "logout_csrf": _logout_csrf(request, session),
        },
    )


def _local(target: str) -> str:
    """Where to go after logging in: a decision page of this site, never elsewhere."""
    return target if target.startswith("/decision") and not target.startswith("//") else "/decision"


@pages.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/decision") -> HTMLResponse:
    """The planners' login: their API key opens the statistics of every level."""
    return render(request, "decision/login.html", {"next": _local(next), "error": None})


@pages.post("/login", response_class=HTMLResponse, response_model=None)
def login(
    request: Request,
    session: SessionDep,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form()] = "/decision",
) -> Response:
    """Check the key; on success a signed, expiring session cookie naming the planner (not the key), and on
    to the page asked for. An address with too many wrong keys in the window is refused for a while."""
    ip = client_address(request)
    try:
        planner = access.log_in(session=session, key=key, ip=ip)
    except access.AddressLocked as exc:
        message = f"登录失败次数过多，请 {exc.minutes} 分钟后再试"
        return render(
            request, "decision/login.html", {"next": _local(next), "error": message}, status_code=429
        )
    if planner is None:
        return render(
            request,
            "decision/login.html",
            {"next": _local(next), "error": "API 密钥无效或已停用"},
            status_code=401,
        )
    settings = decision_settings()
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE,
        access.issue_session(planner),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure or request.url.scheme == "https",
        max_age=settings.session_minutes * 60,
    )
    return response


def _logout_csrf(request: Request, session: Session) -> str | None:
    """The CSRF token of the logout button: for a live planner's session only (None: nobody to log out)."""
    cookie = request.cookies.get(COOKIE)
    if cookie and access.planner_for_session(session, cookie) is not None:
        return access.csrf_token(cookie)
    return None


@pages.get("/logout", response_class=HTMLResponse, response_model=None)
def logout_page(request: Request, session: SessionDep) -> Response:
    """Asks before logging out (a link or image of another site must not end the session); without a
    session, on to the login."""
    csrf = _logout_csrf(request, session)
    if csrf is None:
        return RedirectResponse("/decision/login", status_code=303)
    return render(request, "decision/logout.html", {"logout_csrf": csrf})


@pages.post("/logout", response_class=HTMLResponse, response_model=None)
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = "") -> Response:
    """End the planner's session in this browser: a form of this site's pages only (its CSRF token)."""
    cookie = request.cookies.get(COOKIE)
    if cookie and not access.csrf_ok(cookie, csrf):
        return render(
            request,
            "decision/logout.html",
            {
                "logout_csrf": _logout_csrf(request, session),
                "error": "页面已过期或来源不明（CSRF 校验失败），请刷新页面后重试",
            },
            status_code=403,
        )
    response = RedirectResponse("/decision/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@pages.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The dashboard's script, stylesheet and the vendored chart library (no CDN)."""
    if name not in STATIC_FILES:
        raise _error(404, "NOT_FOUND", "文件不存在")
    return FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=86400"})


def _lineage(session: Session, area: str, day: date | None, indicator: str) -> Lineage:
    if indicator not in indicators.LINEAGE_INDICATORS:
        raise _error(422, "UNKNOWN_INDICATOR", f"指标 {indicator} 不支持溯源")
    until = indicators.data_until(session)
    try:
        return indicators.build_lineage(
            session=session,
            area_code=area,
            as_of=_as_of(session, day, until),
            indicator=indicator,
            until=until,
        )
    except indicators.UnknownAreaError as exc:
        raise _error(404, "UNKNOWN_AREA", f"区划代码 {exc.args[0]} 不存在") from exc
    except indicators.AfterDataError as exc:
        raise _error(422, "DATE_AFTER_DATA", str(exc)) from exc


@api.get(
    "/dashboard",
    dependencies=[ApiReader],
    response_model=Dashboard,
    summary="统计看板（某区域、某日）",
    description="某区域某日的全部指标：总量与各统计表，小数值单元格按规则隐藏。",
)
def api_dashboard(
    session: SessionDep, area: AreaParam = "", day: DateParam = None, months: Months = 12
) -> Dashboard:
    """Every indicator of an area on a date: headline figures and all tables, small cells suppressed."""
    return dashboard_for(session, area, day, months)


@api.get(
    "/tables/{key}",
    dependencies=[ApiReader],
    response_model=StatTable,
    summary="统计表",
    description="一张统计表：type_sex、pyramid、school_elderly、ratios、change、age_structure、origin、sub_areas、trend 或 flows。",
)
def api_table(key: str, session: SessionDep, area: AreaParam = "", day: DateParam = None) -> StatTable:
    """One table: type_sex, pyramid, school_elderly, ratios, change, age_structure, origin, sub_areas,
    trend or flows."""
    board = dashboard_for(session, area, day)
    table = next((t for t in board.tables if t.key == key), None)
    if table is None:
        raise _error(404, "UNKNOWN_TABLE", f"没有名为 {key} 的表")
    return table


@api.get(
    "/areas",
    response_model=list[AreaOut],
    summary="下级区划",
    description="parent 的下一级区划（parent 为空时为各区）。",
)
def api_areas(session: SessionDep, parent: AreaParam = "") -> list[AreaOut]:
    """The areas one level below parent (the districts when parent is empty)."""
    try:
        return indicators.child_areas(session, indicators.find_area(session, parent))
    except indicators.UnknownAreaError as exc:
        raise _error(404, "UNKNOWN_AREA", f"区划代码 {parent} 不存在") from exc


@api.get(
    "/lineage",
    dependencies=[ApiReader],
    response_model=Lineage,
    summary="指标来源（数据血缘）",
    description="常住人口（或其中一类）由哪些部门、数据项、批次而来，各有多少条记录。",
)
def api_lineage(
    session: SessionDep, area: AreaParam = "", day: DateParam = None, indicator: str = "population"
) -> Lineage:
    """Departments → feeds → batches behind the resident population (or a subgroup): record counts."""
    return _lineage(session, area, day, indicator)
