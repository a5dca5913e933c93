"""What issue 18 found wrong in an officer's day, through the pages: required name, duplicates, discarding,
the template, IDs Excel turned into numbers, Excel's row numbers, an empty sheet, lockouts, error pages
and the session key shared by every server process."""

import io
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection import service
from collection.models import SubmissionRow
from registry.models import AuditLog
from tests.collection.conftest import LI, PASSWORD, TODAY, ZHANG, log_in, person_form
from tests.collection.test_pages import GOOD, sheet


def rows(session: Session) -> list[SubmissionRow]:
    return list(session.scalars(select(SubmissionRow).order_by(SubmissionRow.id)))


def upload(client: TestClient, csrf: str, content: bytes, name: str = "day.xlsx") -> Response:
    return client.post("/collection/upload", data={"csrf": csrf}, files={"file": (name, content, "x")})


def test_name_is_required_on_the_server(client: TestClient, session: Session, officers) -> None:
    csrf = log_in(client)
    form = client.post("/collection/form", data={**person_form(name=""), "csrf": csrf})
    assert form.status_code == 422 and "必填项为空" in form.text
    (row,) = rows(session)
    assert (row.status, row.reasons) == ("rejected", ["REQUIRED_MISSING:姓名"])
    # The same in a spreadsheet: a row with an ID number but no name does not pass.
    sent = upload(client, csrf, sheet([GOOD | {"姓名": ""}]))
    page = client.get(sent.headers["location"])
    assert '通过 <strong class="ok">0</strong> 行' in page.text and "姓名</b>：必填项为空" in page.text
    check = client.post(
        "/collection/api/check", json={"values": person_form(name="")}, headers={"X-CSRF-Token": csrf}
    )
    assert check.json() == {"ok": False, "errors": {"name": ["必填项为空"]}}


def test_a_duplicate_row_is_not_stored_twice_and_can_be_discarded(
    client: TestClient, session: Session, officers
) -> None:
    csrf = log_in(client)
    sent = upload(client, csrf, sheet([GOOD, GOOD]))
    page = client.get(sent.headers["location"])
    assert "第3行" in page.text and "与第2行完全相同" in page.text and "舍弃此行" in page.text
    first, twin = rows(session)
    assert (first.row_no, first.status, twin.row_no, twin.status) == (2, "accepted", 3, "rejected")
    # "更正此行" submitted unchanged: refused, the person is not recorded twice.
    fix = client.get(f"/collection/form?fix={twin.id}")
    assert fix.status_code == 200
    again = client.post(
        "/collection/form",
        data={
            **person_form(
                name=GOOD["姓名"], id_no=LI, sex="女", address=GOOD["现住址"], birth_date="", phone=""
            ),
            "ethnicity": "",
            "csrf": csrf,
            "replaces": str(twin.id),
        },
    )
    assert again.status_code == 422 and "再交会把此人登记两次" in again.text
    assert [r.status for r in rows(session)].count("accepted") == 1
    retry = rows(session)[-1]
    # Discarded with a reason: audited (the reason, not the row's data), and the day is cleared.
    assert not service.clearance(session=session, community_code=first.community_code, day=TODAY).cleared
    bad_reason = client.post(f"/collection/rows/{retry.id}/discard", data={"csrf": csrf, "reason": "随便"})
    assert bad_reason.status_code == 404 and "text/html" in bad_reason.headers["content-type"]
    done = client.post(
        f"/collection/rows/{retry.id}/discard",
        data={
            "csrf": csrf,
            "reason": "重复录入",
            "note": "与第2行同一人",
            "back": f"/collection/submissions/{retry.submission_id}",
        },
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/collection/submissions/")
    session.refresh(retry)
    assert (retry.status, retry.discard_reason) == ("discarded", "重复录入：与第2行同一人")
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "collection.row.discarded")).one()
    assert audit.actor == "officer:A001" and audit.detail == {
        "reason": "重复录入",
        "work_date": TODAY.isoformat(),
    }
    status = service.clearance(session=session, community_code=first.community_code, day=TODAY)
    assert (status.accepted, status.discarded, status.still_open, status.cleared) == (1, 1, 0, True)
    work = client.get("/collection")
    assert "今日已清" in work.text
    # Discarding twice, or an accepted row, is not possible.
    assert (
        client.post(f"/collection/rows/{retry.id}/discard", data={"csrf": csrf, "reason": "其他"}).status_code
        == 404
    )
    assert (
        client.post(f"/collection/rows/{first.id}/discard", data={"csrf": csrf, "reason": "其他"}).status_code
        == 404
    )


def test_template_has_text_ids_example_drop_downs_and_instructions(client: TestClient, officers) -> None:
    csrf = log_in(client)
    content = client.get("/collection/template.xlsx").content
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames[:2] == ["社区信息采集", "填写说明"]
    data = book["社区信息采集"]
    header = [c.value for c in data[1]]
    id_col = header.index("身份证号") + 1
    assert all(data.cell(row=r, column=id_col).number_format == "@" for r in range(2, 1001))
    example = {h: c.value for h, c in zip(header, data[2], strict=True)}
    assert example["姓名"].startswith("张三") and example["社区代码"] == "330102001001"
    validated = {str(v.sqref).split(":")[0][0]: v.formula1 for v in data.data_validations.dataValidation}
    letters = {h: openpyxl.utils.get_column_letter(i) for i, h in enumerate(header, start=1)}
    assert {h for h, letter in letters.items() if letter in validated} == {
        "性别",
        "民族",
        "人口类型",
        "居住状态",
    }
    codes = book["代码表"]
    assert codes.sheet_state == "hidden" and "汉族" in [c.value for row in codes.iter_rows() for c in row]
    assert "3.30105E+17" in "".join(str(c.value) for c in book["填写说明"]["A"])
    # The template as downloaded: only the example row, which is skipped; the sheet counts as empty.
    empty = upload(client, csrf, content)
    assert empty.status_code == 422 and "表格里没有要上传的人" in empty.text
    assert "通过的行已保存" not in empty.text
    # One person typed under the example: stored as Excel's row 3.
    for column, name in enumerate(header, start=1):
        data.cell(row=3, column=column).value = {**GOOD, "身份证号": LI}.get(name)
    out = io.BytesIO()
    book.save(out)
    page = client.get(upload(client, csrf, out.getvalue()).headers["location"])
    assert "第3行 · 李娜" in page.text and '通过 <strong class="ok">1</strong> 行' in page.text


@pytest.mark.parametrize("typed", ["3.301051970010152e+17", "330105197001015000", 330105197001015172])
def test_an_id_excel_made_a_number_is_explained(
    client: TestClient, session: Session, officers, typed
) -> None:
    csrf = log_in(client)
    book = openpyxl.load_workbook(io.BytesIO(sheet([GOOD])))
    header = [c.value for c in book.active[1]]
    book.active.cell(row=2, column=header.index("身份证号") + 1).value = typed  # a number cell for the int
    out = io.BytesIO()
    book.save(out)
    page = client.get(upload(client, csrf, out.getvalue()).headers["location"])
    (row,) = rows(session)
    assert row.reasons == ["ID_EXCEL_NUMBER:身份证号"], row.raw["身份证号"]
    assert "被 Excel 当成了数字" in page.text and "设为「文本」格式" in page.text


def test_header_names_the_community_and_errors_are_pages(
    client: TestClient, session: Session, officers
) -> None:
    _, b = officers
    other = service.store_form(session=session, officer=b, values={"姓名": "某人"}, work_date=TODAY)
    log_in(client)
    work = client.get("/collection")
    assert "清波社区" in work.text
    for url in (
        f"/collection/submissions/{other.id}",
        "/collection/submissions/abc",
        "/collection/form?fix=x",
    ):
        page = client.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), url
        assert "<html" in page.text and "返回今日工作" in page.text
    refused = client.post("/collection/form", data=person_form())  # no CSRF token
    assert refused.status_code == 403 and "<html" in refused.text


def test_unlock_and_password_reset_lift_a_lockout(client: TestClient, session: Session, officers) -> None:
    for i in range(5):
        client.post("/collection/login", data={"officer_no": "A001", "password": f"guess{i}"})
    locked = client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD})
    assert locked.status_code == 429
    assert service.unlock_officer(session=session, officer_no="A001") == 5
    assert (
        client.post("/collection/login", data={"officer_no": "A001", "password": PASSWORD}).status_code == 303
    )
    for i in range(5):
        client.post("/collection/login", data={"officer_no": "A001", "password": f"guess{i}"})
    service.reset_password(session=session, officer_no="A001", password="another-pass-1")
    session.flush()
    fresh = client.post("/collection/login", data={"officer_no": "A001", "password": "another-pass-1"})
    assert fresh.status_code == 303
    actions = session.scalars(select(AuditLog.action).where(AuditLog.object_id == "A001")).all()
    assert actions.count("collection.officer.unlocked") == 2


def test_every_server_process_signs_with_the_same_kept_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POPEX_COLLECTION_SECRET_KEY"}
    env["POPEX_COLLECTION_SECRET_FILE"] = str(tmp_path / "key")
    code = "from collection.config import session_secret; print(session_secret())"
    started = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in started}
    assert len(keys) == 1 and len(keys.pop()) >= 40
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == (tmp_path / "key").read_text().strip()
    env["POPEX_COLLECTION_SECRET_KEY"] = "set-by-the-operator"
    told = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert told.stdout.strip() == "set-by-the-operator"


def test_form_id_of_the_example_is_valid() -> None:
    status, reasons = service.check_row(
        {
            **service.EXAMPLE_ROW,
            "社区代码": "330102001001",
            "采集日期": TODAY.isoformat(),
            "信息员工号": "A001",
        },
        community_code="330102001001",
        work_date=TODAY,
    )
    assert service.EXAMPLE_ROW["身份证号"] == ZHANG and (status, reasons) == ("accepted", [])
