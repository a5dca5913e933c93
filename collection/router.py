"""Pages of the collection platform (/collection): login, today's work, the one-person form with checks
as you type, the XLSX template and the day's upload, and the per-row results of a submission."""

import logging
import tempfile
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from base import clock
from base.web import render
from collection import auth, service
from collection.config import collection_settings
from collection.dependencies import ApiAuth, Auth, PageAuth, SessionDep
from collection.models import SubmissionRow
from collection.schemas import FORM_KEYS, CheckIn, CheckOut, PersonForm

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {p.name for p in STATIC.iterdir()} if STATIC.is_dir() else set()
COLUMN_KEYS = {column: key for key, column in FORM_KEYS.items()}
MAX_UPLOAD = 5 * 1024 * 1024

ERROR_TITLES = {403: "无权访问", 404: "没有找到", 422: "填写有误", 429: "请稍后再试"}


class PageRoute(APIRoute):
    """A route whose errors a person sees as a page (in Chinese, with the way back), not as JSON;
    /collection/api/ keeps JSON for the form's script."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path.startswith("/collection/api/"):
            return handler

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if 300 <= exc.status_code < 400 and exc.headers and "Location" in exc.headers:
                    return RedirectResponse(exc.headers["Location"], status_code=exc.status_code)
                title = ERROR_TITLES.get(exc.status_code, "出错了")
                return _error_page(request, title, str(exc.detail), exc.status_code)
            except RequestValidationError:
                return _error_page(request, "地址有误", "链接不完整或已损坏，请从今日工作重新进入", 404)

        return page_handler


def _error_page(request: Request, title: str, message: str, status_code: int) -> HTMLResponse:
    return render(request, "collection/error.html", {"title": title, "message": message}, status_code)


pages = APIRouter(prefix="/collection", include_in_schema=False, route_class=PageRoute)


def work_date() -> date:
    """The officer's working day: the city's date (tests fix it)."""
    return clock.today()


Today = Annotated[date, Depends(work_date)]


def _by_key(reasons: list[str]) -> dict[str, list[str]]:
    """Messages per form input name; cells outside the form go to the row ('')."""
    out: dict[str, list[str]] = {}
    for column, messages in service.errors_by_column(reasons).items():
        key = COLUMN_KEYS.get(column, "")
        out.setdefault(key, []).extend(
            messages if key or not column else [f"{column}：{m}" for m in messages]
        )
    return out


def _not_found() -> HTTPException:
    return HTTPException(404, "没有找到该记录（只能查看本社区的记录）")


@pages.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The pages' script and stylesheet (no CDN)."""
    if name not in STATIC_FILES:
        raise HTTPException(404, "文件不存在")
    return FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=3600"})


@pages.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    """The login form."""
    return render(request, "collection/login.html", {})


@pages.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    officer_no: Annotated[str, Form(max_length=32)],
    password: Annotated[str, Form(max_length=200)],
) -> Response:
    """Check the credentials; a signed, expiring session cookie on success."""
    ip = request.client.host if request.client else "unknown"
    try:
        officer = auth.login(session=session, officer_no=officer_no.strip(), password=password, ip=ip)
    except auth.LoginThrottled as exc:
        message = f"登录失败次数过多，请 {exc.minutes} 分钟后再试，或请管理员解除锁定"
        return render(request, "collection/login.html", {"error": message, "officer_no": officer_no}, 429)
    if officer is None:
        message = "工号或密码不正确"
        return render(request, "collection/login.html", {"error": message, "officer_no": officer_no}, 401)
    cookie, _ = auth.issue_session(officer)
    response = RedirectResponse("/collection", status_code=303)
    settings = collection_settings()
    response.set_cookie(
        auth.COOKIE,
        cookie,
        max_age=settings.session_minutes * 60,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure or request.url.scheme == "https",  # HTTPS itself: always
        path="/collection",
    )
    return response


@pages.post("/logout")
def logout(who: PageAuth, csrf: Annotated[str, Form()] = "") -> Response:
    """End the session."""
    who.require_csrf(csrf)
    response = RedirectResponse("/collection/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/collection")
    return response


def _context(who: Auth, **extra: Any) -> dict[str, Any]:
    return {"officer": who.officer, "community_name": who.community_name, "csrf": who.data.csrf, **extra}


@pages.get("", response_class=HTMLResponse)
def work_page(
    request: Request, session: SessionDep, who: PageAuth, today: Today, saved: int | None = None
) -> HTMLResponse:
    """Today's work: the day's clearance, residents due for verification, rows returned for correction."""
    officer = who.officer
    due = service.due_persons(session=session, officer=officer, today=today)
    returned = service.returned_rows(session=session, officer=officer)
    status = service.clearance(session=session, community_code=officer.community_code, day=today)
    return render(
        request,
        "collection/work.html",
        _context(
            who,
            due=due,
            returned=[(r, service.errors_by_column(r.reasons)) for r in returned],
            discard_reasons=service.DISCARD_REASONS,
            status=status,
            today=today,
            saved=saved,
        ),
    )


def _form_page(
    request: Request,
    who: Auth,
    values: dict[str, str],
    *,
    errors: dict[str, list[str]] | None = None,
    replaces: int | None = None,
    person: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    keyed = {key: values.get(column, "") for key, column in FORM_KEYS.items()}
    return render(
        request,
        "collection/form.html",
        _context(
            who,
            values=keyed,
            errors=errors or {},
            replaces=replaces,
            person=person,
            keys=FORM_KEYS,
            choices={COLUMN_KEYS[c]: v for c, v in service.CHOICES.items()},
        ),
        status_code=status_code,
    )


@pages.get("/form", response_class=HTMLResponse)
def form_page(
    request: Request, session: SessionDep, who: PageAuth, person: str | None = None, fix: int | None = None
) -> HTMLResponse:
    """The one-person form: empty, prefilled from a resident to verify, or from a row to correct."""
    try:
        if fix is not None:
            row = service.own_row(session=session, officer=who.officer, row_id=fix)
            if row.status != "rejected":
                raise service.NotFound
            service.audit_read(session=session, officer=who.officer, what="row", object_id=str(row.id))
            return _form_page(
                request,
                who,
                service.form_values(row),
                errors=_by_key(row.reasons),
                replaces=row.id,
                person=row.person_no,
            )
        if person:
            found = service.own_person(session=session, officer=who.officer, person_no=person)
            service.audit_read(session=session, officer=who.officer, what="person", object_id=found.person_no)
            return _form_page(request, who, service.person_values(found), person=found.person_no)
    except service.NotFound as exc:
        raise _not_found() from exc
    return _form_page(request, who, {"居住状态": "在住"})


@pages.post("/form", response_class=HTMLResponse)
def submit_form(
    request: Request, session: SessionDep, who: PageAuth, today: Today, form: Annotated[PersonForm, Form()]
) -> Response:
    """Store the form as typed, then validate it: accepted → back to today's work; else the errors."""
    who.require_csrf(form.csrf)
    try:
        sub = service.store_form(
            session=session,
            officer=who.officer,
            values=form.columns(),
            work_date=today,
            replaces_id=form.replaces,
            person_no=form.person or None,
        )
    except service.OutOfScope as exc:
        raise HTTPException(403, "只能采集本社区的居民") from exc
    except service.NotFound as exc:
        raise _not_found() from exc
    session.commit()  # stored before it is validated: nothing typed is lost
    (row,) = service.validate_submission(session=session, submission_id=sub.id)
    log.info("collection form: submission %s row %s %s", sub.id, row.id, row.status)
    if row.status == "accepted":
        return RedirectResponse(f"/collection?saved={row.id}", status_code=303)
    return _form_page(
        request,
        who,
        service.form_values(row),
        errors=_by_key(row.reasons),
        replaces=row.id,
        person=row.person_no,
        status_code=422,
    )


@pages.post("/api/check", response_model=CheckOut)
def check(
    body: CheckIn, who: ApiAuth, today: Today, x_csrf_token: Annotated[str | None, Header()] = None
) -> CheckOut:
    """Check a draft of the form with the same rules as a submission (nothing stored)."""
    who.require_csrf(x_csrf_token)
    cells = {column: body.values.get(key, "") for key, column in FORM_KEYS.items()}
    row = service.sq_row(who.officer, cells, today)
    status, reasons = service.check_row(row, community_code=who.officer.community_code, work_date=today)
    return CheckOut(ok=status == "accepted", errors=_by_key(reasons))


@pages.get("/template.xlsx")
def template(who: PageAuth) -> Response:
    """The XLSX template of the day's upload (header, example row, drop-downs, instructions)."""
    return Response(
        service.template_xlsx(who.officer),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": "attachment; filename=sq_cj_template.xlsx"},
    )


@pages.post("/upload", response_class=HTMLResponse)
def upload(
    request: Request,
    session: SessionDep,
    who: PageAuth,
    today: Today,
    file: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Store the day's spreadsheet row by row as typed, validate it, show the per-row results."""
    who.require_csrf(csrf)
    name = Path(file.filename or "upload.xlsx").name
    suffix = Path(name).suffix.lower()
    data = file.file.read(MAX_UPLOAD + 1)
    error = None
    if suffix not in (".xlsx", ".csv"):
        error = "请上传 .xlsx 或 .csv 文件（可先下载模板）"
    elif len(data) > MAX_UPLOAD:
        error = "文件超过 5 MB，请分多次上传"
    if error is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                sub = service.store_upload(
                    session=session, officer=who.officer, path=path, file_name=name, work_date=today
                )
            except service.UploadError as exc:
                error = str(exc)
    if error is not None:
        return _work_error(request, who, error)
    session.commit()  # stored before it is validated
    service.validate_submission(session=session, submission_id=sub.id)
    return RedirectResponse(f"/collection/submissions/{sub.id}", status_code=303)


def _work_error(request: Request, who: Auth, error: str) -> HTMLResponse:
    return render(request, "collection/upload_error.html", _context(who, error=error), status_code=422)


@pages.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(request: Request, session: SessionDep, who: PageAuth, submission_id: int) -> HTMLResponse:
    """One submission row by row: accepted, or the errors per field with a link to correct the row."""
    try:
        sub = service.own_submission(session=session, officer=who.officer, submission_id=submission_id)
    except service.NotFound as exc:
        raise _not_found() from exc
    rows = service.validate_submission(session=session, submission_id=sub.id)
    service.audit_read(session=session, officer=who.officer, what="submission", object_id=str(sub.id))
    shown: list[tuple[SubmissionRow, dict[str, list[str]]]] = [
        (r, service.errors_by_column(r.reasons)) for r in rows
    ]
    return render(
        request,
        "collection/submission.html",
        _context(
            who,
            sub=sub,
            rows=shown,
            columns=service.FORM_COLUMNS,
            discard_reasons=service.DISCARD_REASONS,
            counts={
                s: sum(1 for r in rows if r.status == s)
                for s in ("accepted", "rejected", "corrected", "discarded")
            },
        ),
    )


@pages.post("/rows/{row_id}/discard")
def discard(
    session: SessionDep,
    who: PageAuth,
    row_id: int,
    reason: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=100)] = "",
    back: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Discard a row waiting for a correction, with a reason (audited); back to where the officer was."""
    who.require_csrf(csrf)
    try:
        row = service.discard_row(
            session=session, officer=who.officer, row_id=row_id, reason=reason, note=note
        )
    except service.NotFound as exc:
        raise _not_found() from exc
    log.info("collection row %s discarded", row.id)
    target = back if back.startswith("/collection") and "//" not in back else "/collection"
    return RedirectResponse(target, status_code=303)
