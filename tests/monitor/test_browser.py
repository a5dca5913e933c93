"""The monitor dashboard in headless Chromium at desktop and phone width, offline, on the synthetic week.

Screenshots are kept under artifacts/screenshots/ (gitignored)."""

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from base.db import get_session
from base.settings import storage_settings
from monitor import alerts
from popex.app import create_app
from registry.migrate import upgrade
from tests.browser import MARKS, SHOTS, WIDTHS, offline_page, served
from tests.conftest import create_database, drop_database
from tests.factories import make_areas
from tests.monitor.conftest import settings
from tests.monitor.week import GATE_DAY, MISSING, NOW, build_week

pytestmark = MARKS


@pytest.fixture(scope="module")
def week_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The app on a free local port over a committed database holding the week and its alerts."""
    url = create_database("popex_monitor_browser")
    engine = create_engine(url)
    folder = tmp_path_factory.mktemp("monitor_week")
    old_archive = os.environ.get("POPEX_ARCHIVE_DIR")
    os.environ["POPEX_ARCHIVE_DIR"] = str(folder / "archive")
    storage_settings.cache_clear()
    try:
        with engine.begin() as conn:
            upgrade(conn)
        factory = sessionmaker(engine, expire_on_commit=False)
        with Session(engine) as session:
            make_areas(session)
            session.commit()
            week = build_week(session, factory, folder / "landing")
            alerts.evaluate(session=session, now=NOW, settings=settings())
            session.commit()

        def session_for_request() -> Iterator[Session]:
            with Session(engine) as session:
                yield session

        app = create_app()
        app.dependency_overrides[get_session] = session_for_request
        with served(app) as address:
            yield address, week
    finally:
        if old_archive is None:
            os.environ.pop("POPEX_ARCHIVE_DIR", None)
        else:
            os.environ["POPEX_ARCHIVE_DIR"] = old_archive
        storage_settings.cache_clear()
        engine.dispose()
        drop_database(url)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_dashboard_shows_the_week_offline(week_served, browser, width: str) -> None:
    base_url, week = week_served
    opened = offline_page(browser, base_url, width)
    page, w = opened.page, opened.width

    page.goto(f"{base_url}/monitor?now=2026-11-09T12:00")
    page.wait_for_selector("html[data-charts='1']", timeout=15000)
    assert page.title().startswith("监控管理")
    assert page.locator("#chart-timeliness canvas").count() >= 1
    assert page.locator(".kpi[data-key=missing] strong").inner_text() == "1"
    assert page.locator(".kpi[data-key=late] strong").inner_text() == "1"
    assert sorted(page.locator("#alerts li.alert").evaluate_all("els => els.map(e => e.dataset.rule)")) == [
        "feed_missing",
        "gate_failed",
        "reject_rate",
        "review_aged",
    ]
    cell = page.locator(f"#feed-{MISSING[0]} td[data-day='{MISSING[1]}']")
    assert cell.inner_text() == "缺报"
    assert page.locator("#feed-grid td[data-status=late]").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= w + 1, "the page scrolls sideways"
    page.screenshot(path=str(SHOTS / f"monitor_dashboard_{width}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"monitor_dashboard_{width}_top.png"))

    page.locator("#alerts li[data-rule=gate_failed] a").click()
    page.wait_for_selector("#gate")
    assert f"批次 {week[GATE_DAY.isoformat()]}" in page.locator("h1").inner_text()
    assert "未通过" in page.locator("#gate").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= w + 1
    page.screenshot(path=str(SHOTS / f"monitor_batch_{width}.png"), full_page=True)

    page.goto(f"{base_url}/monitor/scorecard?period=2026-11&now=2026-11-09T12:00")
    assert "民政局" in page.locator("#score-departments").inner_text()
    page.screenshot(path=str(SHOTS / f"monitor_scorecard_{width}.png"), full_page=True)
    assert opened.outside == [] and opened.errors == []
    page.close()
