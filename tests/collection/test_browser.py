"""The officer's day in headless Chromium at desktop and phone width: log in, a form with a bad ID
number corrected, a spreadsheet with bad rows. Screenshots are kept under artifacts/screenshots/."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from base.db import get_session
from collection import service
from registry.migrate import upgrade
from tests.browser import MARKS, WIDTHS, offline_page, served
from tests.collection.conftest import LI, PASSWORD, ZHANG, ZHANG_BAD, collection_app
from tests.collection.test_pages import GOOD, sheet
from tests.conftest import create_database, drop_database
from tests.factories import make_areas, make_person

pytestmark = MARKS


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The collection pages on a free local port, on a committed database with two officers."""
    url = create_database("popex_cj_browser")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
        with Session(engine) as session:
            codes = make_areas(session)
            for no, code in (("A001", codes[0]), ("A002", codes[0])):
                service.add_officer(
                    session=session, officer_no=no, name="张信息", community_code=code, password=PASSWORD
                )
            for i in range(3):
                make_person(session, community_code=codes[0], name=f"居民{i}", address=f"清波街{i}号")
            session.commit()

        def session_for_request() -> Iterator[Session]:
            with Session(engine) as session:
                yield session
                session.commit()

        app = collection_app()
        app.dependency_overrides[get_session] = session_for_request
        with served(app) as address:
            yield address
    finally:
        engine.dispose()
        drop_database(url)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_officer_day(base_url: str, browser, width: str, tmp_path: Path) -> None:
    opened = offline_page(browser, base_url, width, console_errors=False)  # a refused submit logs one
    page = opened.page

    def shot(name: str) -> None:
        assert opened.fits(), f"{name} scrolls sideways"
        opened.shot(f"collection_{name}_{width}")

    page.goto(f"{base_url}/collection")
    page.wait_for_url("**/collection/login")
    shot("login")
    page.fill("input[name=officer_no]", "A001" if width == "desktop" else "A002")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/collection")
    assert "今日工作" in page.locator("h1").inner_text()
    assert page.locator("a[href^='/collection/form?person=']").count() == 3
    shot("work")

    # The form: a wrong check character is reported while typing, then on submit; fixed, it is saved.
    page.click("text=新增一人（一人一单）")
    page.fill("#f-name", "张伟")
    page.select_option("#f-sex", "男")
    page.fill("#f-address", "清波街1号")
    page.select_option("#f-population_type", "户籍")
    page.fill("#f-id_no", ZHANG_BAD)
    page.wait_for_function("document.getElementById('m-id_no').textContent.includes('校验位')")
    shot("form_typing")
    page.click("#person-form button[type=submit]")
    page.wait_for_selector("#form-errors")
    assert "身份证号码校验位错误" in page.locator("#m-id_no").inner_text()
    shot("form_error")
    page.fill("#f-id_no", ZHANG)
    page.wait_for_function("document.getElementById('m-id_no').textContent === ''")
    page.click("#person-form button[type=submit]")
    page.wait_for_url("**/collection?saved=*")
    assert "已保存" in page.locator("[role=status]").inner_text()

    # The spreadsheet: one good row, two bad ones, reported per row and field.
    upload = tmp_path / "sq_cj_day.xlsx"
    upload.write_bytes(
        sheet(
            [
                GOOD | {"身份证号": LI},
                {**GOOD, "姓名": "王五", "身份证号": ZHANG_BAD},
                {**GOOD, "姓名": "赵六", "身份证号": "", "性别": "x"},
            ]
        )
    )
    page.set_input_files("input[type=file]", str(upload))
    page.click("form.upload button[type=submit]")
    page.wait_for_url("**/collection/submissions/*")
    assert page.locator("li.row.accepted").count() == 1
    assert page.locator("li.row.rejected").count() == 2
    text = page.locator("#result-rows").inner_text()
    assert "第2行" in text and "身份证号码校验位错误" in text and "性别应填写男、女或代码1、2" in text
    shot("upload_result")
    page.click("li.row.rejected >> nth=0 >> text=更正此行")
    page.wait_for_selector("#form-errors")
    assert page.locator("#f-name").input_value() == "王五"
    page.goto(f"{base_url}/collection")
    shot("work_after")
    assert opened.outside == [] and opened.errors == []
    page.close()
