"""The operator pages show batches, accounting, rejection reasons and registry figures."""

import re
from datetime import date

from fastapi.testclient import TestClient
from starlette.routing import Match

from exchange import flows
from exchange.dependencies import get_factory
from popex.app import create_app
from tests.feedfiles import hj, write_feed


def test_exchange_and_registry_pages(session, factory, areas, tmp_path) -> None:
    rows = [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"), hj("H2", "", "", "男", "1980-01-01")]
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), rows))
    app = create_app()
    app.dependency_overrides[get_factory] = lambda: factory
    client = TestClient(app)
    page = client.get("/exchange").text
    assert "gaj_hj_20261101.csv" in page and "已完成" in page
    assert "姓名和证件号码均为空，无法识别是谁" in page  # the rejection reason, ranked
    assert "张伟" not in page  # aggregates only: no personal data on the operator page
    [link] = re.findall(r'href="(/monitor/batches/\d+)"', page)  # the batch's details: gate, reasons, steps
    scope = {"type": "http", "path": link, "method": "GET"}
    assert any(route.matches(scope)[0] == Match.FULL for route in app.routes)
    registry = client.get("/registry").text
    assert "<span>在册人员</span><strong>1</strong>" in registry
    landing = client.get("/").text
    for href in ("/registry", "/exchange", "/collection", "/docs", "/decision", "/monitor"):
        assert f'href="{href}"' in landing
