"""Review queue operations on real data: accept, reject (remembered), merge, unmerge, split — all audited."""

from datetime import date

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from exchange import flows
from registry import review
from registry.models import AuditLog, Link, NonMatch, Person, PersonIdentifier, ReviewItem, SourceRecord
from tests.feedfiles import hj, write_feed

ZHANG = "330102198001010018"
LI = "330102198505050021"


@pytest.fixture
def conflict(session: Session, factory, areas, tmp_path) -> ReviewItem:
    """张伟 registered; then social insurance sends his number with another name: an ID conflict."""
    flows.ingest_file(
        factory,
        write_feed(
            tmp_path,
            "gaj_hj",
            date(2026, 11, 1),
            [hj("H1", ZHANG, "张伟", "男", "1980-01-01"), hj("H2", LI, "李娜", "女", "1985-05-05")],
        ),
    )
    rows = [
        {
            "社会保障号码": ZHANG,
            "姓名": "欧阳娜娜",
            "性别": "男",
            "出生日期": "1980-01-01",
            "参保状态": "参保",
            "联系电话": "13700137000",
            "变更日期": "2026-11-02",
        }
    ]
    flows.ingest_file(factory, write_feed(tmp_path, "rsj_cb", date(2026, 11, 2), rows))
    return session.scalars(select(ReviewItem)).one()


def audit_actions(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(AuditLog.action)
            .where(AuditLog.action.like("review.%") | AuditLog.action.like("person.%"))
            .order_by(AuditLog.id)
        )
    )


def test_accept_links_the_record_and_updates_the_golden_record(session, conflict) -> None:
    person = review.accept(session=session, item_id=conflict.id, actor="clerk1", note="本人改名前的参保登记")
    assert person.id_no == ZHANG and person.phone == "13700137000"
    assert person.name == "张伟"  # household registration stays authoritative for the name
    record = session.scalars(select(SourceRecord).where(SourceRecord.id == conflict.source_record_id)).one()
    assert record.status == "accepted"
    link = session.get(Link, record.id)
    assert (link.person_id, link.method, link.linked_by) == (person.id, "manual", "clerk1")
    assert session.get(ReviewItem, conflict.id).state == "accepted"
    assert audit_actions(session) == ["review.accept"]
    with pytest.raises(review.ReviewError, match="已处理"):
        review.accept(session=session, item_id=conflict.id, actor="clerk1")


def test_reject_makes_a_new_person_without_the_number_and_remembers(session, conflict) -> None:
    holder = session.scalar(select(Person).where(Person.id_no == ZHANG))
    new = review.reject(session=session, item_id=conflict.id, actor="clerk2")
    assert new.id != holder.id and new.name == "欧阳娜娜"
    assert session.get(PersonIdentifier, ("RID", ZHANG)).person_id == holder.id
    low, high = sorted((holder.id, new.id))
    assert session.get(NonMatch, (low, high)) is not None
    assert audit_actions(session) == ["review.reject"]


def test_a_number_somebody_else_holds_is_an_error_not_dropped(session, conflict) -> None:
    li = session.scalar(select(Person).where(Person.id_no == LI))
    session.execute(update(PersonIdentifier).where(PersonIdentifier.id_no == ZHANG).values(person_id=li.id))
    with pytest.raises(review.ReviewError, match=f"已属于人员 {li.person_no}"):
        review.accept(session=session, item_id=conflict.id, actor="clerk1")
    assert session.get(ReviewItem, conflict.id).state == "open"


def test_merge_retires_a_number_that_redirects_and_unmerge_restores_it(session, conflict) -> None:
    new = review.reject(session=session, item_id=conflict.id, actor="clerk2")
    holder = session.scalar(select(Person).where(Person.id_no == ZHANG))
    persons_before = session.scalar(
        select(func.count()).select_from(Person).where(Person.status != "retired")
    )
    survivor = review.merge(
        session=session, survivor_no=holder.person_no, retired_no=new.person_no, actor="clerk3"
    )
    assert survivor.phone == "13700137000"  # the moved record now feeds the survivor
    retired = session.scalar(select(Person).where(Person.person_no == new.person_no))
    assert (retired.status, retired.merged_into) == ("retired", holder.id)
    current = review.current_person(session=session, person_no=new.person_no)
    assert current is not None and current.id == holder.id
    assert session.scalar(select(func.count()).select_from(Person).where(Person.status != "retired")) == (
        persons_before - 1
    )
    with pytest.raises(review.ReviewError, match="已合并注销"):
        review.merge(session=session, survivor_no=holder.person_no, retired_no=new.person_no, actor="clerk3")

    back = review.unmerge(session=session, retired_no=new.person_no, actor="clerk4")
    assert back.status == "active" and back.merged_into is None and back.name == "欧阳娜娜"
    assert session.get(Link, conflict.source_record_id).person_id == back.id
    assert session.scalar(select(Person.phone).where(Person.id == holder.id)) is None
    assert audit_actions(session) == ["review.reject", "person.merge", "person.unmerge"]


def test_split_moves_records_to_a_new_person(session, conflict) -> None:
    person = review.accept(session=session, item_id=conflict.id, actor="clerk1")
    new = review.split(
        session=session, person_no=person.person_no, record_ids=[conflict.source_record_id], actor="clerk5"
    )
    assert session.get(Link, conflict.source_record_id).person_id == new.id
    assert new.name == "欧阳娜娜" and new.person_no != person.person_no
    session.refresh(person)
    assert person.phone is None
    with pytest.raises(review.ReviewError, match="全部记录"):
        review.split(
            session=session, person_no=new.person_no, record_ids=[conflict.source_record_id], actor="x"
        )


def test_a_clerk_sees_the_record_beside_the_person_masked_and_the_viewing_is_audited(
    session, conflict
) -> None:
    shown = review.compare_item(session=session, item_id=conflict.id, actor="clerk-2")
    values = {label: (mine, theirs) for label, mine, theirs, _ in shown.fields}
    agree = {label: same for label, _, _, same in shown.fields}
    assert (agree["姓名"], agree["出生日期"], agree["证件号码"], agree["电话"]) == (False, True, True, None)
    assert values["姓名"] == ("欧阳娜娜", "张伟")
    assert values["出生日期"] == ("1980-01-01", "1980-01-01")
    assert values["证件号码"] == ("330102***********8", "330102***********8")  # masked by default
    assert values["电话"] == ("137****7000", None)
    assert shown.kind == "证件号码与姓名/出生日期矛盾" and shown.state == "open" and shown.row_no == 1
    assert shown.batch.startswith("rsj_cb rsj_cb_20261102")
    person_no = session.get_one(Person, conflict.candidate_person_id).person_no
    assert shown.person_no == person_no
    clear = review.compare_item(session=session, item_id=conflict.id, actor="clerk-2", unmasked=True)
    assert {label: mine for label, mine, _, _ in clear.fields}["证件号码"] == ZHANG
    viewed = session.scalars(
        select(AuditLog.detail).where(AuditLog.action == "review.viewed").order_by(AuditLog.id)
    ).all()
    assert [(d["person_nos"], d["unmasked"]) for d in viewed] == [([person_no], False), ([person_no], True)]
    # Numbers that differ only where the mask hides them look alike masked: compared unmasked.
    record = session.scalars(select(SourceRecord).where(SourceRecord.id == conflict.source_record_id)).one()
    record.id_no = "330102198001019918"
    session.flush()
    masked = review.compare_item(session=session, item_id=conflict.id, actor="clerk-2")
    [(_, mine, theirs, same)] = [f for f in masked.fields if f[0] == "证件号码"]
    assert mine == theirs == "330102***********8" and same is False
    with pytest.raises(review.ReviewError, match="待核查事项 999999 不存在"):
        review.compare_item(session=session, item_id=999999, actor="clerk-2")


def test_review_show_prints_the_comparison_and_how_to_decide(session, conflict, monkeypatch) -> None:
    from contextlib import contextmanager

    from typer.testing import CliRunner

    from popex.cli import app

    @contextmanager
    def scope():
        yield session
        session.commit()

    monkeypatch.setattr("base.db.session_scope", scope)
    done = CliRunner().invoke(
        app, ["review", "show", str(conflict.id), "--actor", "clerk-2"], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 0, done.output
    said = "".join(done.output.split())  # rich wraps at the terminal's width
    assert "欧阳娜娜" in said and "张伟" in said and ZHANG not in said and "（待处理" in said
    assert f"popexreviewaccept{conflict.id}--actorclerk-2" in said
    # the OS user is recorded, the stated name beside it (not instead of it)
    from registry.operator import os_user

    viewed = session.scalar(
        text("SELECT actor FROM audit_log WHERE action = 'review.viewed' ORDER BY id DESC LIMIT 1")
    )
    assert viewed == f"{os_user()}（clerk-2）", viewed
    listed = CliRunner().invoke(app, ["review", "list"]).output
    [line] = [row for row in listed.splitlines() if row.startswith(f"│ {conflict.id} ")]
    assert "证件号码与" in line and "id_conflict" not in listed  # the kind in words (wrapped in its column)
    assert "popexreviewshow" in "".join(listed.split())
    missing = CliRunner().invoke(app, ["review", "show", "999999", "--actor", "clerk-2"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_a_clerks_decision_waits_for_the_identity_lock(session, conflict, monkeypatch) -> None:
    """popex review reject (like merge, split, unmerge) changes persons: it runs only when no batch is
    between resolve and publish (the identity lock), and records the OS user beside the stated name."""
    import threading
    from contextlib import contextmanager

    from sqlalchemy import create_engine
    from typer.testing import CliRunner

    from base.db import database_url
    from exchange.flows import IDENTITY_LOCK
    from popex.cli import app
    from registry.operator import os_user

    @contextmanager
    def scope():
        yield session
        session.flush()

    monkeypatch.setattr("base.db.session_scope", scope)
    holder = create_engine(database_url()).connect()  # a batch's resolve → publish, as far as the lock goes
    holder.execute(text(f"SELECT pg_advisory_lock({IDENTITY_LOCK})"))
    outcome: list[object] = []
    clerk = threading.Thread(
        target=lambda: outcome.append(
            CliRunner().invoke(app, ["review", "reject", str(conflict.id), "--actor", "clerk-9"])
        )
    )
    try:
        clerk.start()
        clerk.join(timeout=2)
        assert clerk.is_alive() and not outcome  # waiting, nothing decided
        assert session.scalar(select(ReviewItem.state).where(ReviewItem.id == conflict.id)) == "open"
    finally:
        holder.execute(text(f"SELECT pg_advisory_unlock({IDENTITY_LOCK})"))
        holder.close()
    clerk.join(timeout=30)
    [done] = outcome
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    assert "另一批次正在识别、合并与发布（身份锁），本次等待其完成后自动继续" in done.output  # type: ignore[attr-defined]
    item = session.scalars(select(ReviewItem).where(ReviewItem.id == conflict.id)).one()
    assert (item.state, item.decided_by) == ("rejected", f"{os_user()}（clerk-9）")
