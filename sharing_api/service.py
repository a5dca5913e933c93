"""The sharing service's units of work: read golden records under a policy, and audit every access.

Each function checks what the policy asks of its parameters, reads with SQL shaped for the path
(one prepared, indexed query per request; one query per batch), shows only granted fields, masked
unless granted in clear, and records exactly one audit record on the request's `Access`, which the
route commits before the response leaves. Persons outside the client's population types or areas are
indistinguishable from persons who do not exist.
"""

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.models import AuditLog, ChangeEvent, Person
from registry.operator import operator_detail, purpose_problem
from sharing_api import guessing
from sharing_api.access import Access
from sharing_api.config import sharing_settings
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.feed import changes as changes  # the change feed has a module of its own
from sharing_api.models import AUDIT_PERSON_NOS
from sharing_api.policy import PersonField
from sharing_api.reads import PERSON_COLUMNS, PersonReader, PersonReads
from sharing_api.schemas import (
    MAX_BATCH,
    AccessHistory,
    AccessOut,
    AccessRecord,
    BaselinePage,
    BatchVerifyResult,
    Check,
    DocumentQuery,
    PersonOut,
    SearchQuery,
    SearchResult,
    VerifyQuery,
    VerifyResult,
)

MAX_SEARCH = 20
MAX_MERGE_HOPS = 8


def _aware(column: Any) -> Any:
    """A timestamp column (stored without zone, in the database's time zone) as a timestamp with zone."""
    return func.timezone(func.current_setting("TimeZone"), column).label(column.key)


def clean_document(value: str) -> str:
    """Full-width to half-width, no whitespace, upper case: how the registry stores numbers."""
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def clean_name(value: str) -> str:
    """Full-width to half-width and no whitespace, for an exact comparison of Chinese names."""
    return "".join(unicodedata.normalize("NFKC", value).split())


def _follow_merges(reader: PersonReader, row: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A retired record's surviving record (numbers merged into another stay answerable)."""
    hops = 0
    while _retired(row) and hops < MAX_MERGE_HOPS:
        row = reader.by_id(row["merged_into"])  # type: ignore[index]
        hops += 1
    return row


async def _survivor(reads: PersonReads, row: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`_follow_merges` on the event loop's reads."""
    hops = 0
    while _retired(row) and hops < MAX_MERGE_HOPS:
        row = await reads.by_id(row["merged_into"])  # type: ignore[index]
        hops += 1
    return row


def _retired(row: Mapping[str, Any] | None) -> bool:
    return row is not None and row["status"] == "retired" and row["merged_into"] is not None


def _in_scope(access: Access, row: Mapping[str, Any]) -> bool:
    return row["status"] != "retired" and access.policy.covers(
        population_type=row["population_type"], community_code=row["community_code"]
    )


def _person_out(
    access: Access, row: Mapping[str, Any], fields: list[str], merged_from: str | None = None
) -> PersonOut:
    shown = access.policy.show(row, fields)
    if merged_from is not None:
        shown["merged_from"] = merged_from
    return PersonOut(person_no=row["person_no"], **shown)


def _answer_one(
    access: Access, row: Mapping[str, Any] | None, fields: list[str], requested_no: str | None
) -> PersonOut:
    """The audited answer of a single-person lookup."""
    if row is None or not _in_scope(access, row):
        touched = [row["person_no"]] if row is not None else []
        access.record(outcome="not_found", person_nos=touched)
        raise SharingError(ErrorCode.PERSON_NOT_FOUND)
    merged_from = requested_no if requested_no and requested_no != row["person_no"] else None
    access.record(outcome="ok", person_nos=[row["person_no"]], fields=fields)
    return _person_out(access, row, fields, merged_from)


async def lookup_by_number(
    *, reads: PersonReads, access: Access, person_no: str, fields: list[PersonField] | None
) -> PersonOut:
    """A person by unified person number (a retired number answers with the surviving record)."""
    shown = access.fields(fields)
    row = await reads.by_number(person_no)
    return _answer_one(access, await _survivor(reads, row), shown, person_no)


async def lookup_by_document(
    *, reads: PersonReads, access: Access, query: DocumentQuery, fields: list[PersonField] | None
) -> PersonOut:
    """A person by identity document number. A client whose lookups by document found no one too often
    (POPEX_SHARING_LOOKUP_MISSES_PER_DAY) is refused them for a while: otherwise the numbers a masked
    one leaves could be tried until one is found."""
    if access.lookup_misses_left() < 1:
        raise access.refuse(ErrorCode.LOOKUP_LIMITED)
    shown = access.fields(fields)
    row = await _survivor(reads, await reads.by_document(query.id_type, clean_document(query.id_no)))
    if row is None or not _in_scope(access, row):
        access.take_lookup_miss()
    return _answer_one(access, row, shown, None)


def search(
    *, session: Session, access: Access, query: SearchQuery, fields: list[PersonField] | None
) -> SearchResult:
    """Persons with exactly this name and birth date, in the client's scope (and the area asked).

    The criteria must be fields the client may read: a hit confirms them, so a client refused the birth
    date could otherwise search a name with every date until one answers."""
    denied = sorted({"name", "birth_date"} - {f.value for f in access.policy.fields})
    if denied:
        raise access.refuse(
            ErrorCode.FIELD_NOT_GRANTED, f"查询条件中的字段未获授权：{', '.join(denied)}", fields=denied
        )
    shown = access.fields(fields)
    access.area(query.area)
    stmt = (
        select(*PERSON_COLUMNS)
        .where(
            Person.birth_date == query.birth_date,
            Person.name == clean_name(query.name),
            Person.status != "retired",
            access.policy.scope_sql(
                population_type=Person.population_type, community_code=Person.community_code
            ),
        )
        .order_by(Person.id)
        .limit(MAX_SEARCH + 1)
    )
    if query.area:
        stmt = stmt.where(Person.community_code.startswith(query.area))
    rows = session.execute(stmt).all()
    items = [_person_out(access, dict(r._mapping), shown) for r in rows[:MAX_SEARCH]]
    access.record(
        outcome="ok" if items else "not_found", person_nos=[p.person_no for p in items], fields=shown
    )
    return SearchResult(items=items, truncated=len(rows) > MAX_SEARCH)


def _checks(access: Access, requested: list[Check] | None) -> list[Check]:
    """Alive and resident reveal the status: asked for, they need `status` granted."""
    status_granted = PersonField.STATUS in access.policy.fields
    if requested is None:
        return list(Check) if status_granted else []
    if requested and not status_granted:
        raise access.refuse(
            ErrorCode.FIELD_NOT_GRANTED, "核验生存、在本市居住状态须获授权读取 status 字段", fields=["status"]
        )
    return sorted(set(requested), key=list(Check).index)


def _compared(access: Access, items: Sequence[VerifyQuery]) -> None:
    """Refuse a verification that compares a field the policy does not list under `verifiable`."""
    compared = {"id_no"}
    compared |= {"name" for i in items if i.name is not None}
    compared |= {"birth_date" for i in items if i.birth_date is not None}
    denied = sorted(compared - set(access.policy.verifiable))
    if denied:
        raise access.refuse(
            ErrorCode.FIELD_NOT_GRANTED, f"核验时比对的字段未获授权：{', '.join(denied)}", fields=denied
        )


def _verify_rows(reader: PersonReader, items: Sequence[VerifyQuery]) -> dict[int, Mapping[str, Any]]:
    """Position (1-based) → the (surviving) person holding that document, for the items found."""
    found = reader.by_documents([i.id_type for i in items], [clean_document(i.id_no) for i in items])
    rows: dict[int, Mapping[str, Any]] = {}
    for r in found:
        survivor = _follow_merges(reader, r)
        if survivor is not None:
            rows[r["n"]] = survivor
    return rows


def _ref(item: VerifyQuery) -> dict[str, Any]:
    """The item's own reference, echoed only when it gave one."""
    return {} if item.ref is None else {"ref": item.ref}


def _verdict(
    access: Access, item: VerifyQuery, row: Mapping[str, Any] | None, checks: list[Check]
) -> VerifyResult:
    match = (
        row is not None
        and _in_scope(access, row)
        and (item.name is None or row["name"] == clean_name(item.name))
        and (item.birth_date is None or row["birth_date"] == item.birth_date)
    )
    answers = _ref(item)
    if not match or row is None:  # nothing more is said about a number that does not match
        return VerifyResult(match=False, **answers)
    if Check.ALIVE in checks:
        answers["alive"] = row["status"] != "dead" and row["death_date"] is None
    if Check.RESIDENT in checks:
        answers["resident"] = row["status"] == "active"
    return VerifyResult(match=True, **answers)


def verify(
    *, session: Session, access: Access, items: Sequence[VerifyQuery], checks: list[Check] | None
) -> list[VerifyResult]:
    """Yes/no verification of up to MAX_BATCH documents against the names and birth dates claimed.

    Each item counts against the client's rate limit, compares only fields the policy lists as
    verifiable, and is answered `limited` (nothing compared) once what it claims has failed too often
    (sharing_api/guessing.py).
    """
    if len(items) > MAX_BATCH:
        raise access.refuse(ErrorCode.BATCH_TOO_LARGE, items=len(items))
    asked = _checks(access, checks)
    _compared(access, items)
    access.take(len(items))
    claims = [
        guessing.subjects(i, clean_document(i.id_no), None if i.name is None else clean_name(i.name))
        for i in items
    ]
    reader = PersonReader.of_session(session)
    limit = sharing_settings().verify_failures_per_day
    client = access.client.code
    with guessing.tries(
        session=session, client=client, claimed=[s for c in claims for s in c], limit=limit
    ) as t:
        rows = _verify_rows(reader, items) if items else {}
        results = []
        for n, (item, claimed) in enumerate(zip(items, claims, strict=True), start=1):
            if t.exhausted(claimed):
                results.append(VerifyResult.model_validate({"limited": True} | _ref(item)))
                continue
            result = _verdict(access, item, rows.get(n), asked)
            if not result.match:
                t.failed(claimed)
            results.append(result)
    limited = sum(bool(r.limited) for r in results)
    touched = sorted({r["person_no"] for r in rows.values()})
    access.record(
        outcome="refused" if items and limited == len(items) else "ok",
        person_nos=touched,
        fields=["match", *asked],
        items=len(items),
        matched=sum(bool(r.match) for r in results),
        failed=sum(r.match is False for r in results),
        limited=limited,
        **({"code": ErrorCode.VERIFY_LIMITED.value} if items and limited == len(items) else {}),
    )
    return results


def verify_batch(
    *, session: Session, access: Access, items: Sequence[VerifyQuery], checks: list[Check] | None
) -> BatchVerifyResult:
    """Batch verification: one result per item, in order."""
    results = verify(session=session, access=access, items=items, checks=checks)
    return BatchVerifyResult(
        results=results,
        matched=sum(bool(r.match) for r in results),
        limited=sum(bool(r.limited) for r in results),
    )


def baseline(
    *,
    session: Session,
    access: Access,
    after: int,
    area: str | None,
    limit: int,
    fields: list[PersonField] | None,
) -> BaselinePage:
    """A page of every current record in the client's scope, for a newly subscribed department."""
    shown = access.fields(fields)
    access.area(area)
    change_cursor = session.scalar(select(func.coalesce(func.max(ChangeEvent.id), 0)))
    stmt = (
        select(*PERSON_COLUMNS)
        .where(
            Person.id > after,
            Person.status != "retired",
            access.policy.scope_sql(
                population_type=Person.population_type, community_code=Person.community_code
            ),
        )
        .order_by(Person.id)
        .limit(limit + 1)
    )
    if area:
        stmt = stmt.where(Person.community_code.startswith(area))
    rows = session.execute(stmt).all()
    page = rows[:limit]
    items = [_person_out(access, dict(r._mapping), shown) for r in page]
    access.record(outcome="ok", person_nos=[p.person_no for p in items], fields=shown, after=after)
    return BaselinePage(
        items=items,
        next_cursor=page[-1].id if page else None,
        has_more=len(rows) > limit,
        change_cursor=change_cursor or 0,
    )


def _numbers_of(session: Session, row: Mapping[str, Any]) -> list[str]:
    """A person's number and every retired number merged into it."""
    retired = session.scalars(select(Person.person_no).where(Person.merged_into == row["id"]))
    return [row["person_no"], *retired]


def access_records(
    *, session: Session, numbers: list[str], before: int | None, limit: int, client: str | None
) -> list[Row[Any]]:
    """Audit records (id, at, actor, action, detail) that touched any of these person numbers, newest
    first: one client's own requests, or (client None, the operators' channel) every record."""
    touched = or_(*(AUDIT_PERSON_NOS.contains([n]) for n in numbers))
    stmt = (
        select(AuditLog.id, _aware(AuditLog.at), AuditLog.actor, AuditLog.action, AuditLog.detail)
        .where(touched)
        .order_by(AuditLog.id.desc())
        .limit(limit)
    )
    if client is not None:
        stmt = stmt.where(AuditLog.action.startswith("sharing."), AuditLog.detail["client"].astext == client)
    if before is not None:
        stmt = stmt.where(AuditLog.id < before)
    return list(session.execute(stmt).all())


def _who(actor: str, detail: Mapping[str, Any]) -> str:
    """Who acted: a client's staff account, or an operator's OS user with the name they stated."""
    if detail.get("end_user"):
        return str(detail["end_user"])
    stated = detail.get("stated_actor")
    return f"{actor}（{stated}）" if stated else actor


def person_record(
    *, session: Session, person_no: str, purpose: str, stated_actor: str | None, limit: int
) -> list[AccessRecord]:
    """Everything the audit log says touched a person (under any of their numbers): every client's
    requests, operators' exports and review views, and earlier look-ups through this channel; newest
    first. For answering a resident; the look-up itself is audited first (OS user, purpose), and is
    then part of the person's record. Raises ValueError for a purpose that says nothing."""
    problem = purpose_problem(purpose)
    if problem:
        raise ValueError(problem)
    reader = PersonReader.of_session(session)
    row = _follow_merges(reader, reader.by_number(person_no))
    numbers = [person_no] if row is None else _numbers_of(session, row)
    detail = operator_detail(stated_actor=stated_actor, purpose=purpose)
    record_audit(
        session=session,
        actor=detail["os_user"],
        action="audit.person_record",
        object_type="person",
        object_id=numbers[0],
        detail={**detail, "person_nos": numbers},
    )
    session.commit()  # on record before anything is shown
    return [
        AccessRecord(
            at=r.at,
            client=str(r.detail.get("client") or ""),
            who=_who(r.actor, r.detail),
            purpose=str(r.detail.get("purpose") or ""),
            action=str(r.detail.get("operation") or r.action),
            outcome=str(r.detail.get("outcome") or ""),
            fields=[str(f) for f in r.detail.get("fields") or []],
        )
        for r in access_records(session=session, numbers=numbers, before=None, limit=limit, client=None)
    ]


def access_history(
    *, session: Session, access: Access, person_no: str, before: int | None, limit: int
) -> AccessHistory:
    """Who of this client looked at a person (under any of their numbers), when and why, newest first:
    other clients' and operators' accesses are not the client's to see (`person_record` is)."""
    reader = PersonReader.of_session(session)
    row = _follow_merges(reader, reader.by_number(person_no))
    if row is None or not _in_scope(access, row):
        access.record(outcome="not_found", person_nos=[row["person_no"]] if row is not None else [])
        raise SharingError(ErrorCode.PERSON_NOT_FOUND)
    numbers = _numbers_of(session, row)
    rows = access_records(
        session=session, numbers=numbers, before=before, limit=limit, client=access.client.code
    )
    items = [
        AccessOut(
            at=r.at,
            **{
                k: str(r.detail.get(k, "")) for k in ("client", "end_user", "purpose", "operation", "outcome")
            },
            fields=r.detail.get("fields") or [],
        )
        for r in rows
    ]
    access.record(outcome="ok", person_nos=[row["person_no"]], fields=list(AccessOut.model_fields))
    return AccessHistory(
        person_no=row["person_no"], items=items, next_before=rows[-1].id if len(rows) == limit else None
    )


@dataclass(frozen=True)
class GuessingPattern:
    """A client's failed verifications over a window (the monitor's guessing alert)."""

    client: str
    claims: int  # distinct claims (documents; names with birth dates) that failed
    exhausted: int  # of those, the ones that failed as often as allowed: further tries were refused
    failures: int  # failures counted against claims (one failed verification counts against two)


def guessing_patterns(*, session: Session, start: datetime, end: datetime) -> list[GuessingPattern]:
    """Each client's failed verifications in start … end: the claims that failed, and those that
    reached POPEX_SHARING_VERIFY_FAILURES_PER_DAY (clients without any left out)."""
    limit = sharing_settings().verify_failures_per_day
    rows = guessing.patterns(session=session, start=start, end=end, limit=limit)
    return [GuessingPattern(r.client, int(r.claims), int(r.exhausted), int(r.failures)) for r in rows]
