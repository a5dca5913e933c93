"""The ASGI app: mounts every platform's router and serves the landing page."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from base.db import SessionFactory
from base.faults import FaultBarrier
from base.web import render
from collection.router import pages as collection_pages
from decision import router as decision_router
from exchange.dependencies import get_factory
from exchange.exceptions import PushError
from exchange.pages import pages as exchange_pages
from exchange.router import error_response as push_error_response
from exchange.router import router as exchange_router
from monitor import router as monitor_router
from schemas.canonical import PopulationType, ReviewKind
from sharing_api.edge import Edge
from sharing_api.router import router as sharing_router

HERE = Path(__file__).resolve().parent
REGISTRY_FIGURES = f"""
SELECT count(*) FILTER (WHERE status = 'active'),
       {", ".join(f"count(*) FILTER (WHERE status = 'active' AND population_type = '{t}')" for t in PopulationType)},
       count(*) FILTER (WHERE status = 'dead'),
       count(*) FILTER (WHERE status = 'left'),
       (SELECT count(*) FROM source_record),
       (SELECT count(*) FROM batch)
FROM person
"""

PLATFORMS = [
    ("一库", "统一人口库", "/registry", "户籍、流动、境外人口的唯一权威记录"),
    ("交换", "部门数据交换", "/exchange", "成员单位每日推送、校验、回执"),
    ("采集", "社区信息采集", "/collection", "一人一单，一日一清"),
    ("共享", "信息共享服务", "/docs", "查询、核验、订阅变更（API）"),
    ("决策", "决策分析", "/decision", "分区域、年龄、性别、类型的人口统计"),
    ("监控", "监控管理", "/monitor", "报送及时性、拒收原因、平台健康"),
]


# Where a person lands after an error on a page, by the page's first path segment.
SECTIONS = {p: label for _, label, p, _ in PLATFORMS if p != "/docs"}
ERROR_TEXT = {
    404: ("没有找到", "这个地址没有页面，或它所指的记录不存在。"),
    422: ("地址有误", "链接中的参数不完整或格式不对（日期写成 2026-11-09，时刻写成 2026-11-09T08:30）。"),
}


def _wants_page(request: Request) -> bool:
    """A person's browser asking for a page (not the API, metrics or a script)."""
    path = request.url.path
    machine = path.startswith(("/api/", "/metrics", "/openapi.json", "/healthz", "/docs"))
    return not machine and "text/html" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, detail: str | None) -> HTMLResponse:
    section = "/" + request.url.path.strip("/").split("/")[0]
    title, message = ERROR_TEXT.get(status, ("出错了", "请求未能完成。"))
    if detail and status not in (404, 422) and isinstance(detail, str):
        message = detail
    back = section if section in SECTIONS else "/"
    context = {"title": title, "message": message, "back": back, "back_label": SECTIONS.get(back, "首页")}
    return render(request, "error.html", context, status_code=status)


async def page_http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error as a page in words for a browser; as JSON (FastAPI's) for everything else."""
    assert isinstance(exc, StarletteHTTPException)
    if _wants_page(request) and not (exc.headers and "Location" in exc.headers):
        return _error_page(request, exc.status_code, exc.detail if isinstance(exc.detail, str) else None)
    return await http_exception_handler(request, exc)


async def page_validation_error(request: Request, exc: Exception) -> Response:
    """A malformed page URL (a bad date, a letter for a number) as a page in words for a browser."""
    assert isinstance(exc, RequestValidationError)
    if _wants_page(request):
        return _error_page(request, 422, None)
    return await request_validation_exception_handler(request, exc)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Freeze what start-up made (about 375,000 objects) out of the garbage collector's sight.

    Modules, routes and schemas live as long as the process; without this every full collection
    walks them again (110 ms here), a pause that every request then waiting shares.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


class PopexApp(FastAPI):
    """The app: the sharing API's single-person lookups are answered at its edge (sharing_api/edge.py),
    every other request through Starlette's middleware and router."""

    _edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._edge is None:  # once the routes are all there (tests add overrides, not routes)
            self._edge = Edge(self)
        found = self._edge.route_of(scope)
        if found is not None:
            await self._edge(found, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app() -> FastAPI:
    """Build the app with every platform mounted."""
    # Swagger UI served from the package's own files, not a CDN: the platform runs on networks that
    # reach no CDN, where FastAPI's default /docs is a blank page. No ReDoc: its page still fetches
    # its logo from redoc.ly.
    application = FastAPIOffline(
        title="popex 人口信息交换平台",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    # fastapi_offline builds a plain FastAPI; ours differs only in where a request enters (__call__).
    application.__class__ = PopexApp
    # The only middleware: plain ASGI, no per-request cost to speak of (base/faults.py).
    application.add_middleware(FaultBarrier)
    # The sharing API first: routes are matched in order, and its lookups are the busiest path.
    application.include_router(sharing_router, prefix="/api/v1")
    application.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    application.include_router(collection_pages)
    application.include_router(decision_router.pages)
    application.include_router(decision_router.api, prefix="/api/v1")
    application.include_router(monitor_router.pages)
    application.include_router(monitor_router.metrics_router)
    application.include_router(exchange_router, prefix="/api/v1")
    application.include_router(exchange_pages)
    application.add_exception_handler(PushError, push_error_response)
    application.add_exception_handler(StarletteHTTPException, page_http_error)
    application.add_exception_handler(RequestValidationError, page_validation_error)

    @application.get("/", response_class=HTMLResponse, include_in_schema=False)
    def landing(request: Request) -> HTMLResponse:
        return render(request, "landing.html", {"platforms": PLATFORMS})

    @application.get("/registry", response_class=HTMLResponse, include_in_schema=False)
    def registry_page(
        request: Request, factory: Annotated[SessionFactory, Depends(get_factory)]
    ) -> HTMLResponse:
        with factory() as session:
            figures = session.execute(text(REGISTRY_FIGURES)).one()
            review = session.execute(
                text(
                    "SELECT kind, count(*), min(created_at)::date FROM review_item WHERE state = 'open' "
                    "GROUP BY kind ORDER BY kind"
                )
            ).all()
        labels = ["在册人员", *(t.label for t in PopulationType), "死亡", "离开", "源记录", "批次"]
        return render(
            request,
            "registry.html",
            {
                "figures": list(zip(labels, figures, strict=True)),
                "review": [(ReviewKind(kind).label, n, oldest) for kind, n, oldest in review],
            },
        )

    @application.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return application


app = create_app()
