"""API usage on the dashboard and the API error-rate alert, from audit records as the sharing service
writes them (its own INSERT), through the hourly roll-up."""

import re
from datetime import timedelta

from sqlalchemy import select, text

from monitor import alerts, health
from monitor.models import MonitorAlert
from schemas.canonical import AuditCategory
from sharing_api.audit import AccessEntry, append_access
from tests.monitor.conftest import settings


def _entries(client: str, outcome: str, n: int) -> list[AccessEntry]:
    return [
        AccessEntry(
            client=client, end_user=f"u{i}", purpose="p", operation="lookup", outcome=outcome, person_nos=[]
        )
        for i in range(n)
    ]


def test_a_client_refused_too_often_raises_the_alert_and_shows_on_the_dashboard(session, client) -> None:
    append_access(session, _entries("yibao", "ok", 18) + _entries("yibao", "refused", 12))  # 40 % refused
    append_access(session, _entries("gongan", "ok", 40) + _entries("gongan", "not_found", 5))
    append_access(session, _entries("jiaoyu", "refused", 10))  # refused, but too few requests to judge
    session.flush()
    health.roll_up(session=session)  # part of them rolled up, the next ones after the roll-up's last id
    append_access(session, _entries("yibao", "refused", 1))
    written = session.scalar(text("SELECT max(at) FROM audit_log"))
    now = written.replace(second=0, microsecond=0) + timedelta(minutes=1)  # as the page's `now` is given

    # Monitoring of feeds from today on: no feed is due yet, only the API is judged.
    done = alerts.evaluate(session=session, now=now, settings=settings(expected_from=now.date()))
    raised = [a for a in done.raised if a.rule == "api_error_rate"]
    assert [(a.key, a.detail) for a in raised] == [("api_error_rate:yibao", {"requests": 31, "refused": 13})]
    assert [a.rule for a in done.raised] == ["api_error_rate"]
    assert "yibao" in raised[0].title and "13/31" in raised[0].title

    html = client.get("/monitor", params={"now": f"{now:%Y-%m-%dT%H:%M}"}).text
    table = html[html.index('id="api"') :]
    assert "<tr><th>gongan</th><td>45</td><td>0</td><td>5</td><td>0%</td><td>0</td></tr>" in table
    assert "<tr><th>yibao</th><td>31</td><td>13</td><td>0</td><td>42%</td><td>0</td></tr>" in table
    assert "<tr><th>jiaoyu</th><td>10</td><td>10</td><td>0</td><td>100%</td><td>0</td></tr>" in table
    audit = html[html.index('id="audit-volume"') :]  # the audit records' category in words
    assert re.search(rf'<tr data-area="sharing"><td>[^<]+</td><td>{AuditCategory.SHARING.label}</td>', audit)
    assert ">sharing<" not in audit
    body = client.get("/metrics", params={"now": f"{now:%Y-%m-%dT%H:%M}"}).text
    assert 'popex_alerts_open{rule="api_error_rate"} 1.0' in body
    total = session.scalar(text("SELECT count(*) FROM audit_log"))
    assert f"popex_audit_log_records {float(total)}" in body
    assert session.scalars(select(MonitorAlert.key).where(MonitorAlert.state == "open")).all() == [
        "api_error_rate:yibao"
    ]


def test_requests_failed_on_the_servers_side_raise_a_critical_alert_however_few(session, client) -> None:
    append_access(session, _entries("minzheng", "ok", 3) + _entries("minzheng", "error", 1))
    append_access(session, _entries("yibao", "ok", 5))
    session.flush()
    health.roll_up(session=session)
    append_access(session, _entries("minzheng", "error", 1))  # after the roll-up's last id
    written = session.scalar(text("SELECT max(at) FROM audit_log"))
    now = written.replace(second=0, microsecond=0) + timedelta(minutes=1)

    done = alerts.evaluate(session=session, now=now, settings=settings(expected_from=now.date()))
    assert [(a.rule, a.key, a.severity, a.detail) for a in done.raised] == [
        ("api_failures", "api_failures:minzheng", "critical", {"requests": 5, "failed": 2})
    ]
    assert "minzheng" in done.raised[0].title and "2/5" in done.raised[0].title
    html = client.get("/monitor", params={"now": f"{now:%Y-%m-%dT%H:%M}"}).text
    table = html[html.index('id="api"') :]
    assert (
        '<tr><th>minzheng</th><td>5</td><td>0</td><td>0</td><td>0%</td><td class="failed">2</td></tr>'
        in table
    )
    assert "<tr><th>yibao</th><td>5</td><td>0</td><td>0</td><td>0%</td><td>0</td></tr>" in table
    later = now + timedelta(hours=2)  # an hour without failures: the alert resolves
    assert [
        a.key
        for a in alerts.evaluate(
            session=session, now=later, settings=settings(expected_from=now.date())
        ).resolved
    ] == ["api_failures:minzheng"]


def test_a_client_whose_lookups_find_no_one_raises_the_probing_alert(session) -> None:
    """Misses that are many and a large share of a client's requests alert; a few misses among many
    hits (persons not yet registered) do not."""
    append_access(session, _entries("probe", "ok", 10) + _entries("probe", "not_found", 25))
    append_access(session, _entries("gongan", "ok", 200) + _entries("gongan", "not_found", 30))  # 13 %
    append_access(session, _entries("jiaoyu", "not_found", 19))  # all missed, but too few to judge
    session.flush()
    now = session.scalar(text("SELECT max(at) FROM audit_log")).replace(second=0, microsecond=0)
    done = alerts.evaluate(
        session=session, now=now + timedelta(minutes=1), settings=settings(expected_from=now.date())
    )
    raised = [a for a in done.raised if a.rule == "api_not_found"]
    assert [(a.key, a.detail) for a in raised] == [("api_not_found:probe", {"requests": 35, "not_found": 25})]
    assert "25/35" in raised[0].title and "71%" in raised[0].title
