"""The dashboard in headless Chromium, desktop and phone width: charts drawn offline, drill-down works.

Screenshots are kept under artifacts/screenshots/ (gitignored)."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from decision import bench, service
from decision.dependencies import get_session
from popex.app import create_app
from registry.migrate import upgrade
from tests.conftest import create_database, drop_database

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
AS_OF = date(2026, 11, 15)
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"
    ),
]


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
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(timeout=10)
    finally:
        engine.dispose()
        drop_database(url)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_dashboard_draws_charts_offline_and_drills_down(base_url: str, browser, width: str) -> None:
    w, h = WIDTHS[width]
    page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1)
    outside: list[str] = []
    errors: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    SHOTS.mkdir(parents=True, exist_ok=True)

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
    assert outside == [] and errors == []
    page.close()
