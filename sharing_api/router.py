"""The sharing API's routes (mounted under /api/v1): parse, call a service, return a response model.

The single-person lookups (by number or document) are async and await their
read on the event loop (`Access.reads`: the reads of one loop pass go as one statement, no thread
hop); a well-formed lookup is parsed by the route itself and its endpoint called directly, without
FastAPI's request handler (`direct`: the busiest path, measured in BENCHMARKS.md). The others read more, or count a client's failed verifications (sharing_api/guessing.py), and
run in the thread pool on a session. Either way the route class commits the request's audit
records before the response leaves (`SharingRoute`).
"""

import contextlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import psycopg2
import sqlalchemy.exc
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from base.bodies import BodyTooLarge, read_body
from base.faults import log_fault
from sharing_api import service
from sharing_api.access import Access
from sharing_api.config import sharing_settings
from sharing_api.dependencies import (
    ACCESS_SCOPE_KEY,
    AUDIT_HEADERS,
    FIELDS_DESCRIPTION,
    LOOKUP_DOCS,
    access_for,
    admit,
    get_read_session,
    get_session,
    requested_fields,
)
from sharing_api.exceptions import ErrorCode, ErrorOut, SharingError, error_responses
from sharing_api.policy import Operation, PersonField
from sharing_api.schemas import (
    AccessHistory,
    BaselinePage,
    BatchVerifyQuery,
    BatchVerifyResult,
    ChangeFeed,
    DocumentQuery,
    EventType,
    PersonOut,
    SearchQuery,
    SearchResult,
    SingleVerifyQuery,
    VerifyResult,
)

MAX_CURSOR = 2**63 - 1  # bigint
# What a lost or slow database raises through SQLAlchemy or psycopg2: answered DATABASE_UNAVAILABLE.
DATABASE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
)
log = logging.getLogger(__name__)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _json(model: BaseModel) -> Response:
    """The response body of a model, without the fields left unset (those not granted or not asked).

    Routes return a Response, not the model, so that FastAPI does not validate its own output again
    (for a plain `def` route, in a second trip through the thread pool).
    """
    return Response(model.model_dump_json(exclude_unset=True), media_type="application/json")


# Parses a route's arguments from a well-formed request itself: the endpoint is then called directly,
# without FastAPI's request handler (dependency solving, body validation, response checks: about a
# sixth of the server's CPU per lookup, BENCHMARKS.md). None: not well-formed as far as the parser
# can tell, and FastAPI's handler takes the request, answering it exactly as without the shortcut.
ArgumentParser = Callable[[Request], dict[str, Any] | None]
_DIRECT: dict[Callable[..., Any], ArgumentParser] = {}


def direct(parse: ArgumentParser) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give an endpoint its own argument parser (placed below the route decorator)."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        _DIRECT[endpoint] = parse
        return endpoint

    return register


def _json_body(model: type[BaseModel]) -> Callable[[Request], BaseModel | None]:
    """A JSON body as `model`, parsed and validated as FastAPI does (json.loads, then the model in
    Python mode), read from where `read_body` left it; None for anything else."""

    def parse(request: Request) -> BaseModel | None:
        body: bytes | None = getattr(request, "_body", None)
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if not body or media != "application/json":
            return None
        try:
            return model.model_validate(json.loads(body))
        except Exception:  # not JSON, too deeply nested, not valid: FastAPI's handler answers it
            return None

    return parse


_document_query = _json_body(DocumentQuery)
_PERSON_NO = re.compile(r"P[0-9]{11}")  # the path's pattern, ASCII digits only (others: FastAPI's)


def _error(status: int, body: ErrorOut, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


class SharingRoute(APIRoute):
    """Audit committed before any answer leaves; every error, validation included, JSON with a code."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Every route is admitted by `admit`, which reads these headers itself: document them.
        # (include_router builds each route again from its openapi_extra: add them once.)
        extra = kwargs.get("openapi_extra") or {}
        given = extra.get("parameters", [])
        names = {p["name"] for p in given}
        headers = [h for h in AUDIT_HEADERS["parameters"] if h["name"] not in names]
        kwargs["openapi_extra"] = {**extra, "parameters": headers + given}
        super().__init__(path, endpoint, **kwargs)

    # The route's handler when its endpoint has a parser of its own (`direct`): the app answers such a
    # route's requests at its edge, without Starlette's middleware and router (sharing_api/edge.py).
    direct_handler: Callable[[Request], Coroutine[Any, Any, Response]] | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        endpoint, parse = self.endpoint, _DIRECT.get(self.endpoint)

        async def route_handler(request: Request) -> Response:
            failure: SharingError | None = None  # unanswered by a fault on our side (5xx)
            try:
                if request.method in BODY_METHODS:  # read within the limit before the key is looked at
                    await read_body(request, sharing_settings().max_body_bytes)
                arguments = parse(request) if parse is not None else None
                response = await (handler(request) if arguments is None else endpoint(**arguments))
            except BodyTooLarge as exc:
                refused = SharingError(ErrorCode.BODY_TOO_LARGE, f"请求体超过 {exc.limit} 字节")
                response = _error(refused.status_code, refused.body())
            except SharingError as exc:
                failure = exc if exc.status_code >= 500 else None
                response = _error(exc.status_code, exc.body(), exc.headers)
            except DATABASE_ERRORS as exc:  # the thread-pool routes' session, after a restart or a timeout
                log.error("sharing request failed on the database: %s", type(exc).__name__)
                failure = SharingError(ErrorCode.DATABASE_UNAVAILABLE)
                response = _error(failure.status_code, failure.body())
            except RequestValidationError as exc:
                # loc, msg and type only: the input is not echoed back (it may be personal data).
                errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                if all(e["type"] == "json_invalid" for e in errors):  # not JSON at all
                    response = _error(400, SharingError(ErrorCode.BODY_INVALID).body())
                else:
                    response = _error(422, SharingError(ErrorCode.VALIDATION_ERROR, detail=errors).body())
            except StarletteHTTPException as exc:
                if exc.status_code != 400:
                    raise
                # FastAPI's "error parsing the body": bytes that are not UTF-8, JSON nested too deep.
                response = _error(400, SharingError(ErrorCode.BODY_INVALID).body())
            except Exception as exc:  # a fault of ours (a missing grant of the server's role, say)
                log_fault(request.scope, exc, what="sharing request")
                failure = SharingError(ErrorCode.INTERNAL_ERROR)
                response = _error(failure.status_code, failure.body())
            access: Access | None = request.scope.get(ACCESS_SCOPE_KEY)
            if access is None:
                return response
            if failure is not None:
                access.failed(failure.code)
                with contextlib.suppress(SharingError):  # the database may be what failed: no record
                    await access.commit()
                return response
            try:
                await access.commit()
            except SharingError as exc:  # no audit, no data: the answer is withheld
                response = _error(exc.status_code, exc.body(), exc.headers)
            return response

        self.direct_handler = route_handler if parse is not None else None
        return route_handler


# Every route can answer with these: credentials, headers, policy, validation, audit.
COMMON = tuple(
    c
    for c in ErrorCode
    if c
    not in (
        ErrorCode.PERSON_NOT_FOUND,
        ErrorCode.BATCH_TOO_LARGE,
        ErrorCode.VERIFY_LIMITED,
        ErrorCode.LOOKUP_LIMITED,
    )
)
router = APIRouter(route_class=SharingRoute, tags=["信息共享"], responses=error_responses(*COMMON))
NOT_FOUND = error_responses(ErrorCode.PERSON_NOT_FOUND)

SessionDep = Annotated[Session, Depends(get_session)]
# The routes that only read the population: on the replica when one is set (POPEX_SHARING_REPLICA_URL).
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
Fields = Annotated[
    list[PersonField] | None,
    Query(description=FIELDS_DESCRIPTION),
]
Area = Annotated[
    str | None,
    Query(pattern=r"^(\d{6}|\d{9}|\d{12})$", description="区划代码：区 6 位、街道 9 位、社区 12 位"),
]


@router.get(
    "/persons/{person_no}",
    response_model=PersonOut,
    responses=NOT_FOUND,
    summary="按统一人口编号查询",
    description="按统一人口编号返回一人的金色记录；已合并注销的编号返回存续记录（merged_from 为原编号）。"
    "只返回本单位获授权且请求的字段，证件号码、电话默认脱敏。每次查询记入审计日志。",
    openapi_extra=LOOKUP_DOCS,
)
@direct(
    lambda r: (
        {"person_no": n, "request": r} if _PERSON_NO.fullmatch(n := r.path_params["person_no"]) else None
    )
)
async def get_person(
    person_no: Annotated[str, Path(pattern=r"^P\d{11}$", description="统一人口编号")], request: Request
) -> Response:
    """A person by unified person number; a number merged into another answers with the surviving record."""
    access = await admit(request, Operation.LOOKUP)
    fields = requested_fields(request)
    return _json(
        await service.lookup_by_number(reads=access.reads, access=access, person_no=person_no, fields=fields)
    )


@router.post(
    "/persons/lookup",
    response_model=PersonOut,
    # 429 either way: too many requests, or too many lookups that found no one
    responses=error_responses(ErrorCode.PERSON_NOT_FOUND, ErrorCode.RATE_LIMITED, ErrorCode.LOOKUP_LIMITED),
    summary="按证件号码查询",
    description="按证件类型和号码查询一人（号码放在请求体中，不出现在网址和日志里）；号码中的空格、小写 x 自动规范。"
    "不在本单位授权范围内的人员与不存在一样答复 404。本单位按证件查询未找到人员的次数达到每日上限后，"
    "暂停按证件查询（LOOKUP_LIMITED）。",
    openapi_extra=LOOKUP_DOCS,
)
@direct(lambda r: {"query": q, "request": r} if (q := _document_query(r)) is not None else None)
async def lookup_person(query: DocumentQuery, request: Request) -> Response:
    """A person by identity document number (in the body, so that it stays out of URLs and logs)."""
    access = await admit(request, Operation.LOOKUP)
    fields = requested_fields(request)
    return _json(
        await service.lookup_by_document(reads=access.reads, access=access, query=query, fields=fields)
    )


@router.post(
    "/persons/search",
    response_model=SearchResult,
    summary="按姓名和出生日期查找",
    description="姓名与出生日期完全相同（可限定区域）的授权范围内人员，最多 20 人；truncated 表示还有更多。"
    "须获授权读取姓名和出生日期（查询条件即比对这两项）。",
)
def search_persons(
    query: SearchQuery,
    session: ReadSessionDep,
    access: Annotated[Access, Depends(access_for(Operation.SEARCH))],
    fields: Fields = None,
) -> Response:
    """Persons with exactly this name and birth date (optionally in an area), at most 20."""
    return _json(service.search(session=session, access=access, query=query, fields=fields))


@router.post(
    "/verify",
    response_model=VerifyResult,
    summary="核验",
    description="回答“该证件号码是否属于此姓名和出生日期的人”（以及是否在世、是否在本市居住），只答是或否，"
    "不透露其他信息：号码不存在、属于他人或不在授权范围内，一律答复 match=false。只可比对授权策略 verifiable "
    "列出的字段；同一证件、或同一姓名与出生日期 24 小时内核验不符达到上限后不再核验（VERIFY_LIMITED）。",
    responses=error_responses(ErrorCode.RATE_LIMITED, ErrorCode.VERIFY_LIMITED),
)
def verify_one(
    query: SingleVerifyQuery,
    session: SessionDep,
    access: Annotated[Access, Depends(access_for(Operation.VERIFY))],
) -> Response:
    """Does this document number belong to this name and birth date (and is the person alive, resident)?

    Answers yes or no and nothing more: a number that does not match gets `match: false` whether the
    number is unknown, belongs to someone else, or to someone outside this client's scope.
    """
    [result] = service.verify(session=session, access=access, items=[query], checks=query.checks)
    if result.limited:
        raise SharingError(ErrorCode.VERIFY_LIMITED)
    return _json(result)


@router.post(
    "/verify/batch",
    response_model=BatchVerifyResult,
    summary="批量核验（每次最多 1000 条）",
    description="一次核验至多 1000 条，按提交顺序逐条答复（ref 原样返回）；规则与单条核验相同。每一条计入本单位的"
    "访问频率限制；核验不符次数已达上限的条目答复 limited=true。",
    responses=error_responses(ErrorCode.BATCH_TOO_LARGE),
)
def verify_batch(
    query: BatchVerifyQuery,
    session: SessionDep,
    access: Annotated[Access, Depends(access_for(Operation.VERIFY))],
) -> Response:
    """Up to 1,000 verifications in one call, answered in the order given."""
    return _json(service.verify_batch(session=session, access=access, items=query.items, checks=query.checks))


EVENT_TYPES = "事件类型（可重复）：" + "；".join(f"{e.value} {e.label}" for e in EventType)


@router.get(
    "/changes",
    response_model=ChangeFeed,
    summary="变更订阅",
    description="游标之后的变更事件（出生、死亡、迁居、婚姻、属性变更，进入或离开本单位授权范围，合并、拆分、撤销合并），"
    "按时间先后，限本单位授权范围，可按事件类型和区域筛选；下次以 next_cursor 作为 since 继续（本页条数少于 limit 时亦然）。"
    "应用方式：left_scope（离开授权范围）与 merged（合并注销）删除该人员编号，其余事件以 payload 中的字段替换本地副本，"
    "即与逐人查询所得一致（docs/CHANGE_FEED.md）。",
)
def get_changes(
    session: ReadSessionDep,
    access: Annotated[Access, Depends(access_for(Operation.CHANGES))],
    since: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="上次收到的 next_cursor；首次为 0")] = 0,
    event_type: Annotated[list[EventType] | None, Query(description=EVENT_TYPES)] = None,
    area: Area = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    fields: Fields = None,
) -> Response:
    """Change events after the cursor, oldest first, within this client's scope and the filters."""
    return _json(
        service.changes(
            session=session,
            access=access,
            since=since,
            event_types=event_type,
            area=area,
            limit=limit,
            fields=fields,
        )
    )


@router.get(
    "/baseline",
    response_model=BaselinePage,
    summary="基线数据",
    description="新订阅单位的全量基线：授权范围内的全部现存记录，分页返回；取完后以第一页给出的 change_cursor "
    "调用 /changes 接续，不漏不重。",
)
def get_baseline(
    session: ReadSessionDep,
    access: Annotated[Access, Depends(access_for(Operation.BASELINE))],
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="上一页的 next_cursor；首页为 0")] = 0,
    area: Area = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    fields: Fields = None,
) -> Response:
    """Every current record in this client's scope, page by page, for a newly subscribed department."""
    return _json(
        service.baseline(session=session, access=access, after=after, area=area, limit=limit, fields=fields)
    )


@router.get(
    "/persons/{person_no}/access-history",
    response_model=AccessHistory,
    summary="个人被访问记录",
    description="谁在何时、为何用途查看过此人（新的在前），来自哈希链审计日志。",
    responses=NOT_FOUND,
)
def get_access_history(
    person_no: Annotated[str, Path(pattern=r"^P\d{11}$", description="统一人口编号")],
    session: SessionDep,
    access: Annotated[Access, Depends(access_for(Operation.ACCESS_HISTORY))],
    before: Annotated[int | None, Query(ge=1, le=MAX_CURSOR, description="上一页的 next_before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Who looked at this person, when and why (newest first)."""
    return _json(
        service.access_history(
            session=session, access=access, person_no=person_no, before=before, limit=limit
        )
    )
