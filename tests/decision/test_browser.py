"""The dashboard in headless Chromium, desktop and phone width: charts drawn offline, drill-down works.

Screenshots are kept under artifacts/screenshots/ (gitignored)."""

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from base.db import get_session
from decision import bench, service
from popex.app import create_app
from registry.migrate import upgrade
from tests.browser import MARKS, SHOTS, WIDTHS, offline_page, served
from tests.conftest import create_database, drop_database

AS_OF = date(2026, 11, 15)

pytestmark = MARKS


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The app on a free local port, on a committed database with a small generated city."""
    url = create_database("popex_browser")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
        with Session(engine) as session:
            bench.generate_city(session, persons=6000, districts=3, streets=3, communities=4)
            session.commit()
        with Session(engine) as session:
            service.rebuild(session=session, today=AS_OF)
            session.commit()
        for month in range(5, 12):
            with Session(engine) as session:
                batch = bench.daily_batch(session, records=400, day=date(2026, month, 10))
                service.refresh_after_batch(session=session, batch_id=batch)
                session.commit()

        def session_for_request() -> Iterator[Session]:
            with Session(engine) as session:
                yield session

        app = create_app()
        app.dependency_overrides[get_session] = session_for_request
        with served(app) as address:
            yield address
    finally:
        engine.dispose()
        drop_database(url)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_dashboard_draws_charts_offline_and_drills_down(base_url: str, browser, width: str) -> None:
    opened = offline_page(browser, base_url, width)
    page, w = opened.page, opened.width

    page.goto(f"{base_url}/decision?date={AS_OF}")
    page.wait_for_selector("html[data-charts='4']", timeout=15000)
    assert page.title().startswith("决策分析 · 全市")
    assert page.locator("canvas").count() >= 4
    assert page.locator(".kpi[data-key=population] strong").inner_text().isdigit()
    assert page.locator("table.stats").count() == 10
    assert page.evaluate("document.documentElement.scrollWidth") <= w + 1, "the page scrolls sideways"
    page.screenshot(path=str(SHOTS / f"decision_city_{width}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"decision_city_{width}_top.png"))
    page.locator(".charts").screenshot(path=str(SHOTS / f"decision_city_{width}_charts.png"))
    page.locator("#table-pyramid").screenshot(path=str(SHOTS / f"decision_city_{width}_pyramid_table.png"))

    page.locator("#drill a.chip").first.click()
    page.wait_for_selector("html[data-charts='4']")
    assert "第1区人口统计" in page.locator("h1").inner_text()
    page.locator("#table-sub_areas tbody th a").first.click()
    page.wait_for_selector("html[data-charts='4']")
    page.locator("#drill a.chip").first.click()
    page.wait_for_selector("html[data-charts='4']")
    assert page.locator(".crumbs a").count() == 3  # 全市 › 区 › 街道 › (社区)
    assert page.evaluate("document.documentElement.scrollWidth") <= w + 1
    page.screenshot(path=str(SHOTS / f"decision_community_{width}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"decision_community_{width}_top.png"))

    with page.expect_download() as download:
        page.locator("#table-pyramid .exports a", has_text="XLSX").click()
    assert download.value.suggested_filename.endswith(".xlsx")

    page.goto(f"{base_url}/decision/lineage?date={AS_OF}&area=330101")
    assert "公安局" in page.locator("table.stats").inner_text()
    page.screenshot(path=str(SHOTS / f"decision_lineage_{width}.png"), full_page=True)
    assert opened.outside == [] and opened.errors == []
    page.close()
