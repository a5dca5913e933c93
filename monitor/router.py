"""Routes of the monitor: the dashboard, a batch's page, the scorecard export, /metrics, static files."""

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session

from base.db import get_session
from base.web import render
from monitor import alerts, batches, metrics, scorecard, service, timeliness
from monitor.config import monitor_settings
from monitor.dependencies import as_of

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {p.name for p in STATIC.iterdir() if p.suffix in (".js", ".css")} if STATIC.is_dir() else set()

pages = APIRouter(prefix="/monitor", include_in_schema=False)
metrics_router = APIRouter(include_in_schema=False)

SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(as_of)]
PeriodParam = Annotated[str, Query(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$", description="2026 或 2026-11")]

LABELS = {
    "status": timeliness.STATUS_LABELS,
    "rules": alerts.RULE_LABELS,
    "severity": {"critical": "严重", "warning": "警告"},
}


@pages.get("", response_class=HTMLResponse)
def dashboard_page(request: Request, session: SessionDep, now: NowDep) -> HTMLResponse:
    """Timeliness, batches, reasons, review queue, alerts and platform health as of `now`."""
    board = service.build_dashboard(session=session, now=now, settings=monitor_settings())
    return render(request, "monitor/dashboard.html", {"d": board, "labels": LABELS})


@pages.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: int, session: SessionDep, now: NowDep) -> HTMLResponse:
    """One batch: accounting, gate checks, reasons, review queue, resolution, step durations."""
    settings = monitor_settings()
    detail = batches.batch_detail(
        session=session, batch_id=batch_id, now=now, review_max_days=settings.review_max_days
    )
    if detail is None:
        return render(request, "monitor/missing.html", {"batch_id": batch_id, "now": now}, status_code=404)
    return render(request, "monitor/batch.html", {"b": detail, "now": now, "labels": LABELS})


@pages.get("/scorecard", response_class=HTMLResponse)
def scorecard_page(request: Request, session: SessionDep, now: NowDep, period: PeriodParam) -> HTMLResponse:
    """The scorecard of a month or a year."""
    card = scorecard.build(
        session=session,
        period=scorecard.Period.parse(period),
        now=now,
        expected_from=monitor_settings().expected_from,
    )
    return render(request, "monitor/scorecard.html", {"c": card, "period": period, "now": now})


@pages.get("/scorecard.xlsx")
def scorecard_xlsx(session: SessionDep, now: NowDep, period: PeriodParam) -> Response:
    """The scorecard of a month or a year as XLSX."""
    card = scorecard.build(
        session=session,
        period=scorecard.Period.parse(period),
        now=now,
        expected_from=monitor_settings().expected_from,
    )
    return Response(
        scorecard.to_xlsx(card),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="popex_scorecard_{period}.xlsx"'},
    )


@pages.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The monitor's script and stylesheet."""
    if name not in STATIC_FILES:
        raise HTTPException(status_code=404, detail={"code": "NOT_FOUND", "message": name})
    return FileResponse(STATIC / name)


@metrics_router.get("/metrics")
def metrics_endpoint(session: SessionDep, now: NowDep) -> Response:
    """Prometheus exposition format."""
    body = metrics.render(session=session, now=now, settings=monitor_settings())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
