"""Survivorship (registry/merge.py) on real PostgreSQL: per attribute the best trust rank wins, then the
newest observation, then the newest record; death is final; the order records arrive in does not matter."""

from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.orm import Session

from registry.merge import merge_persons
from registry.models import Link, Person, SourceRecord
from registry.trust import UNRANKED, trust_rows
from schemas.feed_spec import LOWEST_RANK, FeedSpec, get_feed_spec
from tests.factories import make_batch, make_person

ID = "330102198001010018"


def add_record(session: Session, person: Person, source: str, observed: date, **fields: Any) -> SourceRecord:
    """An accepted record of `source` observed on `observed` (its batch's as-of date), linked to person."""
    batch = make_batch(session, source, as_of=observed)
    record = SourceRecord(batch_id=batch.id, row_no=1, source=source, raw={}, status="accepted", **fields)
    session.add(record)
    session.flush()
    session.add(Link(source_record_id=record.id, person_id=person.id, batch_id=batch.id, rule="test"))
    session.flush()
    return record


def merged(session: Session, person: Person) -> Person:
    merge_persons(session=session, person_ids=[person.id])
    session.expire_all()
    got = session.get(Person, person.id)
    assert got is not None
    return got


def rank(source: str, attribute: str) -> int:
    ranks = {(r["source"], r["attribute"]): r["rank"] for r in trust_rows()}
    return int(str(ranks.get((source, attribute), UNRANKED)))


def test_the_ranks_these_tests_rely_on() -> None:
    assert rank("gaj_hj", "name") < rank("gaj_ld", "name") < rank("sq_cj", "name")
    assert rank("sq_cj", "phone") < rank("rsj_cb", "phone") < rank("gaj_hj", "phone") == UNRANKED
    assert rank("wjw_sw", "residence_status") < rank("sq_cj", "residence_status")


def test_the_best_trust_rank_wins_over_a_newer_record(session: Session) -> None:
    person = make_person(session, name=None)
    best = add_record(session, person, "gaj_hj", date(2026, 1, 1), name="安娜·金")
    add_record(session, person, "sq_cj", date(2026, 11, 1), name="安娜金")
    add_record(session, person, "gaj_ld", date(2026, 10, 1), name="安娜·琴")
    golden = merged(session, person)
    assert golden.name == "安娜·金"  # the stored name keeps its middle dot
    assert golden.provenance["name"] == best.id


def test_among_equal_ranks_the_newest_observation_wins_then_the_newest_record(session: Session) -> None:
    person = make_person(session)
    add_record(session, person, "sq_cj", date(2026, 11, 1), address="旧址", event_date=date(2026, 1, 5))
    newest = add_record(
        session, person, "sq_cj", date(2026, 10, 1), address="新址", event_date=date(2026, 9, 30)
    )
    assert merged(session, person).address == "新址"  # the event date counts, not the batch's date
    assert person.provenance["address"] == newest.id
    later = add_record(
        session, person, "sq_cj", date(2026, 9, 30), address="同日后到"
    )  # same day, newer record
    assert merged(session, person).address == "同日后到"
    assert person.provenance["address"] == later.id


def test_an_unranked_source_only_fills_a_gap(session: Session) -> None:
    person = make_person(session, phone=None)
    add_record(session, person, "gaj_hj", date(2026, 11, 1), phone="13900000000")
    assert merged(session, person).phone == "13900000000"
    add_record(session, person, "rsj_cb", date(2026, 1, 1), phone="13800000000")
    assert merged(session, person).phone == "13800000000"
    add_record(session, person, "sq_cj", date(2025, 1, 1), phone="13700000000")
    assert merged(session, person).phone == "13700000000"


def test_death_is_final_whatever_comes_later(session: Session) -> None:
    person = make_person(session)
    add_record(session, person, "sq_cj", date(2026, 1, 1), residence_status="left")
    assert merged(session, person).status == "left"
    add_record(session, person, "gaj_hj", date(2026, 2, 1), residence_status="present")
    assert merged(session, person).status == "active"
    add_record(
        session, person, "wjw_sw", date(2026, 3, 10), residence_status="dead", event_date=date(2026, 3, 8)
    )
    add_record(session, person, "sq_cj", date(2026, 6, 1), residence_status="present")
    golden = merged(session, person)
    assert (golden.status, golden.death_date) == ("dead", date(2026, 3, 8))


def test_the_id_number_comes_only_from_a_number_the_person_holds(session: Session) -> None:
    person = make_person(session, id_type="RID", id_no=ID)
    mine = add_record(session, person, "sq_cj", date(2026, 1, 1), id_type="RID", id_no=ID, id_valid=True)
    other = "330102198505050021"
    add_record(session, person, "gaj_hj", date(2026, 2, 1), id_type="RID", id_no=other, id_valid=True)
    golden = merged(session, person)
    assert (golden.id_type, golden.id_no, golden.provenance["id_no"]) == ("RID", ID, mine.id)


def test_merging_again_changes_nothing(session: Session) -> None:
    person = make_person(session)
    add_record(session, person, "gaj_hj", date(2026, 1, 1), name="张伟", sex="1", birth_date=date(1980, 1, 1))
    add_record(session, person, "sq_cj", date(2026, 2, 1), name="张玮", phone="13900000000")
    merge_persons(session=session, person_ids=[person.id])
    assert merge_persons(session=session, person_ids=[person.id]).changed == 0


def test_a_rank_is_bounded_so_unranked_comes_after_every_rank() -> None:
    assert UNRANKED == LOWEST_RANK + 1 and len(str(UNRANKED)) == 1
    spec = get_feed_spec("gaj_hj").model_dump()
    for bad in (0, LOWEST_RANK + 1):
        with pytest.raises(ValidationError):
            FeedSpec.model_validate({**spec, "trust": {"name": bad}})
    assert FeedSpec.model_validate({**spec, "trust": {"name": LOWEST_RANK}}).trust == {"name": LOWEST_RANK}


# Records of one person: (source, observed day, name, phone, residence status); distinct days, so that no
# winner is decided by the record id (which depends on the order of arrival).
SOURCES = ["gaj_hj", "gaj_ld", "sq_cj", "rsj_cb", "wjw_sw"]
records = st.lists(
    st.tuples(
        st.sampled_from(SOURCES),
        st.integers(1, 300),
        st.sampled_from(["王小明", "王晓明", "阿依古丽·买买提", None]),
        st.sampled_from(["13900000000", "13800000000", None]),
        st.sampled_from(["present", "left", "dead", None]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda r: r[1],
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records, st.randoms(use_true_random=False))
def test_the_golden_record_does_not_depend_on_the_order_records_arrive(session: Session, rows, rnd) -> None:
    def golden(order: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        nested = session.begin_nested()
        try:
            person = make_person(session)
            for source, day, name, phone, status in order:
                add_record(
                    session,
                    person,
                    source,
                    date.fromordinal(date(2026, 1, 1).toordinal() + day),
                    name=name,
                    phone=phone,
                    residence_status=status,
                )
            p = merged(session, person)
            return (p.name, p.phone, p.status, p.death_date)
        finally:
            nested.rollback()

    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert golden(rows) == golden(shuffled)
