"""Units of work of community collection: officers, submissions stored then validated, the day's work,
corrections, clearance.

Validation is the registry's RecordBuilder on the sq_cj spec (the same code the exchange runs when the
rows arrive as a file), with one stricter rule for officers: any remark on a cell is an error to fix
before the row is accepted, because the officer is standing in front of the resident.
"""

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import Row, delete, func, select, text
from sqlalchemy.orm import Session

from collection.auth import hash_password
from collection.config import collection_settings
from collection.models import Clearance as Clearance  # public here: the monitor shows clearances
from collection.models import LoginFailure, Officer, Submission, SubmissionRow
from exchange import service as exchange_service
from registry.audit import record_audit
from registry.models import Area, Person
from registry.normalise.codes import ETHNICITIES
from registry.normalise.dates import parse_date
from registry.normalise.ids import parse_id_number
from registry.normalise.names import name_key
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
MESSAGES = {
    "COMMUNITY_SCOPE": "不是您所在社区的代码，只能采集本社区的居民",
    "ID_EXCEL_NUMBER": (
        "被 Excel 当成了数字（显示为 3.30105E+17 或末尾变成 000），后几位已经丢失，无法还原："
        "请把这一列设为「文本」格式（模板已设好）后，重新输入完整的18位号码"
    ),
    "DUPLICATE_STORED": "与本社区当天已保存的一条记录完全相同，再交会把此人登记两次：请舍弃此行，或修改后再提交",
}
# An ID number Excel stored as a number: scientific notation, or 16 to 18 digits whose tail became zeros
# (Excel keeps 15 significant digits).
EXCEL_NUMBER_ID = re.compile(r"\d(\.\d+)?[eE]\+?\d+|\d{15}0{1,3}")
# Why an officer may discard a row (the audit records which one, never the row's data).
DISCARD_REASONS = ("重复录入", "不是本社区居民", "无法核实身份", "其他")
# The example row of the template; an upload skips a row equal to it.
EXAMPLE_ROW = {
    "姓名": "张三（示例，可保留）",
    "身份证号": "330102198001010018",
    "性别": "男",
    "出生日期": "1980-01-01",
    "民族": "汉族",
    "联系电话": "13812345678",
    "现住址": "某某街1号2幢301室",
    "人口类型": "户籍",
    "居住状态": "在住",
    "备注": "本行是示例，上传时自动跳过",
}


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


def unlock_officer(*, session: Session, officer_no: str, actor: str = "admin") -> int:
    """Forget the account's failed logins (from every address): a throttled officer may log in at once.
    Returns how many failures were forgotten."""
    officer = _officer(session, officer_no)
    forgotten = session.execute(delete(LoginFailure).where(LoginFailure.officer_no == officer.officer_no))
    count = int(getattr(forgotten, "rowcount", 0) or 0)
    record_audit(
        session=session,
        actor=actor,
        action="collection.officer.unlocked",
        object_type="officer",
        object_id=officer_no,
        detail={"failures": count},
    )
    return count


def reset_password(*, session: Session, officer_no: str, password: str) -> Officer:
    """A new password (the account enabled and unlocked); sessions opened with the old password end."""
    officer = _officer(session, officer_no)
    officer.password_hash = hash_password(password)
    officer.password_changed_at = session.scalar(select(func.clock_timestamp())) or datetime.now()
    officer.active = True
    unlock_officer(session=session, officer_no=officer_no)
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
    # The registry accepts a row with an ID number and no name; an officer must write the name.
    if not (row.get("姓名") or "").strip():
        reasons = [r for r in reasons if r != "ROW_NO_IDENTITY"] + ["REQUIRED_MISSING:姓名"]
    id_no = (row.get("身份证号") or "").strip()
    if EXCEL_NUMBER_ID.fullmatch(id_no) and any(r.endswith(":身份证号") for r in reasons):
        reasons = [r for r in reasons if not r.endswith(":身份证号")] + ["ID_EXCEL_NUMBER:身份证号"]
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
    """Store every row of an uploaded sq_cj spreadsheet as typed (not yet validated).

    A row is numbered as Excel numbers it (the header is row 1); the template's example row is skipped.
    """
    try:
        feed = exchange_service.open_feed_file(path, spec(), max_bytes=5 * 1024 * 1024)
        rows = [row for row in feed.rows() if not _is_example(row.values)]
    except exchange_service.FeedFileError as exc:
        raise UploadError(exc.message) from exc
    if not rows:
        raise UploadError(
            "表格里没有要上传的人：表头下面是空的（示例行会自动跳过）。请从第2行起每行填写一人，保存后再上传"
        )
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
            row_no=row.number + 1,
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
    waiting: list[tuple[SubmissionRow, Identity]] | None = None  # rows a correction may close, read once
    for row in rows:
        first = duplicates.first(row.row_no, tuple(row.raw.get(c) for c in spec().column_names))
        if row.status != "pending":
            continue
        row.status, row.reasons = check_row(
            row.raw, community_code=row.community_code, work_date=row.work_date, duplicate_of=first
        )
        if row.status == "accepted" and _stored_twin(session, row):
            row.status, row.reasons = "rejected", ["DUPLICATE_STORED"]
        row.validated_at = now
        if row.status == "accepted":
            if waiting is None:
                waiting = _waiting_for_correction(session, row)
            _close_corrected(row, waiting, now)
        session.flush()  # the next row of the file sees this one accepted
    return rows


@dataclass(frozen=True)
class Identity:
    """Who a stored row names, as far as its cells tell: the resident verified, a valid ID number, the
    name (matching key) and birth date (its cell, else the valid ID number's)."""

    person_no: str | None
    id_no: str | None
    name_birth: tuple[str, date] | None


def identity(row: SubmissionRow) -> Identity:
    """The identity of a stored row."""
    parsed = parse_id_number(row.raw.get("身份证号"), today=row.work_date + timedelta(days=1))
    born = parse_date(row.raw.get("出生日期"), today=row.work_date + timedelta(days=1)).value
    born = born or (parsed.birth_date if parsed.valid else None)
    name = name_key(row.raw.get("姓名"))
    return Identity(
        row.person_no, parsed.value if parsed.valid else None, (name, born) if name and born else None
    )


def same_person(rejected: Identity, accepted: Identity) -> bool:
    """A rejected row and an accepted one name the same person: the same resident verified, the same
    valid ID number, or the same name and birth date unless both carry valid ID numbers that differ."""
    if rejected.person_no and rejected.person_no == accepted.person_no:
        return True
    if rejected.id_no and accepted.id_no:
        return rejected.id_no == accepted.id_no
    return rejected.name_birth is not None and rejected.name_birth == accepted.name_birth


def _waiting_for_correction(session: Session, row: SubmissionRow) -> list[tuple[SubmissionRow, Identity]]:
    """The rejected rows of the row's community and day in earlier submissions, with who they name."""
    earlier = session.scalars(
        select(SubmissionRow)
        .where(
            SubmissionRow.community_code == row.community_code,
            SubmissionRow.work_date == row.work_date,
            SubmissionRow.status == "rejected",
            SubmissionRow.submission_id < row.submission_id,
        )
        .order_by(SubmissionRow.id)
    )
    return [(r, identity(r)) for r in earlier]


def _close_corrected(
    accepted: SubmissionRow, waiting: list[tuple[SubmissionRow, Identity]], now: datetime | None
) -> None:
    """An accepted row corrects the rows of the same person its community rejected that day in earlier
    submissions (a later upload or form instead of 更正此行): they become corrected, closed now, and stay
    in their submission's history; the accepted row names the latest of them as the row it replaces."""
    who = identity(accepted)
    corrected = [r for r, named in waiting if r.status == "rejected" and same_person(named, who)]
    for row in corrected:
        row.status, row.closed_at = "corrected", now
    if corrected and accepted.replaces_id is None:
        accepted.replaces_id = corrected[-1].id


def _stored_twin(session: Session, row: SubmissionRow) -> bool:
    """True when an accepted row of the same community and day has exactly this row's cells."""
    return (
        session.scalar(
            select(SubmissionRow.id)
            .where(
                SubmissionRow.community_code == row.community_code,
                SubmissionRow.work_date == row.work_date,
                SubmissionRow.status == "accepted",
                SubmissionRow.id != row.id,
                SubmissionRow.raw == row.raw,
            )
            .limit(1)
        )
        is not None
    )


def _is_example(values: Mapping[str, str | None]) -> bool:
    return all((values.get(column) or "") == value for column, value in EXAMPLE_ROW.items())


def discard_row(
    *, session: Session, officer: Officer, row_id: int, reason: str, note: str = ""
) -> SubmissionRow:
    """Drop a row returned for correction, with one of DISCARD_REASONS (audited); it no longer keeps the
    day open. NotFound for another community's row or a row that is not waiting for a correction."""
    row = own_row(session=session, officer=officer, row_id=row_id)
    if row.status != "rejected" or reason not in DISCARD_REASONS:
        raise NotFound
    note = note.strip()[:100]
    row.status = "discarded"
    row.discard_reason = f"{reason}：{note}" if note else reason
    row.closed_at = session.scalar(select(func.clock_timestamp()))
    record_audit(
        session=session,
        actor=f"officer:{officer.officer_no}",
        action="collection.row.discarded",
        object_type="row",
        object_id=str(row.id),
        detail={"reason": reason, "work_date": row.work_date.isoformat()},
    )
    session.flush()
    return row


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


TEMPLATE_NOTES = (
    "填写说明",
    "1. 每行填写一人，从第2行开始；第2行的示例行可以保留，上传时会自动跳过。",
    "2. 带 * 的列必须填写：姓名、性别、现住址、人口类型、居住状态。",
    "3. 身份证号列已设为「文本」格式，请直接输入18位号码（末位可为X）。"
    "如果单元格显示成 3.30105E+17 或末尾变成 000，说明被 Excel 当成了数字，号码已丢失，请把该列设为文本后重新输入。",
    "4. 性别、民族、人口类型、居住状态请从下拉列表中选择。",
    "5. 社区代码、采集日期、信息员工号可以不填：上传时自动填为您的社区、当天日期和您的工号。",
    "6. 出生日期写成 1990-03-07；有身份证号时按身份证号核对。",
    "7. 上传后逐行显示结果：通过的行已保存；标红的行请点「更正此行」修改，重复或不该录入的行请「舍弃」并说明原因。",
    "8. 不要改动第一行的列名，不要合并单元格；一个文件最大 5 MB。",
)


def template_xlsx(officer: Officer | None = None) -> bytes:
    """The upload template: the sq_cj header, an example row (skipped on upload), code and date columns as
    text, drop-downs for the coded columns and an instructions sheet."""
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    columns = spec().column_names
    required = set(spec().required_columns)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "社区信息采集"
    sheet.append(list(columns))
    example = dict(EXAMPLE_ROW)
    if officer is not None:
        example |= {"社区代码": officer.community_code, "信息员工号": officer.officer_no}
    sheet.append([example.get(column, "") for column in columns])
    sheet.freeze_panes = "A2"
    lists = book.create_sheet("代码表")
    choices = {**CHOICES, "民族": tuple(ETHNICITIES.values())}
    for index, column in enumerate(columns, start=1):
        letter = openpyxl.utils.get_column_letter(index)
        head = sheet.cell(row=1, column=index)
        head.font = Font(bold=True, color="C00000" if column in required else "000000")
        sheet.cell(row=2, column=index).font = Font(italic=True, color="808080")
        sheet.column_dimensions[letter].width = 22 if column in ("身份证号", "现住址", "社区代码") else 12
        if column in ("身份证号", "联系电话", "社区代码", "出生日期", "采集日期", "信息员工号"):
            for row in range(2, 1002):
                sheet.cell(row=row, column=index).number_format = "@"
        if column in choices:
            values = choices[column]
            list_column = openpyxl.utils.get_column_letter(list(choices).index(column) + 1)
            lists[f"{list_column}1"] = column
            for offset, value in enumerate(values, start=2):
                lists[f"{list_column}{offset}"] = value
            rule = DataValidation(
                type="list",
                formula1=f"'代码表'!${list_column}$2:${list_column}${len(values) + 1}",
                allow_blank=column not in required,
                showErrorMessage=True,
                errorTitle="请从列表中选择",
                error=f"{column}只能从下拉列表中选择",
            )
            sheet.add_data_validation(rule)
            rule.add(f"{letter}2:{letter}1001")
    notes = book.create_sheet("填写说明", 1)  # after the data sheet: an upload reads the first sheet
    for line in TEMPLATE_NOTES:
        notes.append([line])
    notes["A1"].font = Font(bold=True, size=14)
    notes.column_dimensions["A"].width = 120
    lists.sheet_state = "hidden"
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

# What the officers' rows of a community's day count, as they stood at its cut-off (`cutoff`): shared by
# the one-day statement (the officer's page) and the set-wise ones (the monitor's grid, the nightly job).
OFFICER_COUNTS = """
    count(*) FILTER (WHERE replaces_id IS NULL) AS submitted,
    count(*) FILTER (WHERE status = 'accepted') AS accepted,
    count(*) FILTER (WHERE status IN ('rejected', 'corrected', 'discarded')) AS rejected,
    count(*) FILTER (WHERE status = 'corrected' AND closed_at <= {cutoff}) AS corrected,
    count(*) FILTER (WHERE status = 'discarded' AND closed_at <= {cutoff}) AS discarded,
    count(*) FILTER (WHERE status IN ('pending', 'rejected')
                        OR (status IN ('corrected', 'discarded') AND closed_at > {cutoff})) AS still_open
"""
# The community's rows of the day that came as files through the exchange (push, landing folder, command
# line), delivered by the cut-off: `r` a source_record of the sq_cj batch `b`.
FILE_DELIVERED = """
    b.source = 'sq_cj'
    AND EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.received_at <= {cutoff})
    AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.channel = 'collection')
"""
FILE_COLUMNS = "r.batch_id, r.row_no, r.status, r.id_no, r.id_valid, r.name, r.birth_date"
# One community's day in one round trip: the officers' rows counted, beside the files' rows, one per line
# (none: one line of NULLs).
CLEARANCE_SQL = text(
    f"""
    WITH officers AS (
        SELECT {OFFICER_COUNTS.format(cutoff=":cutoff")}
        FROM collection_row
        WHERE community_code = :community AND work_date = :day AND created_at <= :cutoff
    )
    SELECT officers.*, f.*
    FROM officers LEFT JOIN LATERAL (
        SELECT {FILE_COLUMNS}
        FROM source_record r JOIN batch b ON b.id = r.batch_id
        WHERE b.as_of_date = :day AND r.community_code = :community AND {FILE_DELIVERED.format(cutoff=":cutoff")}
    ) AS f ON true
    ORDER BY f.batch_id, f.row_no
    """
)
# Many communities and days at once: the days with their cut-offs, then one statement for the officers'
# counts per community and day and one for the files' rows.
DAYS = "SELECT * FROM unnest(CAST(:days AS date[]), CAST(:cutoffs AS timestamp[])) AS t(day, cutoff)"
OFFICER_COUNTS_SQL = text(
    f"""
    WITH days AS ({DAYS})
    SELECT c.community_code, days.day, {OFFICER_COUNTS.format(cutoff="days.cutoff")}
    FROM days JOIN collection_row c ON c.work_date = days.day AND c.created_at <= days.cutoff
    WHERE c.community_code = ANY(:communities)
    GROUP BY c.community_code, days.day
    """
)
FILE_ROWS_SQL = text(
    f"""
    WITH days AS ({DAYS})
    SELECT r.community_code, days.day, {FILE_COLUMNS}
    FROM days JOIN batch b ON b.as_of_date = days.day JOIN source_record r ON r.batch_id = b.id
    WHERE r.community_code = ANY(:communities) AND {FILE_DELIVERED.format(cutoff="days.cutoff")}
    ORDER BY r.community_code, days.day, r.batch_id, r.row_no
    """
)
COUNTS = ("submitted", "accepted", "rejected", "corrected", "discarded", "still_open")


def _file_counts(rows: Sequence[Row[Any]]) -> dict[str, int]:
    """Clearance counts of the day's rows that came as files through the exchange. A rejected row is
    corrected when a later file (a batch received after its own) has the same person accepted
    (same_person); the accepted row is then a correction, not a new submission. A row held for review
    waits for the clerk, not for a file."""
    who = [
        Identity(
            None,
            r.id_no if r.id_valid else None,
            (key, r.birth_date) if (key := name_key(r.name)) and r.birth_date else None,
        )
        for r in rows
    ]
    # The accepted rows by ID number and by name and birth date: a rejected row's candidates (a file's
    # row has no verified resident), so a day of thousands of rows (a first full extract) is not
    # compared pair by pair.
    by_id: dict[str, list[int]] = {}
    by_name_birth: dict[tuple[str, date], list[int]] = {}
    for j, row in enumerate(rows):
        if row.status == "accepted":
            if id_no := who[j].id_no:
                by_id.setdefault(id_no, []).append(j)
            if name_birth := who[j].name_birth:
                by_name_birth.setdefault(name_birth, []).append(j)
    corrected: set[int] = set()
    corrections: set[int] = set()
    for i, row in enumerate(rows):
        if row.status != "rejected":
            continue
        candidates = by_id.get(who[i].id_no or "", []) + by_name_birth.get(
            who[i].name_birth or ("", date.min), []
        )
        # The first accepted row of a later file that names the same person, as a pass in order would find.
        later = [
            j for j in sorted(candidates) if rows[j].batch_id > row.batch_id and same_person(who[i], who[j])
        ]
        if later:
            corrected.add(i)
            corrections.add(later[0])
    accepted = sum(1 for r in rows if r.status == "accepted")
    return {
        "submitted": len(rows) - len(corrections),
        "accepted": accepted,
        "rejected": len(rows) - accepted,
        "corrected": len(corrected),
        "discarded": 0,
        "still_open": len(rows) - accepted - len(corrected),
    }


def _cutoff(day: date) -> datetime:
    return datetime.combine(day, collection_settings().cutoff)


def _clearance(
    community_code: str, day: date, officers: Mapping[Any, Any], files: Sequence[Row[Any]]
) -> Clearance:
    counted = _file_counts(files)
    total = {key: int(officers.get(key) or 0) + counted[key] for key in COUNTS}
    return Clearance(
        community_code=community_code,
        work_date=day,
        cutoff_at=_cutoff(day),
        **total,
        cleared=total["still_open"] == 0,
    )


def clearance(*, session: Session, community_code: str, day: date) -> Clearance:
    """一日一清 of one community's day as it stood at the cut-off (not stored): the officers' rows and the
    community's files through the exchange."""
    lines = session.execute(
        CLEARANCE_SQL, {"community": community_code, "day": day, "cutoff": _cutoff(day)}
    ).all()
    files = [line for line in lines if line.batch_id is not None]
    return _clearance(community_code, day, lines[0]._mapping, files)


def clearances(
    *, session: Session, community_codes: Sequence[str], days: Sequence[date]
) -> dict[tuple[str, date], Clearance]:
    """clearance() of every community and day given, in two statements whatever their number (the
    monitor's grid, the nightly job): the same counts, keyed by (community, day)."""
    params = {"communities": list(community_codes), "days": list(days), "cutoffs": [_cutoff(d) for d in days]}
    officers = {(r.community_code, r.day): r._mapping for r in session.execute(OFFICER_COUNTS_SQL, params)}
    files: dict[tuple[str, date], list[Row[Any]]] = {}
    for line in session.execute(FILE_ROWS_SQL, params):
        files.setdefault((line.community_code, line.day), []).append(line)
    return {
        (code, day): _clearance(code, day, officers.get((code, day), {}), files.get((code, day), []))
        for code in community_codes
        for day in days
    }


def record_clearance(*, session: Session, day: date) -> list[Clearance]:
    """Store the clearance of every community with officers or rows on the day (recomputed on re-run)."""
    communities = session.scalars(
        select(Officer.community_code)
        .where(Officer.active)
        .union(select(SubmissionRow.community_code).where(SubmissionRow.work_date == day))
    ).all()
    codes = sorted(set(communities))
    computed = clearances(session=session, community_codes=codes, days=[day])
    stored = []
    for code in codes:
        fresh = computed[(code, day)]
        row = session.get(Clearance, (code, day))
        values: dict[str, Any] = {
            k: getattr(fresh, k)
            for k in (
                "cutoff_at",
                "submitted",
                "accepted",
                "rejected",
                "corrected",
                "discarded",
                "still_open",
                "cleared",
            )
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
