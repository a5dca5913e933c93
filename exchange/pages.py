"""The exchange's operator page: recent batches and their row accounting (aggregates, no personal data)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from base.web import render
from exchange.dependencies import SessionFactory, get_factory
from registry.records import describe

pages = APIRouter(include_in_schema=False)

STATE_LABELS = {
    "received": "已接收",
    "rejected": "整文件拒收",
    "parsed": "已校验",
    "gated": "闸门通过",
    "quarantined": "已隔离",
    "resolved": "已识别",
    "merged": "已合并",
    "published": "已完成",
    "failed": "失败",
}


@pages.get("/exchange", response_class=HTMLResponse)
def batches_page(
    request: Request,
    factory: Annotated[SessionFactory, Depends(get_factory)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    """Recent batches, newest first, with row accounting, gate outcome and the top rejection reasons."""
    with factory() as session:
        batches = (
            session.execute(
                text(
                    """
                SELECT b.id, b.file_name, b.source, f.title, b.as_of_date, b.state, b.rows_received,
                       b.rows_accepted, b.rows_rejected, b.rows_review, b.error,
                       (SELECT count(*) FROM delivery d WHERE d.batch_id = b.id AND d.duplicate) AS duplicates
                FROM batch b JOIN feed f ON f.source = b.source
                ORDER BY b.as_of_date DESC, b.id DESC LIMIT :n
                """
                ),
                {"n": limit},
            )
            .mappings()
            .all()
        )
        reasons = session.execute(
            text(
                """
                SELECT reason, count(*) AS n FROM source_record r, jsonb_array_elements_text(r.reasons) AS reason
                WHERE r.status = 'rejected' GROUP BY reason ORDER BY n DESC LIMIT 10
                """
            )
        ).all()
    return render(
        request,
        "exchange/batches.html",
        {
            "batches": batches,
            "labels": STATE_LABELS,
            "reasons": [(describe(code), n) for code, n in reasons],
        },
    )
