"""The landing page, the one database's figures and the exchange's batches in headless Chromium at
desktop and phone width, offline (nothing fetched from outside the server), on a received file.

Screenshots are kept under artifacts/screenshots/ (gitignored)."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from base.settings import storage_settings
from exchange import flows
from exchange.dependencies import get_factory
from popex.app import create_app
from schemas.canonical import BatchState
from tests.browser import MARKS, offline_page, served
from tests.conftest import migrated_database
from tests.factories import make_areas
from tests.feedfiles import hj, write_feed

pytestmark = MARKS


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a free local port over a committed database that received one file."""
    folder: Path = tmp_path_factory.mktemp("exchange_browser")
    with pytest.MonkeyPatch.context() as patch, migrated_database("popex_exchange_browser") as url:
        patch.setenv("POPEX_ARCHIVE_DIR", str(folder / "archive"))
        storage_settings.cache_clear()
        engine = create_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        with Session(engine) as session:
            make_areas(session)
            session.commit()
        rows = [
            hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"),
            hj("H2", "", "", "男", "1980-01-01"),  # rejected: nobody to resolve it to
        ]
        flows.ingest_file(factory, write_feed(folder, "gaj_hj", date(2026, 11, 1), rows))
        app = create_app()
        app.dependency_overrides[get_factory] = lambda: factory
        try:
            with served(app) as base:
                yield base
        finally:
            engine.dispose()
    storage_settings.cache_clear()


PAGES = {
    "landing": ("/", ["统一人口库", "部门数据交换", "社区信息采集", "信息共享服务", "决策分析", "监控管理"]),
    "registry": ("/registry", ["在册人员", "户籍", "源记录"]),
    "exchange": ("/exchange", ["gaj_hj_20261101.csv", "公安局", "姓名和证件号码均为空，无法识别是谁"]),
}


@pytest.mark.parametrize("width", ["desktop", "phone"])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_offline_and_fits_the_width(browser, address: str, name: str, width: str) -> None:
    path, shown = PAGES[name]
    opened = offline_page(browser, address, width)
    opened.page.goto(f"{address}{path}")
    text = opened.page.inner_text("body")
    for words in shown:
        assert words in text
    for cell in opened.page.query_selector_all("[data-state]"):  # a batch's state in words
        assert cell.inner_text().strip() == BatchState(cell.get_attribute("data-state")).label
    assert "张伟" not in text  # aggregates only
    opened.shot(f"{name}-{width}")
    assert opened.fits(), f"{path} scrolls sideways at {width} width"
    assert opened.outside == [] and opened.errors == []
