"""A day of each role as a browser journey in headless Chromium (issue 18), on the whole app, offline.

- the community officer on a phone (390 px): log in, a one-person form with mistakes, the day's upload
  from the downloaded template (a duplicate row, an ID Excel turned into a number, a missing address),
  correct, discard, reach 今日已清;
- the planner at desktop width (1366 px): drill from the city to a community, change the date, export;
- the operator's morning check (1366 px): who is late or missing, what the rules found before the alert
  DAG ran, the refused batch and what to do, the alert, a stuck (failed) batch.

Screenshots: artifacts/screenshots/journey_*.png (gitignored), looked at after a run.
"""

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from base.db import get_session
from base.settings import storage_settings
from collection import service as collection_service
from exchange import service as exchange_service
from popex.app import create_app
from registry.batches import fail
from schemas.canonical import BatchStep
from tests.browser import MARKS, OfflinePage, offline_page, served
from tests.collection.conftest import LI, PASSWORD, ZHANG, ZHANG_BAD
from tests.conftest import create_database, drop_database, migrate
from tests.factories import make_areas, make_person
from tests.feedfiles import write_feed

pytestmark = MARKS
WIDE = 1366


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, sessionmaker[Session]]]:
    """A committed, migrated database of the module's own (dropped afterwards)."""
    url = create_database("popex_journeys")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            migrate(conn)
        yield url, sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()
        drop_database(url)


def serve_app(factory: sessionmaker[Session]) -> Any:
    """The whole app with one committed unit of work per request on `factory`'s database."""

    def session_for_request() -> Iterator[Session]:
        with factory() as session:
            yield session
            session.commit()

    app = create_app()
    app.dependency_overrides[get_session] = session_for_request
    return served(app)


def page_at(browser: Any, base_url: str, width: int) -> OfflinePage:
    """An offline page `width` px wide (390: the phone of tests.browser)."""
    opened = offline_page(browser, base_url, "phone" if width <= 390 else "desktop", console_errors=False)
    if width > 390:
        opened.page.set_viewport_size({"width": width, "height": 900})
        opened.width = width
    return opened


def shot(opened: OfflinePage, name: str) -> None:
    """A full-page screenshot, after checking the page does not scroll sideways."""
    assert opened.fits(), f"{name} scrolls sideways at {opened.width} px"
    opened.shot(f"journey_{name}_{opened.width}")


# --- the officer ----------------------------------------------------------------------------------


def test_officer_day_on_a_phone(database, browser, tmp_path: Path) -> None:
    _, factory = database
    with factory() as session:
        codes = make_areas(session)
        collection_service.add_officer(
            session=session, officer_no="J001", name="王信息", community_code=codes[0], password=PASSWORD
        )
        make_person(session, community_code=codes[0], name="居民甲", address="清波街9号")
        session.commit()
    with serve_app(factory) as base_url:
        opened = page_at(browser, base_url, 390)
        page = opened.page
        page.goto(f"{base_url}/collection")
        page.wait_for_url("**/collection/login")
        page.fill("input[name=officer_no]", "J001")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/collection")
        assert "清波社区" in page.locator(".who").inner_text()  # the community's name, not only its code
        shot(opened, "officer_work")

        # One person with two mistakes: no name, a wrong check character. The server refuses both.
        page.click("text=新增一人（一人一单）")
        page.fill("#f-id_no", ZHANG_BAD)
        page.select_option("#f-sex", "男")
        page.fill("#f-address", "清波街1号")
        page.select_option("#f-population_type", "户籍")
        page.click("#person-form button[type=submit]")
        page.wait_for_selector("#form-errors")
        assert "必填项为空" in page.locator("#m-name").inner_text()
        assert "校验位错误" in page.locator("#m-id_no").inner_text()
        shot(opened, "officer_form_errors")
        page.fill("#f-name", "张伟")
        page.fill("#f-id_no", ZHANG)
        page.wait_for_function("document.getElementById('m-id_no').textContent === ''")
        page.click("#person-form button[type=submit]")
        page.wait_for_url("**/collection?saved=*")

        # The template, filled under its example row: a good person, the same row again, an ID typed
        # into a number cell (Excel's 3.30105E+17), a row without an address.
        with page.expect_download() as download:
            page.click("text=下载 Excel 模板")
        template = tmp_path / "template.xlsx"
        download.value.save_as(template)
        book = openpyxl.load_workbook(template)
        sheet = book.worksheets[0]
        header = [c.value for c in sheet[1]]
        good = {
            "姓名": "李娜",
            "身份证号": LI,
            "性别": "女",
            "现住址": "清波街2号",
            "人口类型": "户籍",
            "居住状态": "在住",
        }
        rows: list[dict[str, Any]] = [
            good,
            good,
            {**good, "姓名": "赵敏", "身份证号": 330102199001010020},
            {**good, "姓名": "钱七", "身份证号": "", "现住址": ""},
        ]
        for offset, values in enumerate(rows, start=3):
            for column, name in enumerate(header, start=1):
                sheet.cell(row=offset, column=column).value = values.get(name)
        upload = tmp_path / "sq_cj_today.xlsx"
        book.save(upload)
        page.set_input_files("input[type=file]", str(upload))
        page.click("form.upload button[type=submit]")
        page.wait_for_url("**/collection/submissions/*")
        results = page.locator("#result-rows").inner_text()
        assert page.locator("li.row.accepted").count() == 1 and page.locator("li.row.rejected").count() == 3
        assert "第4行" in results and "与第3行完全相同" in results  # Excel's row numbers
        assert "被 Excel 当成了数字" in results and "第6行 · 钱七" in results
        shot(opened, "officer_upload_result")

        # Correct the two rows, discard the duplicate with its reason.
        page.locator("li.row[data-row='5'] >> text=更正此行").click()
        page.wait_for_selector("#form-errors")
        page.fill("#f-id_no", "330102199001010020")
        page.click("#person-form button[type=submit]")
        page.wait_for_url("**/collection?saved=*")
        page.locator("li.row.rejected", has_text="钱七").locator("text=更正").first.click()
        page.wait_for_selector("#form-errors")
        page.fill("#f-address", "清波街6号")
        page.click("#person-form button[type=submit]")
        page.wait_for_url("**/collection?saved=*")
        returned = page.locator("li.row.rejected", has_text="李娜")
        assert returned.count() == 1
        returned.locator("summary", has_text="舍弃此行").click()
        assert returned.locator("select[name=reason]").input_value() == "重复录入"
        shot(opened, "officer_discard")
        returned.locator("button", has_text="确认舍弃").click()
        page.wait_for_url(f"{base_url}/collection")
        assert "今日已清" in page.locator("#clearance + p").inner_text()
        assert page.locator("[data-k=discarded]").inner_text() == "1"
        shot(opened, "officer_cleared")

        # Another community's row by URL: a page in words, not JSON.
        page.goto(f"{base_url}/collection/submissions/999999")
        assert "没有找到" in page.locator("h1").inner_text()
        wide = page_at(browser, base_url, WIDE)
        wide.page.context.add_cookies(page.context.cookies())
        wide.page.goto(f"{base_url}/collection")
        shot(wide, "officer_cleared")
        assert opened.outside == [] and opened.errors == []
    with factory() as session:
        audited = (
            session.execute(
                text("SELECT detail->>'reason' FROM audit_log WHERE action = 'collection.row.discarded'")
            )
            .scalars()
            .all()
        )
        assert audited == ["重复录入"]


# --- the planner ----------------------------------------------------------------------------------


def test_planner_drills_changes_the_date_and_exports(browser, tmp_path: Path) -> None:
    from decision import access, bench, service

    planner_db = create_database("popex_journeys_planner")
    engine = create_engine(planner_db)
    try:
        with engine.begin() as conn:
            migrate(conn)
        factory = sessionmaker(engine, expire_on_commit=False)
        with factory() as session:
            bench.generate_city(session, persons=3000, districts=2, streets=2, communities=3)
            session.commit()
        with factory() as session:
            service.rebuild(session=session, today=date(2026, 11, 10))
            session.commit()
        for month in (9, 10, 11):
            with factory() as session:
                batch = bench.daily_batch(session, records=300, day=date(2026, month, 10))
                service.refresh_after_batch(session=session, batch_id=batch)
                session.commit()
        with factory() as session:
            key = access.add_planner(session=session, name="规划局", actor="test")
            session.commit()
        with serve_app(factory) as base_url:
            opened = page_at(browser, base_url, WIDE)
            page = opened.page
            page.goto(f"{base_url}/decision?date=2026-11-10")  # the login first, then back to this page
            page.fill("input[name=key]", key)
            page.click("form button[type=submit]")
            page.wait_for_selector("html[data-charts='4']", timeout=20000)
            assert page.title().startswith("决策分析 · 全市")
            shot(opened, "planner_city")
            for level in range(3):  # district, street, community
                page.locator("#drill a.chip").first.click()
                page.wait_for_selector("html[data-charts='4']")
            assert page.locator(".crumbs a").count() == 3
            community = page.locator("h1").inner_text()
            shot(opened, "planner_community")
            page.fill("input[name=date]", "2026-10-10")
            page.click(".date-form button[type=submit]")
            page.wait_for_url("**date=2026-10-10**")
            page.wait_for_selector("html[data-charts='4']")
            assert (
                page.locator("h1").inner_text() == community
                and "2026-10-10" in page.locator(".lead").inner_text()
            )
            with page.expect_download() as download:
                page.locator("#table-pyramid .exports a", has_text="XLSX").click()
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            book = openpyxl.load_workbook(saved)
            assert book.worksheets[0].max_row > 3
            shot(opened, "planner_community_earlier")
            assert opened.outside == []
    finally:
        engine.dispose()
        drop_database(planner_db)


# --- the operator ---------------------------------------------------------------------------------


def test_operator_morning_check(browser, tmp_path: Path) -> None:
    from monitor import alerts
    from tests.monitor.conftest import settings
    from tests.monitor.week import GATE_DAY, NOW, build_week

    operator_db = create_database("popex_journeys_operator")
    engine = create_engine(operator_db)
    old_archive = os.environ.get("POPEX_ARCHIVE_DIR")
    os.environ["POPEX_ARCHIVE_DIR"] = str(tmp_path / "archive")
    storage_settings.cache_clear()
    try:
        with engine.begin() as conn:
            migrate(conn)
        factory = sessionmaker(engine, expire_on_commit=False)
        with factory() as session:
            make_areas(session)
            session.commit()
            week = build_week(session, factory, tmp_path / "landing")
            session.commit()
        # A file received on the last morning whose parse failed (the disk filled up): a stuck batch.
        (tmp_path / "late").mkdir()
        stuck_file = write_feed(tmp_path / "late", "gaj_ld", date(2026, 11, 8), [{"姓名": "迟到文件"}], seq=2)
        with factory() as session:
            stuck = exchange_service.receive_file(session=session, path=stuck_file).batch.id
            session.commit()
        with factory() as session:
            fail(session, stuck, step=BatchStep.PARSE, exc=OSError("No space left on device"))
            session.commit()
        with serve_app(factory) as base_url:
            opened = page_at(browser, base_url, WIDE)
            page = opened.page
            # 08:30, before the alert DAG has looked: what the rules find is shown, never "no alerts".
            page.goto(f"{base_url}/monitor?now=2026-11-09T08:30")
            page.wait_for_selector("html[data-charts='1']", timeout=15000)
            assert page.locator(".kpi[data-key=missing] strong").inner_text() == "1"
            assert page.locator(".kpi[data-key=late] strong").inner_text() == "1"
            assert "当前没有告警" not in page.locator("#alerts").inner_text()
            assert page.locator("#pending-alerts li").count() >= 3
            late = page.locator("#departments tr", has_text="民政局")
            assert late.locator("td").nth(3).inner_text() == "1"  # 迟报
            shot(opened, "operator_morning")
            page.locator("#feed-grid td[data-status=missing]").first.scroll_into_view_if_needed()

            # The refused batch: quarantined by the gate; the page says why and what to do.
            page.click(f"#batches tr[data-batch='{week[GATE_DAY.isoformat()]}'] th a")
            page.wait_for_selector("#gate")
            assert "已隔离" in page.locator(".lead").inner_text()
            assert "popex batch release" in page.locator("#todo").inner_text()
            assert page.locator("#gate tr.failed").count() >= 1
            shot(opened, "operator_quarantined_batch")

            # The alert DAG runs: the conditions are alerts, each linking to what to look at.
            with factory() as session:
                alerts.evaluate(session=session, now=NOW, settings=settings())
                session.commit()
            page.goto(f"{base_url}/monitor?now=2026-11-09T12:00")
            page.wait_for_selector("html[data-charts='1']")
            assert page.locator("#alerts li.alert").count() >= 4
            page.locator("#alerts li.alert[data-rule=gate_failed] a").click()
            page.wait_for_selector("#todo")

            # The stuck batch: failed in parsing, said in words with how to resume it.
            page.goto(f"{base_url}/monitor/batches/{stuck}?now=2026-11-09T12:00")
            assert "失败" in page.locator(".lead").inner_text()
            assert "从失败的步骤继续" in page.locator("#todo").inner_text()
            shot(opened, "operator_stuck_batch")
            phone = page_at(browser, base_url, 390)
            phone.page.goto(f"{base_url}/monitor?now=2026-11-09T12:00")
            phone.page.wait_for_selector("html[data-charts='1']")
            shot(phone, "operator_dashboard")
            assert opened.outside == [] and phone.outside == []
    finally:
        if old_archive is None:
            os.environ.pop("POPEX_ARCHIVE_DIR", None)
        else:
            os.environ["POPEX_ARCHIVE_DIR"] = old_archive
        storage_settings.cache_clear()
        engine.dispose()
        drop_database(operator_db)
