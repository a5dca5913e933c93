"""Scorecards of the synthetic week: per department and community, and the XLSX export."""

import io

import openpyxl

from monitor import scorecard
from tests.monitor.week import NOW, WEEK


def test_scorecard_of_november(session, week, client) -> None:
    card = scorecard.build(
        session=session, period=scorecard.Period.parse("2026-11"), now=NOW, expected_from=WEEK[0]
    )
    depts = {d.code: d for d in card.departments}
    assert (depts["mzj"].tally.on_time, depts["mzj"].tally.late) == (6, 1)
    assert depts["gaj"].rows_rejected == 4 and depts["gaj"].duplicates >= 3
    assert depts["wjw"].tally.missing == 1
    # the export as served (no go-live date configured: 11-01 counts as a missing day for every feed)
    response = client.get("/monitor/scorecard.xlsx", params={"period": "2026-11", "now": "2026-11-09T12:00"})
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["部门", "社区"]
    rows = list(book["部门"].iter_rows(min_row=3, values_only=True))
    mzj = next(r for r in rows if r[0] == "mzj")
    assert mzj[2:6] == (8, 6, 1, 1) and abs(mzj[6] - 6 / 8) < 1e-3
    assert client.get("/monitor/scorecard.xlsx", params={"period": "2026-13"}).status_code == 422


def test_community_figures_count_its_own_uploads_whatever_the_channel(session, areas) -> None:
    """The community scorecard counts 社区采集 records, not other departments' records of its residents;
    uploads that came as files through the exchange make the day's clearance (issue 17 item 4)."""
    from datetime import date, datetime

    from collection import service as collection_service
    from registry.models import Delivery, SourceRecord
    from tests.factories import make_batch

    c1 = areas[0]
    day = date(2026, 11, 3)
    for source, statuses in (("sq_cj", ["accepted", "accepted", "rejected"]), ("gaj_hj", ["accepted"] * 5)):
        batch = make_batch(session, source, as_of=day, channel="landing")
        session.add(
            Delivery(
                source=source,
                file_name=batch.file_name,
                as_of_date=day,
                sha256=batch.sha256,
                size_bytes=0,
                channel="landing",
                received_at=datetime(2026, 11, 3, 18),
                batch_id=batch.id,
            )
        )
        for i, status in enumerate(statuses, start=1):
            session.add(
                SourceRecord(
                    batch_id=batch.id, row_no=i, source=source, raw={}, status=status, community_code=c1
                )
            )
    session.flush()
    card = scorecard.build(
        session=session, period=scorecard.Period.parse("2026-11"), now=datetime(2026, 12, 1)
    )
    community = next(c for c in card.communities if c.code == c1)
    assert (community.records, community.rejected) == (3, 1)  # was 8: the police's 5 records counted too
    cleared = collection_service.clearance(session=session, community_code=c1, day=day)
    assert (cleared.submitted, cleared.accepted, cleared.rejected, cleared.still_open) == (3, 2, 1, 1)
    assert not cleared.cleared  # was 已清 0/0: the file's rows were not seen
