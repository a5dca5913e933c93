"""The dashboard in headless Chromium, desktop and phone width: charts drawn offline, drill-down works.

Screenshots are kept under artifacts/screenshots/ (gitignored)."""

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from base.db import get_session
from decision import access, bench, service
from popex.app import create_app
from registry.migrate import upgrade
from registry.models import Area
from tests.browser import MARKS, SHOTS, WIDTHS, offline_page, served
from tests.conftest import create_database, drop_database

AS_OF = date(2026, 11, 10)  # the last daily batch's date: the data end there
EMPTY_COMMUNITY = "330101001099"
SUPPRESSED_BARS = (
    "echarts.getInstanceByDom(document.getElementById('chart-pyramid')).getOption().series"
    ".filter(s => s.name === '已抑制').reduce((n, s) => n + s.data.filter(d => d).length, 0)"
)

pytestmark = MARKS


@pytest.fixture(scope="module")
def served_city() -> Iterator[tuple[str, str]]:
    """The app on a free local port, on a committed database with a small generated city; its URL and a
    planner's API key."""
    url = create_database("popex_browser")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
            # A known secret: the same perturbed pages every run (a fresh database draws its own, and
            # whether a street's pyramid had a suppressed cell to draw then varied from run to run: one clean-clone CI run failed on it).
            conn.execute(text("UPDATE decision.publication SET cell_key_secret = 'browser-test'"))
        with Session(engine) as session:
            session.execute(text("SELECT setseed(0.42)"))  # the same city every run (its SQL draws random())
            bench.generate_city(session, persons=6000, districts=3, streets=3, communities=4)
            session.commit()
        with Session(engine) as session:
            service.rebuild(session=session, today=AS_OF)
            session.commit()
        for month in range(5, 12):
            with Session(engine) as session:
                session.execute(text("SELECT setseed(:s)"), {"s": month / 100})
                batch = bench.daily_batch(session, records=400, day=date(2026, month, 10))
                service.refresh_after_batch(session=session, batch_id=batch)
                session.commit()
        with Session(engine) as session:  # after the batches, which move people into every community
            session.add(
                Area(code=EMPTY_COMMUNITY, name="新建社区", level="community", parent_code="330101001")
            )
            key = access.add_planner(session=session, name="规划局", actor="test")
            session.commit()

        def session_for_request() -> Iterator[Session]:
            with Session(engine) as session:
                yield session

        app = create_app()
        app.dependency_overrides[get_session] = session_for_request
        with served(app) as address:
            yield address, key
    finally:
        engine.dispose()
        drop_database(url)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_dashboard_draws_charts_offline_and_drills_down(
    served_city: tuple[str, str], browser, width: str
) -> None:
    base_url, key = served_city
    opened = offline_page(browser, base_url, width)
    page, w = opened.page, opened.width

    # The statistics are for planners: the page sends a visitor to the login, which leads back to it.
    page.goto(f"{base_url}/decision?date={AS_OF}")
    assert page.url.startswith(f"{base_url}/decision/login?next=")
    page.screenshot(path=str(SHOTS / f"decision_login_{width}.png"))
    page.fill("input[name=key]", key)
    page.click("form button[type=submit]")
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
    if width == "desktop":  # also at a common laptop width
        page.set_viewport_size({"width": 1366, "height": 768})
        page.screenshot(path=str(SHOTS / "decision_city_1366.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1367
        page.set_viewport_size({"width": w, "height": 900})

    page.locator("#drill a.chip").first.click()
    page.wait_for_selector("html[data-charts='4']")
    assert "第1区人口统计" in page.locator("h1").inner_text()
    page.locator("#table-sub_areas tbody th a").first.click()
    page.wait_for_selector("html[data-charts='4']")
    # A street's pyramid draws its suppressed cells as grey bars marked "*", named in the legend.
    suppressed_bars = page.evaluate(SUPPRESSED_BARS)
    shown_stars = page.locator("#table-pyramid tbody td.sup").count()
    assert 0 < suppressed_bars <= shown_stars  # the table also has the 年龄不详 row
    page.locator("#chart-pyramid").screenshot(path=str(SHOTS / f"decision_street_{width}_pyramid.png"))
    page.locator("#drill a.chip").first.click()
    page.wait_for_selector("html[data-charts='4']")
    assert page.locator(".crumbs a").count() == 3  # 全市 › 区 › 街道 › (社区)
    assert page.evaluate("document.documentElement.scrollWidth") <= w + 1
    page.screenshot(path=str(SHOTS / f"decision_community_{width}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"decision_community_{width}_top.png"))

    with page.expect_download() as download:
        page.locator("#table-pyramid .exports a", has_text="XLSX").click()
    assert download.value.suggested_filename.endswith(".xlsx")

    # A small community's pyramid: suppressed cells drawn as marked bars, or (every cell suppressed, as in
    # most communities of this city) the chart says so instead of drawing nothing.
    if page.locator("#chart-pyramid.chart-empty").count():
        assert "按小数保护规则不公开" in page.locator("#chart-pyramid").inner_text()
    else:
        assert page.evaluate(SUPPRESSED_BARS) > 0
    assert "数据截至" in page.locator("#data-until").inner_text()

    # A community without residents says why its charts are empty, instead of blank boxes: as for any small
    # area, its counts are suppressed (a true 0 too: a suppressed cell never tells that someone is there).
    page.goto(f"{base_url}/decision?date={AS_OF}&area={EMPTY_COMMUNITY}")
    page.wait_for_selector("html[data-charts='4']")
    page.screenshot(path=str(SHOTS / f"decision_empty_community_{width}.png"), full_page=True)
    empty = page.eval_on_selector_all(".chart-empty", "els => els.map(e => e.id)")
    assert empty == ["chart-pyramid", "chart-trend", "chart-flows", "chart-origin"]
    assert "按小数保护规则不公开" in page.locator("#chart-pyramid").inner_text()
    assert "按小数保护规则不公开" in page.locator("#chart-flows").inner_text()
    assert "没有常住人口" not in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / f"decision_empty_community_{width}.png"), full_page=True)

    # A date after the data is refused in words.
    page.goto(f"{base_url}/decision?date=2026-11-11")
    assert "晚于数据截至日 2026-11-10" in page.locator("p.error").inner_text()
    assert (
        opened.errors.pop()
        == "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    )

    page.goto(f"{base_url}/decision/lineage?date={AS_OF}&area=330101")
    assert "公安局" in page.locator("table.stats").inner_text()
    page.screenshot(path=str(SHOTS / f"decision_lineage_{width}.png"), full_page=True)

    # Logging out is the button of a page (a form with its CSRF token), not a link another site could open.
    page.click("header nav form.logout button")
    page.wait_for_url(f"{base_url}/decision/login")
    page.goto(f"{base_url}/decision?date={AS_OF}")
    assert page.url.startswith(f"{base_url}/decision/login?next=")
    assert opened.outside == [] and opened.errors == []
    page.close()
