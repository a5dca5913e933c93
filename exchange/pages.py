"""The exchange's operator page: recent batches and their row accounting (aggregates, no personal data)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from base.db import SessionFactory
from base.web import render
from exchange.dependencies import get_factory
from registry.quality import ranked_reasons
from schemas.canonical import batch_state_label

pages = APIRouter(include_in_schema=False)


@pages.get("/exchange", response_class=HTMLResponse)
def batches_page(
    request: Request,
    factory: Annotated[SessionFactory, Depends(get_factory)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    """Recent batches, newest first, with row accounting and state, and the top rejection reasons of those
    batches with the batches and departments they came from."""
    with factory() as session:
        batches = session.execute(
            text(
                """
                SELECT b.id, b.file_name, b.source, f.title, dept.name AS department, b.as_of_date, b.state,
                       b.rows_received, b.rows_accepted, b.rows_rejected, b.rows_review, b.error, b.failed_step,
                       (SELECT count(*) FROM delivery d WHERE d.batch_id = b.id AND d.duplicate) AS duplicates
                FROM batch b JOIN feed f ON f.source = b.source JOIN department dept ON dept.code = f.department_code
                ORDER BY b.as_of_date DESC, b.id DESC LIMIT :n
                """
            ),
            {"n": limit},
        ).all()
        reasons = ranked_reasons(session=session, batch_ids=[b.id for b in batches], limit=10)
    return render(
        request,
        "exchange/batches.html",
        {
            "batches": batches,
            "states": {b.id: batch_state_label(b.state, b.failed_step) for b in batches},
            "reasons": reasons,
        },
    )
