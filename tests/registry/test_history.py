"""A person's history in the versions: a change that another department dates back does not rewrite
where the person lived meanwhile."""

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry import events, history
from registry.merge import merge_batch
from registry.models import Link, Person, SourceRecord
from tests.factories import make_batch, make_person

A, B = "330102001001", "330102001002"


def merge_record(session: Session, person: Person, source: str, as_of: date, **fields: Any) -> int:
    """A batch of one accepted record linked to the person, merged and published as the pipeline does
    it; returns the batch's id."""
    batch = make_batch(session, source, as_of=as_of, state="resolved")
    record = SourceRecord(batch_id=batch.id, row_no=1, source=source, raw={}, status="accepted", **fields)
    session.add(record)
    session.flush()
    session.add(Link(source_record_id=record.id, person_id=person.id, batch_id=batch.id, rule="test"))
    session.flush()
    merge_batch(session=session, batch_id=batch.id)
    events.publish_batch(session=session, batch_id=batch.id)
    return batch.id


def in_force(session: Session, person: Person, day: date, column: str) -> Any:
    """The person's `column` on `day`: the version dated no later than that day recorded last."""
    return session.scalar(
        text(
            f"SELECT {column} FROM person_version WHERE person_id = :p AND valid_from <= :d"
            " ORDER BY recorded_at DESC, id DESC LIMIT 1"
        ),
        {"p": person.id, "d": day},
    )


def test_a_phone_number_dated_back_does_not_move_the_person_back_in_time(session: Session) -> None:
    person = make_person(session, valid_from=date(2020, 1, 1), community_code=A, phone=None)
    merge_record(session, person, "gaj_hj", date(2024, 6, 2), event_date=date(2024, 6, 1), community_code=B)
    assert in_force(session, person, date(2023, 1, 1), "community_code") == A
    assert in_force(session, person, date(2024, 7, 1), "community_code") == B

    # Social insurance reports a phone number with the date its record last changed, before the move.
    merge_record(
        session, person, "rsj_cb", date(2026, 11, 1), event_date=date(2022, 3, 1), phone="13800138000"
    )

    assert in_force(session, person, date(2023, 1, 1), "community_code") == A  # not rewritten as B
    assert in_force(session, person, date(2024, 7, 1), "community_code") == B
    assert in_force(session, person, date(2024, 7, 1), "phone") == "13800138000"
    assert in_force(session, person, date(2024, 5, 31), "phone") is None  # from the move's day on


def test_a_move_dated_back_still_dates_the_move(session: Session) -> None:
    """A change of where the person lives keeps its own date (a late report of a move), as before."""
    person = make_person(session, valid_from=date(2020, 1, 1), community_code=A, phone=None)
    merge_record(
        session, person, "rsj_cb", date(2026, 10, 21), event_date=date(2026, 10, 20), phone="13800138000"
    )
    merge_record(session, person, "gaj_hj", date(2026, 11, 1), event_date=date(2026, 10, 1), community_code=B)
    assert in_force(session, person, date(2026, 9, 30), "community_code") == A
    assert in_force(session, person, date(2026, 10, 1), "community_code") == B
    assert in_force(session, person, date(2026, 10, 5), "phone") is None  # not yet: from 10-20 on
    assert in_force(session, person, date(2026, 10, 20), "phone") == "13800138000"
    assert in_force(session, person, date(2026, 10, 20), "community_code") == B


def test_a_move_dated_back_keeps_what_changed_after_its_date(session: Session) -> None:
    """A late-reported move rewrites where the person lived from its date, and nothing else: a change of
    population type and a death recorded since keep their own dates; subscribers hear of the move once."""
    person = make_person(
        session, valid_from=date(2020, 1, 1), community_code=A, population_type="registered", phone=None
    )
    merge_record(
        session, person, "gaj_ld", date(2024, 6, 2), event_date=date(2024, 6, 1), population_type="floating"
    )
    merge_record(
        session, person, "rsj_cb", date(2025, 3, 2), event_date=date(2025, 3, 1), phone="13800138000"
    )
    merge_record(
        session, person, "mzj_sw", date(2026, 2, 2), event_date=date(2026, 2, 1), residence_status="dead"
    )
    batch = merge_record(
        session, person, "gaj_hj", date(2026, 11, 1), event_date=date(2023, 1, 1), community_code=B
    )

    expected = {  # day: (community, type, phone, status)
        date(2022, 12, 31): (A, "registered", None, "active"),
        date(2023, 1, 1): (B, "registered", None, "active"),
        date(2024, 6, 1): (B, "floating", None, "active"),
        date(2025, 3, 1): (B, "floating", "13800138000", "active"),
        date(2026, 2, 1): (B, "floating", "13800138000", "dead"),
        date(2026, 11, 30): (B, "floating", "13800138000", "dead"),
    }
    for day, values in expected.items():
        got = tuple(
            in_force(session, person, day, c)
            for c in ("community_code", "population_type", "phone", "status")
        )
        assert got == values, day
    told = session.execute(
        text("SELECT event_type, event_date FROM change_event WHERE batch_id = :b"), {"b": batch}
    ).all()
    assert [tuple(e) for e in told] == [
        ("attribute_changed", date(2023, 1, 1))
    ]  # moved while dead: not a move
    assert history.dated_back(session) == 0


def test_a_history_written_before_the_merge_kept_residence_is_repaired(session: Session) -> None:
    """Versions the old merge dated back without a change of residence get the date the merge gives
    now (a chain of them too), their change events with them; the move keeps its own."""
    person = make_person(session, valid_from=date(2020, 1, 1), community_code=A, phone=None)
    merge_record(session, person, "gaj_hj", date(2024, 6, 2), event_date=date(2024, 6, 1), community_code=B)
    phones = make_batch(session, "rsj_cb", as_of=date(2026, 11, 1))
    for valid_from, phone in ((date(2022, 3, 1), "13800138000"), (date(2021, 5, 1), "13900139000")):
        session.execute(  # as the merge wrote them until 8cb3cb3: the records' dates, whole rows
            text(
                "INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, status,"
                " community_code, population_type, sex, birth_date, id_no, name, phone)"
                " SELECT id, area_key, :d, :b, '[\"phone\"]', status, community_code, population_type, sex,"
                " birth_date, id_no, name, :phone FROM person WHERE id = :p"
            ),
            {"d": valid_from, "b": phones.id, "phone": phone, "p": person.id},
        )
    session.execute(
        text(
            "INSERT INTO change_event (person_id, event_type, event_date, community_code, batch_id, version_id,"
            " payload) SELECT person_id, 'attribute_changed', valid_from, community_code, batch_id, id, '{}'"
            " FROM person_version WHERE person_id = :p AND batch_id = :b"
        ),
        {"p": person.id, "b": phones.id},
    )
    assert in_force(session, person, date(2023, 1, 1), "community_code") == B  # the old harm

    assert history.dated_back(session) == 2
    assert history.repair(session=session, actor="ops") == (2, 2)
    assert in_force(session, person, date(2023, 1, 1), "community_code") == A
    assert in_force(session, person, date(2024, 6, 1), "phone") == "13900139000"
    dates = session.execute(
        text(
            "SELECT v.valid_from, e.event_date FROM person_version v JOIN change_event e ON e.version_id = v.id"
            " WHERE v.batch_id = :b"
        ),
        {"b": phones.id},
    ).all()
    assert {tuple(d) for d in dates} == {(date(2024, 6, 1), date(2024, 6, 1))}
    assert history.dated_back(session) == 0 and history.repair(session=session, actor="ops") == (0, 0)
