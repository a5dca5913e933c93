"""The push API: departments upload their daily file and read its receipt (回执)."""

import csv
import io
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from base.bodies import declared_too_large
from base.db import SessionFactory, transaction
from base.settings import storage_settings
from base.storage import location
from exchange import flows, service
from exchange.dependencies import current_department, get_factory
from exchange.exceptions import FeedFileError, PushError
from exchange.readers import identify_file

CHUNK = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries and part headers around the file


def error_response(_: Request, exc: Exception) -> JSONResponse:
    """PushError as JSON with its stable code."""
    assert isinstance(exc, PushError)
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)


class PushRoute(APIRoute):
    """Key and size before the body: FastAPI reads a route's form (the whole upload, to a spooled
    file) before its dependencies run, so an upload without a valid key, or declaring more than the
    limit, is refused here before a byte of it is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            if request.method == "POST":
                limit = storage_settings().max_upload_bytes
                if declared_too_large(request, limit + MULTIPART_OVERHEAD):
                    return error_response(
                        request, PushError(413, "FILE_TOO_LARGE", f"文件超过上限 {limit} 字节")
                    )
                factory = request.app.dependency_overrides.get(get_factory, get_factory)()
                try:
                    await run_in_threadpool(current_department, factory, request.headers.get("authorization"))
                except PushError as exc:
                    return error_response(request, exc)
            return await handler(request)

        return route_handler


router = APIRouter(prefix="/exchange", tags=["部门数据交换"], route_class=PushRoute)


class PushResult(BaseModel):
    """What happened to a pushed file."""

    batch_id: int
    file_name: str
    duplicate: bool
    state: str
    receipt_url: str


class ReceiptRow(BaseModel):
    """One row of the receipt."""

    row: int
    record_key: str | None
    status: str
    person_id: str | None
    reasons: str


class ReceiptOut(BaseModel):
    """The receipt of a batch."""

    batch_id: int
    file_name: str
    source: str
    state: str
    received: int
    accepted: int
    rejected: int
    review: int
    error: str | None
    rows: list[ReceiptRow]
    next_after_row: int | None = None  # more rows follow: ask again with after_row=this


@router.post(
    "/files",
    response_model=PushResult,
    status_code=202,
    summary="推送数据文件",
    description="成员单位按交换标准推送一个数据文件（Authorization: Bearer 部门推送密钥）：先存档并登记哈希，"
    "同一内容重复推送不会处理两次；由每日流程校验、识别、合并、计入统计并写回执（process=true 时立即处理到完成），"
    "回执见 receipt_url。",
)
def push_file(
    department: Annotated[str, Depends(current_department)],
    factory: Annotated[SessionFactory, Depends(get_factory)],
    file: Annotated[UploadFile, File(description="按交换标准命名的数据文件")],
    process: Annotated[bool, Query(description="立即处理（否则由每日流程处理）")] = False,
) -> PushResult:
    """Upload a daily file: streamed to disk with a size limit, archived with its SHA-256, registered."""
    name = (file.filename or "").rsplit("/", 1)[-1]
    try:
        _, spec = identify_file(name)
    except FeedFileError as exc:
        raise PushError(400, str(exc.code), exc.message) from exc
    if spec.department.code != department:
        raise PushError(403, "SOURCE_NOT_YOURS", f"来源 {spec.source} 不属于本部门，不能推送")
    storage = storage_settings()
    # Streamed to local disk first: the landing folder's, or the system's temporary folder when landing is a bucket.
    landing = location(storage.landing_dir)
    incoming = (
        (landing if isinstance(landing, Path) else Path(tempfile.gettempdir()))
        / "_incoming"
        / uuid.uuid4().hex
    )
    incoming.mkdir(parents=True)
    path = incoming / name
    try:
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(CHUNK):
                size += len(chunk)
                if size > storage.max_upload_bytes:
                    raise PushError(413, "FILE_TOO_LARGE", f"文件超过上限 {storage.max_upload_bytes} 字节")
                out.write(chunk)
        with transaction(factory) as session:
            received = service.receive_file(
                session=session, path=path, channel="push", actor=f"dept:{department}"
            )
            batch_id, duplicate, state = received.batch.id, received.duplicate, received.batch.state
        # To completed, statistics and receipt too; a push of a batch left unfinished finishes it.
        if process:
            state = flows.process_batch(factory, batch_id)
        # Otherwise the daily run takes it up: it works on every unfinished batch of its day or earlier
        # (the file is archived; nothing is left in a landing folder to be overwritten by a same-named push).
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return PushResult(
        batch_id=batch_id,
        file_name=name,
        duplicate=duplicate,
        state=state,
        receipt_url=f"/api/v1/exchange/batches/{batch_id}/receipt",
    )


RECEIPT_PAGE = 10_000  # rows of a receipt in one JSON answer (the CSV has them all, streamed)


def _receipt(
    factory: SessionFactory, department: str, batch_id: int, *, rows: bool, after_row: int = 0, limit: int = 0
) -> service.Receipt:
    from schemas.feed_spec import get_feed_spec

    with factory() as session:
        batch = service.find_batch(session=session, ref=str(batch_id))
        if batch is None or get_feed_spec(batch.source).department.code != department:
            raise PushError(404, "BATCH_NOT_FOUND", f"找不到本部门的批次 {batch_id}")
        return service.build_receipt(
            session=session, batch_id=batch_id, rows=rows, after_row=after_row, limit=limit
        )


@router.get(
    "/batches/{batch_id}/receipt",
    response_model=ReceiptOut,
    summary="批次回执",
    description="批次的处理结果与逐行回执：接收 = 通过 + 拒收 + 待核查。每次最多返回 limit 行"
    f"（默认 {RECEIPT_PAGE}）：next_after_row 不为空时，以 after_row=该值再取下一页；全部行可用 receipt.csv 一次下载。",
)
def get_receipt(
    batch_id: int,
    department: Annotated[str, Depends(current_department)],
    factory: Annotated[SessionFactory, Depends(get_factory)],
    after_row: Annotated[int, Query(ge=0, description="只返回此行号之后的行")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="最多返回的行数")] = RECEIPT_PAGE,
) -> ReceiptOut:
    """The receipt: the summary and a page of its lines (a city's first snapshot has millions)."""
    receipt = _receipt(factory, department, batch_id, rows=True, after_row=after_row, limit=limit + 1)
    page, more = receipt.rows[:limit], len(receipt.rows) > limit
    return ReceiptOut(
        **{k: getattr(receipt, k) for k in ReceiptOut.model_fields if k not in ("rows", "next_after_row")},
        rows=[ReceiptRow(**row) for row in page],
        next_after_row=page[-1]["row"] if more else None,
    )


@router.get(
    "/batches/{batch_id}/receipt.csv",
    response_class=StreamingResponse,
    summary="批次回执（CSV）",
    description="逐行回执 CSV：row,record_key,status,person_id,reasons（全部行，边读边发）。",
)
def get_receipt_csv(
    batch_id: int,
    department: Annotated[str, Depends(current_department)],
    factory: Annotated[SessionFactory, Depends(get_factory)],
) -> StreamingResponse:
    """The receipt as CSV: row,record_key,status,person_id,reasons, sent as it is read."""
    summary = _receipt(factory, department, batch_id, rows=False)  # a batch of another department: 404 here

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        with factory() as session:
            for line in service.receipt_lines(session=session, receipt=summary):
                writer.writerow(line)
                if out.tell() > 1 << 16:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8")
