"""Units of work of community collection: officers, submissions stored then validated, the day's work,
corrections, clearance.

Validation is the registry's RecordBuilder on the sq_cj spec (the same code the exchange runs when the
rows arrive as a file), with one stricter rule for officers: any remark on a cell is an error to fix
before the row is accepted, because the officer is standing in front of the resident.
"""

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from collection.auth import hash_password
from collection.config import collection_settings
from collection.models import Clearance as Clearance  # public here: the monitor shows clearances
from collection.models import Officer, Submission, SubmissionRow
from exchange import service as exchange_service
from registry.audit import record_audit
from registry.models import Area, Person
from registry.normalise.codes import ETHNICITIES
from registry.records import DuplicateRows, RecordBuilder, describe
from schemas.canonical import PopulationType, ResidenceStatus, Sex, label_of
from schemas.feed_spec import FeedSpec, get_feed_spec

SOURCE = "sq_cj"
# The one-person form, in the order the officer fills it.
FORM_COLUMNS = (
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "民族",
    "联系电话",
    "现住址",
    "人口类型",
    "居住状态",
    "备注",
)
CHOICES = {
    "性别": tuple(s.label for s in Sex),
    "人口类型": tuple(t.label for t in PopulationType),
    "居住状态": tuple(r.label for r in ResidenceStatus),
}
# Rules of this platform on top of the feed spec's, in the same CODE:列名 form.
MESSAGES = {"COMMUNITY_SCOPE": "不是您所在社区的代码，只能采集本社区的居民"}


class NotFound(Exception):
    """No such object in the officer's community (another community's objects are not found either)."""


class OutOfScope(Exception):
    """The request names a community other than the officer's."""


def spec() -> FeedSpec:
    """The sq_cj feed spec."""
    return get_feed_spec(SOURCE)


def explain(reason: str) -> str:
    """A reason code as a sentence for the officer."""
    code, _, where = reason.partition(":")
    if code in MESSAGES:
        return f"{where}：{MESSAGES[code]}" if where else MESSAGES[code]
    return describe(reason)


def errors_by_column(reasons: Iterable[str]) -> dict[str, list[str]]:
    """Sentences per column ('' for the row as a whole), the column's name left out of each sentence."""
    out: dict[str, list[str]] = {}
    for reason in reasons:
        where = reason.partition(":")[2]
        column = where if where in spec().column_names else ""
        sentence = explain(reason)
        if column:
            sentence = sentence.removeprefix(f"{column}：")
        out.setdefault(column, []).append(sentence)
    return out


# --- officers -------------------------------------------------------------------------------------


def add_officer(
    *, session: Session, officer_no: str, name: str, community_code: str, password: str
) -> Officer:
    """A new officer of a community (which must be a community in the area reference data)."""
    area = session.get(Area, community_code)
    if area is None or area.level != "community":
        raise NotFound(f"社区代码 {community_code} 不在区划参考数据中")
    officer = Officer(
        officer_no=officer_no, name=name, community_code=community_code, password_hash=hash_password(password)
    )
    session.add(officer)
    session.flush()
    record_audit(
        session=session,
        actor="admin",
        action="collection.officer.added",
        object_type="officer",
        object_id=officer_no,
    )
    return officer


def list_officers(*, session: Session, community_code: str | None = None) -> list[Officer]:
    """Officers, by number, optionally of one community."""
    query = select(Officer).order_by(Officer.officer_no)
    if community_code:
        query = query.where(Officer.community_code == community_code)
    return list(session.scalars(query))


def _officer(session: Session, officer_no: str) -> Officer:
    officer = session.scalar(select(Officer).where(Officer.officer_no == officer_no))
    if officer is None:
        raise NotFound(f"没有工号为 {officer_no} 的信息员")
    return officer


def disable_officer(*, session: Session, officer_no: str) -> Officer:
    """Disable an account: its sessions stop working at the next request."""
    officer = _officer(session, officer_no)
    officer.active = False
    record_audit(
        session=session,
        actor="admin",
        action="collection.officer.disabled",
        object_type="officer",
        object_id=officer_no,
    )
    return officer


def reset_password(*, session: Session, officer_no: str, password: str) -> Officer:
    """A new password (and the account enabled); sessions opened with the old password end."""
    officer = _officer(session, officer_no)
    officer.password_hash = hash_password(password)
    officer.password_changed_at = session.scalar(select(func.clock_timestamp())) or datetime.now()
    officer.active = True
    record_audit(
        session=session,
        actor="admin",
        action="collection.officer.password_reset",
        object_type="officer",
        object_id=officer_no,
    )
    return officer


# --- validation -----------------------------------------------------------------------------------


def sq_row(officer: Officer, values: Mapping[str, str | None], work_date: date) -> dict[str, str]:
    """A full sq_cj row: the officer's cells, with community, date and officer number filled when blank."""
    row = {column: (values.get(column) or "").strip() for column in spec().column_names}
    row["社区代码"] = row["社区代码"] or officer.community_code
    row["采集日期"] = row["采集日期"] or work_date.isoformat()
    row["信息员工号"] = row["信息员工号"] or officer.officer_no
    return {k: v for k, v in row.items() if v}


def check_row(
    row: Mapping[str, str | None], *, community_code: str, work_date: date, duplicate_of: int | None = None
) -> tuple[str, list[str]]:
    """(accepted or rejected, reason codes) of one sq_cj row, as the exchange will judge it, stricter."""
    # The exchange parses a file with today = as-of day + 1; the same here keeps both verdicts equal.
    builder = RecordBuilder(spec(), known_areas={community_code}, today=work_date + timedelta(days=1))
    staged = builder.build(1, dict(row), duplicate_of=duplicate_of)
    reasons = list(staged.reasons)
    code = (row.get("社区代码") or "").strip()
    if code and code != community_code:
        reasons = [r for r in reasons if not r.endswith(":社区代码")] + ["COMMUNITY_SCOPE:社区代码"]
    return ("accepted" if staged.status == "accepted" and not reasons else "rejected"), reasons


# --- submissions ----------------------------------------------------------------------------------


def own_row(*, session: Session, officer: Officer, row_id: int) -> SubmissionRow:
    """A row of the officer's community, else NotFound."""
    row = session.get(SubmissionRow, row_id)
    if row is None or row.community_code != officer.community_code:
        raise NotFound
    return row


def own_submission(*, session: Session, officer: Officer, submission_id: int) -> Submission:
    """A submission of the officer's community, else NotFound."""
    sub = session.get(Submission, submission_id)
    if sub is None or sub.community_code != officer.community_code:
        raise NotFound
    return sub


def own_person(*, session: Session, officer: Officer, person_no: str) -> Person:
    """A resident of the officer's community, else NotFound."""
    person = session.scalar(select(Person).where(Person.person_no == person_no))
    if person is None or person.community_code != officer.community_code or person.merged_into is not None:
        raise NotFound
    return person


def store_form(
    *,
    session: Session,
    officer: Officer,
    values: Mapping[str, str | None],
    work_date: date,
    replaces_id: int | None = None,
    person_no: str | None = None,
) -> Submission:
    """Store one person's form as typed (not yet validated); a correction replaces a rejected row.

    Raises OutOfScope for another community's code and NotFound for another community's row or person.
    """
    code = (values.get("社区代码") or "").strip()
    if code and code != officer.community_code:
        raise OutOfScope
    replaced = own_row(session=session, officer=officer, row_id=replaces_id) if replaces_id else None
    if replaced is not None and replaced.status != "rejected":
        raise NotFound
    if person_no:
        own_person(session=session, officer=officer, person_no=person_no)
    day = replaced.work_date if replaced else work_date
    sub = Submission(
        officer_id=officer.id,
        community_code=officer.community_code,
        work_date=day,
        kind="correction" if replaced else "form",
    )
    session.add(sub)
    session.flush()
    row = SubmissionRow(
        submission_id=sub.id,
        community_code=officer.community_code,
        work_date=day,
        row_no=replaced.row_no if replaced else 1,
        raw=sq_row(officer, {c: values.get(c) for c in FORM_COLUMNS}, day),
        status="pending",
        reasons=[],
        replaces_id=replaced.id if replaced else None,
        person_no=person_no or (replaced.person_no if replaced else None),
    )
    session.add(row)
    if replaced is not None:
        replaced.status = "corrected"
        replaced.closed_at = session.scalar(select(func.clock_timestamp()))
    session.flush()
    return sub


class UploadError(Exception):
    """A spreadsheet that cannot be read at all; the message is for the officer."""


def store_upload(
    *, session: Session, officer: Officer, path: Path, file_name: str, work_date: date
) -> Submission:
    """Store every row of an uploaded sq_cj spreadsheet as typed (not yet validated)."""
    try:
        feed = exchange_service.open_feed_file(path, spec(), max_bytes=5 * 1024 * 1024)
        rows = list(feed.rows())
    except exchange_service.FeedFileError as exc:
        raise UploadError(exc.message) from exc
    sub = Submission(
        officer_id=officer.id,
        community_code=officer.community_code,
        work_date=work_date,
        kind="upload",
        file_name=file_name[:200],
    )
    session.add(sub)
    session.flush()
    session.add_all(
        SubmissionRow(
            submission_id=sub.id,
            community_code=officer.community_code,
            work_date=work_date,
            row_no=row.number,
            raw=sq_row(officer, row.values, work_date),
            status="pending",
            reasons=[],
        )
        for row in rows
    )
    session.flush()
    return sub


def validate_submission(*, session: Session, submission_id: int) -> list[SubmissionRow]:
    """Validate the submission's pending rows; returns all its rows in order."""
    rows = list(
        session.scalars(
            select(SubmissionRow)
            .where(SubmissionRow.submission_id == submission_id)
            .order_by(SubmissionRow.row_no)
        )
    )
    duplicates = DuplicateRows()
    now = session.scalar(select(func.clock_timestamp()))
    for row in rows:
        first = duplicates.first(row.row_no, tuple(row.raw.get(c) for c in spec().column_names))
        if row.status != "pending":
            continue
        row.status, row.reasons = check_row(
            row.raw, community_code=row.community_code, work_date=row.work_date, duplicate_of=first
        )
        row.validated_at = now
    session.flush()
    return rows


def form_values(row: SubmissionRow) -> dict[str, str]:
    """The form's cells of a stored row (to correct it without retyping)."""
    return {c: str(row.raw.get(c, "")) for c in FORM_COLUMNS}


def person_values(person: Person) -> dict[str, str]:
    """The form prefilled from a golden record, for the officer to verify."""
    return {
        "姓名": person.name or "",
        "身份证号": (person.id_no or "") if person.id_type in (None, "RID") else "",
        "性别": label_of(Sex, person.sex),
        "出生日期": person.birth_date.isoformat() if person.birth_date else "",
        "民族": ETHNICITIES.get(person.ethnicity or "", ""),
        "联系电话": person.phone or "",
        "现住址": person.address or "",
        "人口类型": label_of(PopulationType, person.population_type),
        "居住状态": ResidenceStatus.PRESENT.label,
        "备注": "",
    }


def template_xlsx() -> bytes:
    """The upload template: the sq_cj header exactly, ID and date columns formatted as text."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "社区信息采集"
    sheet.append(spec().column_names)
    for index, column in enumerate(spec().column_names, start=1):
        letter = openpyxl.utils.get_column_letter(index)
        sheet.column_dimensions[letter].width = 22 if column in ("身份证号", "现住址", "社区代码") else 12
        if column in ("身份证号", "联系电话", "社区代码", "出生日期", "采集日期", "信息员工号"):
            for cell in sheet[letter][1:1000]:
                cell.number_format = "@"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the day's work -------------------------------------------------------------------------------


@dataclass
class DuePerson:
    """A resident due for verification (ID number masked)."""

    person_no: str
    name: str
    id_masked: str
    address: str
    last_verified: date | None


def mask_id(id_no: str | None) -> str:
    """First 6 and last 4 characters of an ID number."""
    if not id_no:
        return "（无证件号码）"
    return id_no[:6] + "*" * max(len(id_no) - 10, 0) + id_no[-4:]


DUE_SQL = text(
    """
    SELECT p.person_no, p.name, p.id_no, p.address, v.last_verified
    FROM person p
    LEFT JOIN LATERAL (
        SELECT max(r.event_date) AS last_verified
        FROM link l JOIN source_record r ON r.id = l.source_record_id
        WHERE l.person_id = p.id AND r.source = 'sq_cj' AND r.status = 'accepted'
    ) v ON true
    WHERE p.community_code = :community AND p.status = 'active' AND p.merged_into IS NULL
      AND (v.last_verified IS NULL OR v.last_verified < :since)
      AND NOT EXISTS (
        SELECT 1 FROM collection_row c
        WHERE c.person_no = p.person_no AND c.community_code = :community AND c.status = 'accepted'
          AND c.work_date >= :since
      )
    ORDER BY v.last_verified NULLS FIRST, p.person_no
    LIMIT :limit
    """
)


def due_persons(*, session: Session, officer: Officer, today: date) -> list[DuePerson]:
    """Residents of the officer's community nobody has verified in verify_every_days (audited read)."""
    settings = collection_settings()
    rows = session.execute(
        DUE_SQL,
        {
            "community": officer.community_code,
            "since": today - timedelta(days=settings.verify_every_days),
            "limit": settings.due_list_limit,
        },
    ).all()
    record_audit(
        session=session,
        actor=f"officer:{officer.officer_no}",
        action="collection.due.read",
        object_type="community",
        object_id=officer.community_code,
        detail={"persons": [r.person_no for r in rows]},
    )
    return [
        DuePerson(r.person_no, r.name or "", mask_id(r.id_no), r.address or "", r.last_verified) for r in rows
    ]


def returned_rows(*, session: Session, officer: Officer) -> list[SubmissionRow]:
    """Rows of the officer's community waiting for a correction, oldest first."""
    return list(
        session.scalars(
            select(SubmissionRow)
            .where(
                SubmissionRow.community_code == officer.community_code,
                SubmissionRow.status.in_(("rejected", "pending")),
            )
            .order_by(SubmissionRow.work_date, SubmissionRow.id)
        )
    )


def audit_read(*, session: Session, officer: Officer, what: str, object_id: str) -> None:
    """Record that an officer read personal data (ids only, never the data)."""
    record_audit(
        session=session,
        actor=f"officer:{officer.officer_no}",
        action=f"collection.{what}.read",
        object_type=what,
        object_id=object_id,
    )


# --- clearance ------------------------------------------------------------------------------------

CLEARANCE_SQL = text(
    """
    SELECT count(*) FILTER (WHERE replaces_id IS NULL) AS submitted,
           count(*) FILTER (WHERE status = 'accepted') AS accepted,
           count(*) FILTER (WHERE status IN ('rejected', 'corrected')) AS rejected,
           count(*) FILTER (WHERE status = 'corrected' AND closed_at <= :cutoff) AS corrected,
           count(*) FILTER (WHERE status IN ('pending', 'rejected')
                               OR (status = 'corrected' AND closed_at > :cutoff)) AS still_open
    FROM collection_row
    WHERE community_code = :community AND work_date = :day AND created_at <= :cutoff
    """
)


def clearance(*, session: Session, community_code: str, day: date) -> Clearance:
    """一日一清 of one community's day as it stood at the cut-off (not stored)."""
    cutoff = datetime.combine(day, collection_settings().cutoff)
    counts = session.execute(CLEARANCE_SQL, {"community": community_code, "day": day, "cutoff": cutoff}).one()
    return Clearance(
        community_code=community_code,
        work_date=day,
        cutoff_at=cutoff,
        submitted=counts.submitted,
        accepted=counts.accepted,
        rejected=counts.rejected,
        corrected=counts.corrected,
        still_open=counts.still_open,
        cleared=counts.still_open == 0,
    )


def record_clearance(*, session: Session, day: date) -> list[Clearance]:
    """Store the clearance of every community with officers or rows on the day (recomputed on re-run)."""
    communities = session.scalars(
        select(Officer.community_code)
        .where(Officer.active)
        .union(select(SubmissionRow.community_code).where(SubmissionRow.work_date == day))
    ).all()
    stored = []
    for code in sorted(set(communities)):
        fresh = clearance(session=session, community_code=code, day=day)
        row = session.get(Clearance, (code, day))
        values: dict[str, Any] = {
            k: getattr(fresh, k)
            for k in ("cutoff_at", "submitted", "accepted", "rejected", "corrected", "still_open", "cleared")
        }
        if row is None:
            row = Clearance(community_code=code, work_date=day, **values)
            session.add(row)
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.computed_at = func.clock_timestamp()
        stored.append(row)
    session.flush()
    return stored
