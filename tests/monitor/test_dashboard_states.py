"""The dashboard before the alert DAG has run, with no batches, and with many communities (issue 18)."""

from datetime import date, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Connection, event, update
from sqlalchemy.orm import Session

from collection import service as collection_service
from collection.models import SubmissionRow
from monitor import alerts
from registry.models import Area
from tests.monitor.conftest import settings
from tests.monitor.week import NOW


def test_missing_delivery_is_never_beside_no_alerts(session: Session, week, client: TestClient) -> None:
    """Before monitor_alerts has evaluated: the conditions are shown as pending, never '当前没有告警'."""
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    assert '<li class="kpi" data-key="missing"><span>缺报</span><strong>1</strong>' in html
    assert "当前没有告警" not in html and 'id="pending-alerts"' in html
    pending = html[html.index('id="pending-alerts"') : html.index('id="timeliness"')]
    assert pending.count('<li class="pending') == 4
    # Once the DAG has raised them, they are alerts and nothing is pending.
    alerts.evaluate(session=session, now=NOW, settings=settings())
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    assert 'id="pending-alerts"' not in html and "当前没有告警" not in html


def test_empty_tables_say_why(session: Session, areas, client: TestClient) -> None:
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    batches = html[html.index('id="batches"') : html.index('id="reasons"')]
    assert "一个也没有收到，所以没有批次" in batches
    assert "统计期内没有批次，所以没有拒收原因" in html


def test_long_clearance_grid_is_summarised_problems_first(
    session: Session, areas, client: TestClient
) -> None:
    for i in range(3, 60):
        session.add(
            Area(code=f"330102001{i:03d}", name=f"社区{i}", level="community", parent_code="330102001")
        )
    session.flush()
    officer = collection_service.add_officer(
        session=session, officer_no="Z009", name="某", community_code="330102001042", password="x" * 10
    )
    sub = collection_service.store_form(
        session=session, officer=officer, values={"姓名": "某人"}, work_date=date(2026, 11, 7)
    )
    collection_service.validate_submission(session=session, submission_id=sub.id)  # rejected: not cleared
    session.execute(update(SubmissionRow).values(created_at=datetime(2026, 11, 7, 10, 0)))
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    section = html[html.index('id="clearance"') : html.index('id="batches"')]
    assert "59 个社区：" in section and ">1</strong> 个有未清的日子" in section
    shown = section[: section.index('id="clearance-rest"')]
    assert shown.count("<tr data-community=") == 1 and 'data-community="330102001042"' in shown
    assert "展开其余 58 个已清的社区" in section


def test_a_view_issues_a_bounded_number_of_statements(
    session: Session, connection: Connection, areas, client: TestClient
) -> None:
    """The clearance grid of 300 communities x 7 days is a few statements, not one per community-day."""
    session.add_all(
        Area(code=f"330102001{i:03d}", name=f"社区{i}", level="community", parent_code="330102001")
        for i in range(3, 301)
    )
    session.flush()
    statements: list[str] = []
    event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    assert "300 个社区" in html
    assert len(statements) <= 50, len(statements)
