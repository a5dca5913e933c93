"""The operator pages show batches, accounting, rejection reasons and registry figures."""

import re
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Match

from exchange import flows
from exchange.dependencies import get_factory
from popex.app import create_app
from registry.models import Batch
from schemas.canonical import BatchState, BatchStep
from tests.feedfiles import hj, write_feed


def test_exchange_and_registry_pages(session, factory, areas, tmp_path) -> None:
    rows = [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"), hj("H2", "", "", "男", "1980-01-01")]
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), rows))
    app = create_app()
    app.dependency_overrides[get_factory] = lambda: factory
    client = TestClient(app)
    page = client.get("/exchange").text
    batch = session.scalars(select(Batch).where(Batch.file_name == "gaj_hj_20261101.csv")).one()
    assert "gaj_hj_20261101.csv" in page
    [state_cell] = re.findall(r'data-state="[a-z]+">\s*([^<]*)', page)
    assert state_cell.strip() == BatchState(batch.state).label  # the state in words, not its code
    assert "公安局" in page and "户籍人口变动" in page  # the department and feed by name
    visible = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"\b(gaj|gaj_hj|received|parsed|gated|published|completed)\b", visible)
    # the rejection reason, ranked, with the batch and department it came from
    [reasons] = re.findall(r'<table id="reasons">.*?</table>', page, re.S)
    assert "姓名和证件号码均为空，无法识别是谁" in reasons
    assert (
        f'href="/monitor/batches/{batch.id}">批次 {batch.id}</a> 公安局 · 户籍人口变动 11-01：1 行' in reasons
    )
    assert "张伟" not in page  # aggregates only: no personal data on the operator page
    links = set(
        re.findall(r'href="(/monitor/batches/\d+)"', page)
    )  # the batch's details: gate, reasons, steps
    assert links == {f"/monitor/batches/{batch.id}"}
    scope = {"type": "http", "path": links.pop(), "method": "GET"}
    assert any(route.matches(scope)[0] == Match.FULL for route in app.routes)
    registry = client.get("/registry").text
    assert "<span>在册人员</span><strong>1</strong>" in registry
    landing = client.get("/").text
    for href in ("/registry", "/exchange", "/collection", "/docs", "/decision", "/monitor"):
        assert f'href="{href}"' in landing


def test_a_failed_batch_shows_its_step_and_error(session, factory, areas, tmp_path, monkeypatch) -> None:
    from base.db import get_session

    def lost(**_: object) -> None:
        raise RuntimeError("merge went wrong")

    monkeypatch.setitem(flows.STEPS, BatchStep.MERGE, lost)
    path = write_feed(
        tmp_path, "gaj_hj", date(2026, 11, 1), [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01")]
    )
    result = flows.ingest_file(factory, path)
    assert result.state == "failed"
    app = create_app()
    app.dependency_overrides[get_factory] = lambda: factory
    app.dependency_overrides[get_session] = lambda: session
    client = TestClient(app)
    said = "失败（步骤「合并」）"
    error = "[RuntimeError] 步骤「合并」失败：程序错误，详见服务日志；重新运行即从该步骤继续"
    [state_cell] = re.findall(r'data-state="failed">\s*(.*?)</td>', client.get("/exchange").text, re.S)
    assert state_cell.startswith(said) and error in state_cell
    batch = client.get(f"/monitor/batches/{result.batch_id}").text
    assert f'状态 <strong class="state">{said}</strong>；错误：{error}' in batch
    monitor = client.get("/monitor", params={"now": "2026-11-02T12:00"}).text
    assert (
        f'<tr data-batch="{result.batch_id}" class="failed">' in monitor
        and f'<td class="state">{said}</td>' in monitor
    )
