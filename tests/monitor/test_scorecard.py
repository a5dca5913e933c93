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
