"""The form, the upload, corrections, clearance and scope (URL tampering), through the pages."""

import io
from datetime import date, datetime, time, timedelta

import openpyxl
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from collection import service
from collection.flows import clear_day
from collection.models import Clearance, Submission, SubmissionRow
from exchange import flows as exchange_flows
from monitor.service import community_clearance
from registry.models import AuditLog, SourceRecord
from registry.normalise.ids import check_char
from schemas.feed_spec import get_feed_spec
from tests.collection.conftest import LI, TODAY, ZHANG, ZHANG_BAD, log_in, person_form
from tests.factories import make_person
from tests.feedfiles import write_feed


def rows(session: Session) -> list[SubmissionRow]:
    return list(session.scalars(select(SubmissionRow).order_by(SubmissionRow.id)))


def test_bad_id_is_stored_rejected_then_corrected(client: TestClient, session: Session, officers) -> None:
    csrf = log_in(client)
    bad = client.post("/collection/form", data={**person_form(id_no=ZHANG_BAD), "csrf": csrf})
    assert bad.status_code == 422
    assert "身份证号码校验位错误" in bad.text
    (stored,) = rows(session)  # stored before validation, kept although it failed
    assert (stored.status, stored.reasons, stored.raw["身份证号"]) == (
        "rejected",
        ["ID_CHECKSUM:身份证号"],
        ZHANG_BAD,
    )
    assert stored.raw["社区代码"] == "330102001001" and stored.raw["信息员工号"] == "A001"
    status = service.clearance(session=session, community_code="330102001001", day=TODAY)
    assert (status.submitted, status.rejected, status.still_open, status.cleared) == (1, 1, 1, False)

    fixed = client.post("/collection/form", data={**person_form(), "csrf": csrf, "replaces": str(stored.id)})
    assert fixed.status_code == 303 and fixed.headers["location"].startswith("/collection?saved=")
    first, second = rows(session)
    assert (first.status, second.status, second.replaces_id) == ("corrected", "accepted", first.id)
    status = service.clearance(session=session, community_code="330102001001", day=TODAY)
    assert (status.submitted, status.accepted, status.rejected, status.corrected, status.still_open) == (
        1,
        1,
        1,
        1,
        0,
    )
    assert status.cleared


def test_check_endpoint_reports_per_field(client: TestClient, officers) -> None:
    csrf = log_in(client)
    headers = {"X-CSRF-Token": csrf}
    bad = client.post("/collection/api/check", json={"values": person_form(id_no=ZHANG_BAD)}, headers=headers)
    assert bad.json() == {"ok": False, "errors": {"id_no": ["身份证号码校验位错误"]}}
    sex = client.post("/collection/api/check", json={"values": person_form(sex="女")}, headers=headers)
    assert sex.json() == {"ok": False, "errors": {"id_no": ["性别与身份证号码不一致"]}}
    good = client.post("/collection/api/check", json={"values": person_form()}, headers=headers)
    assert good.json() == {"ok": True, "errors": {}}


def sheet(cells: list[dict[str, str]]) -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    header = get_feed_spec("sq_cj").column_names
    ws.append(header)
    for row in cells:
        ws.append([row.get(h, "") for h in header])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


GOOD = {
    "姓名": "李娜",
    "身份证号": LI,
    "性别": "女",
    "现住址": "清波街2号",
    "人口类型": "户籍",
    "居住状态": "在住",
}


def test_upload_stores_every_row_and_reports_errors_per_row(
    client: TestClient, session: Session, officers
) -> None:
    csrf = log_in(client)
    template = client.get("/collection/template.xlsx")
    header = [
        c.value
        for c in next(openpyxl.load_workbook(io.BytesIO(template.content)).active.iter_rows(max_row=1))
    ]
    assert header == get_feed_spec("sq_cj").column_names
    content = sheet(
        [
            GOOD,
            {**GOOD, "姓名": "王五", "身份证号": ZHANG_BAD},
            {**GOOD, "姓名": "赵六", "身份证号": "", "现住址": ""},
            {**GOOD, "姓名": "钱七", "身份证号": "", "社区代码": "330102001002"},
        ]
    )
    files = {"file": ("sq_cj_20261120.xlsx", content, "application/octet-stream")}
    response = client.post("/collection/upload", data={"csrf": csrf}, files=files)
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert '通过 <strong class="ok">1</strong> 行' in page.text
    assert "身份证号码校验位错误" in page.text and "必填项为空" in page.text
    assert "不是您所在社区的代码" in page.text
    stored = rows(session)
    assert [(r.row_no, r.status) for r in stored] == [  # Excel's row numbers: the header is row 1
        (2, "accepted"),
        (3, "rejected"),
        (4, "rejected"),
        (5, "rejected"),
    ]
    assert stored[2].reasons == ["REQUIRED_MISSING:现住址"]
    work = client.get("/collection")
    assert work.text.count('href="/collection/form?fix=') == 3
    # Unreadable files are refused with a message and store nothing.
    junk = client.post(
        "/collection/upload", data={"csrf": csrf}, files={"file": ("x.xlsx", b"not a zip", "x")}
    )
    assert junk.status_code == 422 and "无法读取上传的表格" in junk.text
    assert session.scalar(select(func.count()).select_from(Submission)) == 1


def test_officer_cannot_reach_another_community(client: TestClient, session: Session, officers) -> None:
    _, b = officers
    other = make_person(session, community_code="330102001002", id_no=LI, name="李娜")
    b_sub = service.store_form(session=session, officer=b, values={"姓名": "某人"}, work_date=TODAY)
    (b_row,) = service.validate_submission(session=session, submission_id=b_sub.id)
    assert b_row.status == "rejected"
    before = len(rows(session))
    csrf = log_in(client)
    assert client.get(f"/collection/submissions/{b_sub.id}").status_code == 404
    assert client.get(f"/collection/form?fix={b_row.id}").status_code == 404
    assert client.get(f"/collection/form?person={other.person_no}").status_code == 404
    posts = [
        {**person_form(), "csrf": csrf, "replaces": str(b_row.id)},
        {**person_form(), "csrf": csrf, "person": other.person_no},
        {**person_form(), "csrf": csrf, "community_code": "330102001002"},
    ]
    assert [client.post("/collection/form", data=p).status_code for p in posts] == [404, 404, 403]
    assert len(rows(session)) == before
    rejected = session.get(SubmissionRow, b_row.id)
    assert rejected is not None and rejected.status == "rejected"
    assert "李娜" not in client.get("/collection").text


def test_due_list_shows_own_residents_and_is_audited(client: TestClient, session: Session, officers) -> None:
    mine = make_person(session, community_code="330102001001", id_no="330102198001010018", name="张伟")
    make_person(session, community_code="330102001002", id_no=LI, name="李娜")
    log_in(client)
    page = client.get("/collection")
    assert "张伟" in page.text and "330102********0018" in page.text and "李娜" not in page.text
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "collection.due.read")).all()[-1]
    assert audit.actor == "officer:A001" and audit.detail == {"persons": [mine.person_no]}
    assert "张伟" not in str(audit.detail)
    form = client.get(f"/collection/form?person={mine.person_no}")
    assert form.status_code == 200 and 'value="张伟"' in form.text
    assert (
        session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "collection.person.read")
        )
        == 1
    )


def test_clearance_at_the_cutoff(session: Session, officers) -> None:
    a, _ = officers
    day = date(2026, 11, 19)
    sub = service.store_form(session=session, officer=a, values={"姓名": "张伟", "性别": "男"}, work_date=day)
    (row,) = service.validate_submission(session=session, submission_id=sub.id)
    session.execute(update(SubmissionRow).values(created_at=datetime(2026, 11, 19, 10, 0)))
    late = service.clearance(session=session, community_code=a.community_code, day=day)
    assert (late.submitted, late.rejected, late.still_open, late.cleared) == (1, 1, 1, False)
    # Corrected the next morning: still not cleared at the 19th's cut-off.
    fix = service.store_form(session=session, officer=a, values=dict(GOOD), work_date=day, replaces_id=row.id)
    service.validate_submission(session=session, submission_id=fix.id)
    session.execute(
        update(SubmissionRow).where(SubmissionRow.id == row.id).values(closed_at=datetime(2026, 11, 20, 8, 0))
    )
    session.execute(
        update(SubmissionRow)
        .where(SubmissionRow.replaces_id == row.id)
        .values(created_at=datetime(2026, 11, 20, 8, 0))
    )
    assert not service.clearance(session=session, community_code=a.community_code, day=day).cleared
    # Corrected before the cut-off: cleared.
    session.execute(update(SubmissionRow).values(created_at=datetime(2026, 11, 19, 18, 0)))
    session.execute(
        update(SubmissionRow)
        .where(SubmissionRow.id == row.id)
        .values(closed_at=datetime(2026, 11, 19, 18, 0))
    )
    on_time = service.clearance(session=session, community_code=a.community_code, day=day)
    assert (on_time.accepted, on_time.corrected, on_time.still_open, on_time.cleared) == (1, 1, 0, True)
    stored = {
        c.community_code: (c.submitted, c.cleared) for c in service.record_clearance(session=session, day=day)
    }
    assert stored == {"330102001001": (1, True), "330102001002": (0, True)}


def test_a_later_upload_corrects_the_rows_of_the_same_persons(
    client: TestClient, session: Session, factory, officers
) -> None:
    """The officer's path: an upload with rejected rows, a second upload of the day with those persons
    right, the day's clearance (page, stored by the nightly job, monitor)."""
    li_namesake = "33010219850505004" + check_char("33010219850505004")  # 李娜 too, another person
    zhang = {**GOOD, "姓名": "张伟", "身份证号": ZHANG_BAD, "性别": "男", "出生日期": "1980-01-01"}
    csrf = log_in(client)
    first = client.post(
        "/collection/upload",
        data={"csrf": csrf},
        files={
            "file": (
                "day.xlsx",
                sheet(
                    [
                        zhang,  # wrong check character
                        {**GOOD, "现住址": ""},  # 李娜, address missing
                        {**GOOD, "姓名": "赵六", "身份证号": "", "现住址": ""},  # no ID number, no birth date
                        {**GOOD, "身份证号": li_namesake, "现住址": ""},
                    ]
                ),
                "x",
            )
        },
    )
    assert first.status_code == 303
    assert [r.status for r in rows(session)] == ["rejected"] * 4
    second = client.post(
        "/collection/upload",
        data={"csrf": csrf},
        files={
            "file": (
                "day-fixed.xlsx",
                sheet(
                    [
                        {**zhang, "身份证号": ZHANG},  # same name and birth date, the number now valid
                        GOOD,  # the same ID number
                        {**GOOD, "姓名": "赵六", "身份证号": "", "出生日期": "1990-01-01"},
                    ]
                ),
                "x",
            )
        },
    )
    assert second.status_code == 303
    zhang_bad, li_bad, zhao_bad, namesake, zhang_ok, li_ok, zhao_ok = rows(session)
    assert [r.status for r in (zhang_bad, li_bad, zhao_bad, namesake)] == [
        "corrected",
        "corrected",
        "rejected",  # nothing in it says who it was: not guessed from the name alone
        "rejected",  # a valid ID number of its own: another person of the same name and birth date
    ]
    assert (zhang_ok.replaces_id, li_ok.replaces_id, zhao_ok.replaces_id) == (zhang_bad.id, li_bad.id, None)
    assert zhang_bad.closed_at is not None and zhang_bad.reasons == ["ID_CHECKSUM:身份证号"]  # history kept
    status = service.clearance(session=session, community_code="330102001001", day=TODAY)
    assert (status.submitted, status.accepted, status.rejected, status.corrected, status.still_open) == (
        5,
        3,
        4,
        2,
        2,
    )
    history = client.get(first.headers["location"])
    assert history.text.count(">已更正</span>") == 2 and history.text.count(">需更正</span>") == 2
    assert client.get("/collection").text.count('href="/collection/form?fix=') == 2
    for row in (zhao_bad, namesake):
        gone = client.post(f"/collection/rows/{row.id}/discard", data={"csrf": csrf, "reason": "重复录入"})
        assert gone.status_code == 303
    assert service.clearance(session=session, community_code="330102001001", day=TODAY).cleared
    assert clear_day(factory, TODAY)["330102001001"] is True
    stored = session.get(Clearance, ("330102001001", TODAY))
    assert stored is not None
    assert (stored.corrected, stored.discarded, stored.still_open) == (2, 2, 0)
    after_cutoff = datetime.combine(TODAY, time(23, 59, 59)) + timedelta(seconds=1)
    grid = community_clearance(session=session, days=[TODAY], now=after_cutoff)
    assert {code: [c.cleared for c in cells if c] for code, _, cells in grid}["330102001001"] == [True]


def test_a_later_file_through_the_exchange_corrects_a_rejected_row(
    session: Session, factory, areas, tmp_path
) -> None:
    """A community's files that came through the exchange (here the command line): a row the first file
    had rejected is corrected by the second file's accepted row of the same person."""
    cells = {"社区代码": areas[0], "采集日期": TODAY.isoformat(), "信息员工号": "A001"}
    li, wang = {**GOOD, **cells}, {**GOOD, **cells, "姓名": "王五", "身份证号": ZHANG, "性别": "男"}
    first = exchange_flows.ingest_file(
        factory, write_feed(tmp_path, "sq_cj", TODAY, [{**li, "现住址": ""}, wang])
    )
    before = service.clearance(session=session, community_code=areas[0], day=TODAY)
    assert (before.submitted, before.accepted, before.still_open, before.cleared) == (2, 1, 1, False)
    second = exchange_flows.ingest_file(factory, write_feed(tmp_path, "sq_cj", TODAY, [li], seq=2))
    assert second.batch_id > first.batch_id
    after = service.clearance(session=session, community_code=areas[0], day=TODAY)
    assert (after.submitted, after.accepted, after.rejected, after.corrected, after.still_open) == (
        2,
        2,
        1,
        1,
        0,
    )
    assert after.cleared
    statuses = session.scalars(
        select(SourceRecord.status).order_by(SourceRecord.batch_id, SourceRecord.row_no)
    )
    assert list(statuses) == ["rejected", "accepted", "accepted"]  # the rejected record is kept as it was
