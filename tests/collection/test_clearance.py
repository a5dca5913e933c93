"""一日一清 for many communities and days at once (service.clearances, the monitor's grid and the nightly
job) against the one-community function (service.clearance, the officer's page), on a city with every
kind of row."""

from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from collection import service
from collection.flows import forward_day
from collection.models import SubmissionRow
from exchange import flows as exchange_flows
from registry.models import Area, Delivery
from registry.normalise.names import name_key
from tests.collection.conftest import TODAY, ZHANG, ZHANG_BAD, log_in
from tests.collection.test_pages import GOOD, sheet
from tests.feedfiles import write_feed

YESTERDAY = TODAY - timedelta(days=1)


FIELDS = (
    "community_code",
    "work_date",
    "cutoff_at",
    "submitted",
    "accepted",
    "rejected",
    "corrected",
    "discarded",
    "still_open",
    "cleared",
)


def fields(c: service.Clearance) -> tuple[object, ...]:
    return tuple(getattr(c, name) for name in FIELDS)


def upload(client: TestClient, csrf: str, cells: list[dict[str, str]]) -> None:
    response = client.post(
        "/collection/upload", data={"csrf": csrf}, files={"file": ("day.xlsx", sheet(cells), "x")}
    )
    assert response.status_code == 303, response.text


def test_set_wise_clearance_equals_the_one_community_clearance(
    client: TestClient, session: Session, factory, officers, areas, tmp_path
) -> None:
    a, b = officers
    session.add(Area(code="330102001003", name="空社区", level="community", parent_code="330102001"))
    session.flush()
    # Community A, today: an upload with 4 rejected rows, a second one correcting 2 (by name and birth
    # date, by ID number), one of the others discarded, a form rejected and corrected with 更正此行.
    csrf = log_in(client)
    zhang = {**GOOD, "姓名": "张伟", "身份证号": ZHANG_BAD, "性别": "男", "出生日期": "1980-01-01"}
    upload(
        client,
        csrf,
        [
            zhang,
            {**GOOD, "现住址": ""},
            {**GOOD, "姓名": "赵六", "身份证号": "", "现住址": ""},
            {**GOOD, "姓名": "孙七", "身份证号": "", "出生日期": "1990-01-01", "现住址": ""},
        ],
    )
    upload(client, csrf, [{**zhang, "身份证号": ZHANG}, GOOD])
    zhao = session.scalar(select(SubmissionRow).where(SubmissionRow.raw["姓名"].astext == "赵六"))
    assert zhao is not None and zhao.status == "rejected"
    assert (
        client.post(f"/collection/rows/{zhao.id}/discard", data={"csrf": csrf, "reason": "其他"}).status_code
        == 303
    )
    sub = service.store_form(session=session, officer=a, values={"姓名": "周八"}, work_date=TODAY)
    (wrong,) = service.validate_submission(session=session, submission_id=sub.id)
    fix = service.store_form(
        session=session,
        officer=a,
        values={**GOOD, "姓名": "周八", "身份证号": ""},
        work_date=TODAY,
        replaces_id=wrong.id,
    )
    service.validate_submission(session=session, submission_id=fix.id)
    # Community A, yesterday: a rejected row corrected after the cut-off, one discarded before it, one
    # entered after the cut-off (not counted for yesterday).
    late = service.store_form(session=session, officer=a, values={"姓名": "吴九"}, work_date=YESTERDAY)
    (late_row,) = service.validate_submission(session=session, submission_id=late.id)
    late_fix = service.store_form(
        session=session, officer=a, values=dict(GOOD), work_date=YESTERDAY, replaces_id=late_row.id
    )
    service.validate_submission(session=session, submission_id=late_fix.id)
    gone = service.store_form(session=session, officer=a, values={"姓名": "郑十"}, work_date=YESTERDAY)
    (gone_row,) = service.validate_submission(session=session, submission_id=gone.id)
    service.discard_row(session=session, officer=a, row_id=gone_row.id, reason="重复录入")
    after = service.store_form(session=session, officer=a, values={"姓名": "王一"}, work_date=YESTERDAY)
    service.validate_submission(session=session, submission_id=after.id)
    cutoff = datetime.combine(YESTERDAY, time(23, 59, 59))
    at = {
        late.id: (cutoff - timedelta(hours=2), None),
        late_fix.id: (cutoff + timedelta(hours=8), None),
        gone.id: (cutoff - timedelta(hours=3), cutoff - timedelta(hours=1)),
        after.id: (cutoff + timedelta(hours=1), None),
    }
    for submission_id, (created, closed) in at.items():
        session.execute(
            update(SubmissionRow)
            .where(SubmissionRow.submission_id == submission_id)
            .values(created_at=created, closed_at=closed)
        )
    session.execute(
        update(SubmissionRow)
        .where(SubmissionRow.id == late_row.id)
        .values(closed_at=cutoff + timedelta(hours=8))
    )
    session.commit()
    # Community A's accepted rows forwarded through the exchange (channel collection: not counted twice).
    forwarded = forward_day(factory, TODAY)
    assert forwarded is not None
    exchange_flows.process_batch(factory, forwarded)
    # Community B, today and yesterday: files through the exchange, a rejected row corrected by a later
    # file, another left open; B's officer has a rejected form too.
    cells = {"社区代码": b.community_code, "采集日期": TODAY.isoformat(), "信息员工号": "B001"}
    li, wang = {**GOOD, **cells}, {**GOOD, **cells, "姓名": "王五", "身份证号": ZHANG, "性别": "男"}
    exchange_flows.ingest_file(
        factory,
        write_feed(
            tmp_path, "sq_cj", TODAY, [{**li, "现住址": ""}, wang, {**wang, "姓名": "", "身份证号": ""}]
        ),
    )
    exchange_flows.ingest_file(factory, write_feed(tmp_path, "sq_cj", TODAY, [li], seq=2))
    old = {**cells, "采集日期": YESTERDAY.isoformat()}
    on_time = exchange_flows.ingest_file(
        factory, write_feed(tmp_path, "sq_cj", YESTERDAY, [{**GOOD, **old}, {**GOOD, **old, "性别": ""}])
    )
    session.execute(
        update(Delivery)
        .where(Delivery.batch_id == on_time.batch_id)
        .values(received_at=cutoff - timedelta(hours=1))
    )
    b_sub = service.store_form(session=session, officer=b, values={"姓名": "某人"}, work_date=TODAY)
    service.validate_submission(session=session, submission_id=b_sub.id)

    days = [TODAY - timedelta(days=2), YESTERDAY, TODAY, TODAY + timedelta(days=1)]
    codes = [*areas, "330102001003"]
    together = service.clearances(session=session, community_codes=codes, days=days)
    assert sorted(together) == sorted((code, day) for code in codes for day in days)
    for code in codes:
        for day in days:
            one = service.clearance(session=session, community_code=code, day=day)
            assert fields(together[(code, day)]) == fields(one), (code, day)
    # The city has each kind of row the comparison is meant to cover.
    counts = {
        (code, day): (c.submitted, c.accepted, c.rejected, c.corrected, c.discarded, c.still_open)
        for (code, day), c in together.items()
        if c.submitted or c.rejected
    }
    assert counts == {
        (areas[0], TODAY): (5, 3, 5, 3, 1, 1),  # 孙七 open; 赵六 discarded; the forwarded file not counted
        (areas[0], YESTERDAY): (2, 0, 2, 0, 1, 1),  # 吴九 corrected after the cut-off; 王一 entered after it
        (areas[1], TODAY): (4, 1, 4, 1, 0, 3),  # 李娜 corrected by the second file; 王五 held for review
        (areas[1], YESTERDAY): (2, 1, 1, 0, 0, 1),
    }


def _file_counts_pairwise(rows: list[Any]) -> dict[str, int]:
    """The file rows' counts as first written: every rejected row against every row, in order."""
    who = [
        service.Identity(
            None,
            r.id_no if r.id_valid else None,
            (key, r.birth_date) if (key := name_key(r.name)) and r.birth_date else None,
        )
        for r in rows
    ]
    corrected, corrections = set(), set()
    for i, row in enumerate(rows):
        if row.status == "rejected":
            for j, later in enumerate(rows):
                if (
                    later.batch_id > row.batch_id
                    and later.status == "accepted"
                    and service.same_person(who[i], who[j])
                ):
                    corrected.add(i)
                    corrections.add(j)
                    break
    accepted = sum(1 for r in rows if r.status == "accepted")
    return {
        "submitted": len(rows) - len(corrections),
        "accepted": accepted,
        "rejected": len(rows) - accepted,
        "corrected": len(corrected),
        "discarded": 0,
        "still_open": len(rows) - accepted - len(corrected),
    }


FILE_ROWS = st.lists(
    st.builds(
        SimpleNamespace,
        batch_id=st.integers(1, 4),
        status=st.sampled_from(["accepted", "rejected", "review"]),
        id_no=st.sampled_from([None, "110101199003070014", "110101199003070022"]),
        id_valid=st.booleans(),
        name=st.sampled_from([None, "张三", "张 三", "李四"]),
        birth_date=st.sampled_from([None, date(1990, 3, 7), date(1985, 1, 1)]),
    ),
    max_size=25,
)


@given(FILE_ROWS)
def test_file_counts_by_index_are_the_pairwise_counts(rows: list[Any]) -> None:
    """The clearance of a day's file rows looks a rejected row's correction up by ID number and by name
    and birth date: the same counts as comparing it with every row (hypothesis: ID numbers, names and
    birth dates shared, valid or not, across four files)."""
    assert service._file_counts(rows) == _file_counts_pairwise(rows)
