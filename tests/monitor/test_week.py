"""The issue's test: a synthetic week with a missing feed, a late feed, a failed gate and a spike of
rejects shows each on the dashboard and raises exactly the right alerts (evaluated as of given moments)."""

import re
from datetime import datetime

from sqlalchemy import select

from monitor import alerts, timeliness
from monitor.models import MonitorAlert
from schemas.canonical import BatchState, Channel, ColumnKind, DagTask
from tests.monitor.conftest import settings
from tests.monitor.week import GATE_DAY, LATE, LATE_AT, MISSING, NOW, REVIEW_DAY, SPIKE_DAY, WEEK


def open_keys(session) -> set[str]:
    return set(session.scalars(select(MonitorAlert.key).where(MonitorAlert.state == "open")))


def test_week_raises_exactly_the_right_alerts(session, week, webhook) -> None:
    url, receiver = webhook
    conf = settings(webhook_url=url, base_url="https://popex.test")
    expected = {
        f"feed_missing:{MISSING[0]}:{MISSING[1]}",
        f"reject_rate:{week[SPIKE_DAY.isoformat()]}",
        f"gate_failed:{week[GATE_DAY.isoformat()]}",
        f"review_aged:{week[REVIEW_DAY.isoformat()]}",
    }
    # While mzj_hy's file is overdue (after its 09:00 deadline, before it came at 15:30), it is missing.
    early = datetime(2026, 11, 4, 10, 0)
    first = alerts.evaluate(session=session, now=early, settings=conf)
    assert {a.key for a in first.raised} == {f"feed_missing:{LATE[0]}:{LATE[1]}"}
    assert alerts.notify(session=session, settings=conf) == 1
    assert receiver.bodies[0]["event"] == "raised" and receiver.bodies[0]["rule"] == "feed_missing"
    assert receiver.bodies[0]["link"] == "https://popex.test/monitor?now=2026-11-04T10:00#feed-mzj_hy"

    # Once it arrived, the alert resolves; the week's troubles are raised, each once.
    done = alerts.evaluate(session=session, now=NOW, settings=conf)
    assert {a.key for a in done.resolved} == {f"feed_missing:{LATE[0]}:{LATE[1]}"}
    assert {a.key for a in done.raised} == expected
    assert open_keys(session) == expected
    by_rule = {a.rule: a for a in done.raised}
    assert by_rule["gate_failed"].link == f"/monitor/batches/{week[GATE_DAY.isoformat()]}"
    assert by_rule["reject_rate"].detail == {"rows_received": 9, "rows_rejected": 4, "rate": 0.4444}
    assert by_rule["feed_missing"].detail == {"deadline": "2026-11-05T09:00:00"}
    assert alerts.notify(session=session, settings=conf) == 5
    assert sorted((b["event"], b["rule"]) for b in receiver.bodies[1:]) == [
        ("raised", "feed_missing"),
        ("raised", "gate_failed"),
        ("raised", "reject_rate"),
        ("raised", "review_aged"),
        ("resolved", "feed_missing"),
    ]

    # Evaluated again: nothing new, nothing delivered twice (deduplicated).
    again = alerts.evaluate(session=session, now=NOW.replace(hour=13), settings=conf)
    assert again.raised == [] and again.resolved == []
    assert {a.key for a in again.still_open} == expected
    assert alerts.notify(session=session, settings=conf) == 0
    assert len(receiver.bodies) == 6
    assert (
        session.scalar(select(MonitorAlert.notified_state).where(MonitorAlert.rule == "gate_failed"))
        == "open"
    )


def test_webhook_failure_is_retried_next_run(session, week, webhook) -> None:
    url, receiver = webhook
    conf = settings(webhook_url=url)
    alerts.evaluate(session=session, now=NOW, settings=conf)
    receiver.fail = True
    assert alerts.notify(session=session, settings=conf) == 0
    errors = set(session.scalars(select(MonitorAlert.notify_error)))
    assert len(errors) == 1 and next(iter(errors)).startswith("HTTPStatusError")
    receiver.fail = False
    assert alerts.notify(session=session, settings=conf) == 4
    assert len(receiver.bodies) == 4


def test_timeliness_of_the_week(session, week) -> None:
    days = timeliness.feed_days(session=session, start=WEEK[0], end=WEEK[-1], now=NOW)
    status = {(fd.source, fd.day): fd for fd in days}
    assert len(days) == 8 * 7
    assert status[MISSING].status == "missing"
    assert status[LATE].status == "late" and status[LATE].first_received_at == LATE_AT
    assert status[LATE].late_minutes == 6 * 60 + 30
    # Header-only files: from the second day on each is the same bytes again, but a quiet day's own
    # file (no rows, a new day's name): received on time, not a duplicate delivery.
    assert status[("rsj_cb", WEEK[3])].status == "on_time" and status[("rsj_cb", WEEK[3])].duplicates == 0
    counts = {s: sum(1 for fd in days if fd.status == s) for s in ("on_time", "late", "missing")}
    assert counts == {"on_time": 54, "late": 1, "missing": 1}
    depts = {d.code: d.total for d in timeliness.by_department(days)}
    assert (depts["mzj"].expected, depts["mzj"].on_time, depts["mzj"].late) == (7, 6, 1)
    assert (depts["wjw"].expected, depts["wjw"].received, depts["wjw"].missing) == (14, 13, 1)


def test_dashboard_shows_the_week(session, week, client) -> None:
    alerts.evaluate(session=session, now=NOW, settings=settings())
    page = client.get("/monitor", params={"now": "2026-11-09T12:00"})
    assert page.status_code == 200
    html = page.text
    gate_batch, spike_batch = week[GATE_DAY.isoformat()], week[SPIKE_DAY.isoformat()]
    # the missing and the late feed in the grid
    assert f'<tr id="feed-{MISSING[0]}">' in html
    assert f'data-day="{MISSING[1]}" data-status="missing"' in html
    assert f'data-day="{LATE[1]}" data-status="late"' in html and "11-04 15:30" in html
    assert '<li class="kpi" data-key="missing"><span>缺报</span><strong>1</strong>' in html
    assert '<li class="kpi" data-key="late"><span>迟报</span><strong>1</strong>' in html
    assert '<li class="kpi" data-key="alerts"><span>未解除告警</span><strong>4</strong>' in html
    # the failed gate and the spike of rejects in the batch table, and as alerts linking to them
    assert f'<tr data-batch="{gate_batch}" class="quarantined">' in html
    assert "行数 40，按本数据源近" in html and "应在 0–25 行之间" in html  # the gate's figure and bounds
    assert (
        f'<a href="/monitor/batches/{gate_batch}">批次 {gate_batch}（公安局「户籍人口变动」2026-11-06）未通过质量闸门，已隔离</a>'
        in html
    )
    assert f"批次 {spike_batch}（公安局「户籍人口变动」2026-11-05）拒收 4/9 行（44%），超过 30%" in html
    # rejection reasons ranked with their sentences
    assert "<strong>3</strong> 行 · 与第1行完全相同" not in html  # grouped by reason code, not merged
    assert html.index("DUPLICATE_ROW:1") > 0 and "无法识别是谁" in html
    assert 'id="clearance-grid"' in html and 'data-community="330102001001"' in html
    assert "未配置 Airflow（POPEX_AIRFLOW_API_URL）" in html or 'id="dag-runs"' in html
    # every batch by its department and feed, its state in words from the one vocabulary
    table = html[html.index('id="batches"') : html.index('id="reasons"')]
    rows = re.findall(
        r'<tr data-batch="\d+" class="(\w+)">.*?<td class="source">(.*?)</td>.*?<td class="state">(.*?)</td>',
        table,
    )
    assert len(rows) == table.count("<tr data-batch=") > 1
    assert all(shown == BatchState(state).label for state, _, shown in rows)
    assert {source for _, source, _ in rows} >= {
        "公安局<small>户籍人口变动</small>",
        "卫生健康委员会<small>出生医学证明</small>",
    }
    assert not re.search(r">[^<]*\b(gaj_hj|wjw_sw|quarantined|published|completed)\b[^<]*<", table)
    # the reasons say where they came from
    reasons = html[html.index('id="reasons"') : html.index('id="review"')]
    assert "来自 公安局（1 个批次）" in reasons

    batch = client.get(f"/monitor/batches/{gate_batch}", params={"now": "2026-11-09T12:00"}).text
    assert f"<h1>批次 {gate_batch} · 公安局 户籍人口变动 2026-11-06</h1>" in batch
    gate = batch[batch.index('id="gate"') : batch.index('id="reasons"')]
    columns = re.findall(r"<tr[^>]*><td>[^<]*</td><td>([^<]*)</td>", gate)
    assert ColumnKind.ID_NO.label in columns and "姓名" in columns  # a column kind in words, a column by name
    assert not {kind.value for kind in ColumnKind} & set(columns)
    deliveries = batch[batch.index('id="deliveries"') :]
    assert re.findall(r'<tr data-channel="(\w+)">(?:<td>[^<]*</td>){3}<td>([^<]*)</td>', deliveries) == [
        ("cli", Channel.CLI.label)
    ]
    steps = batch[batch.index('id="steps"') : batch.index('id="deliveries"')]
    assert re.findall(r"<th>([^<]*)</th>", steps) == [DagTask.PARSE.label, DagTask.GATE.label]
    assert "未通过" in batch and "0–25 行" in batch and "已隔离" in batch
    assert batch.index('<tr class="failed">') < batch.index("<td>通过</td>")  # the failure heads the table
    spike = client.get(f"/monitor/batches/{spike_batch}", params={"now": "2026-11-09T12:00"}).text
    assert '<li class="kpi" data-key="rejected"><span>拒收</span><strong>4</strong>' in spike
    assert "按证件号关联" in spike or "新建人员" in spike
    assert client.get("/monitor/batches/999999").status_code == 404


def test_metrics(session, week, client) -> None:
    alerts.evaluate(session=session, now=NOW, settings=settings())
    body = client.get("/metrics", params={"now": "2026-11-09T12:00"}).text
    assert 'popex_feed_days{department="wjw",source="wjw_sw",status="missing"} 1.0' in body
    assert 'popex_feed_days{department="mzj",source="mzj_hy",status="late"} 1.0' in body
    assert 'popex_batches{state="quarantined"} 1.0' in body
    assert 'popex_alerts_open{rule="gate_failed"} 1.0' in body
    assert 'popex_alerts_open{rule="api_error_rate"} 0.0' in body
    assert "popex_review_open 1.0" in body
