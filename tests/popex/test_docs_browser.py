"""The API documentation (/docs) renders in headless Chromium with nothing from outside the
server: the platform runs on networks that reach no CDN, where FastAPI's default pages are blank."""

from collections.abc import Iterator

import httpx
import pytest

from popex.app import create_app
from tests.browser import MARKS, offline_page, served

pytestmark = MARKS


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with served(create_app()) as base:
        yield base


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_swagger_ui_renders_every_platforms_api_offline(browser, address: str, width: str) -> None:
    opened = offline_page(browser, address, width)
    opened.page.goto(f"{address}/docs")
    opened.page.wait_for_selector(".opblock-summary", timeout=20_000)
    text = opened.page.inner_text("body")
    for shown in (
        "信息共享",
        "按证件号码查询",
        "批量核验（每次最多 1000 条）",
        "决策分析",
        "部门数据交换",
        "推送数据文件",
    ):
        assert shown in text
    assert opened.page.locator(".opblock").count() >= 15
    opened.shot(f"docs-{width}", full_page=False)
    assert opened.outside == [] and opened.errors == []


def test_no_redoc_page_that_would_reach_outside(address: str) -> None:
    assert httpx.get(f"{address}/redoc").status_code == 404  # its page fetches its logo from redoc.ly
