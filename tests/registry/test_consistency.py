"""The consistency checks find nothing after a real ingest and find each planted break."""

from datetime import date

import pytest
from sqlalchemy import func, select, text

from exchange import flows
from registry.consistency import check_consistency
from registry.models import Link, Person, SourceRecord
from tests.feedfiles import hj, write_feed


@pytest.fixture
def ingested(session, factory, areas, tmp_path) -> None:
    rows = [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"), hj("H2", "", "", "男", "1980-01-01")]
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), rows))


def test_a_real_ingest_is_consistent(session, ingested) -> None:
    assert set(check_consistency(session=session).values()) == {0}


TWO_HOLDERS = (
    "INSERT INTO person (id, person_no, status, id_type, id_no, provenance) "
    "SELECT -1, 'P99999999999', 'active', id_type, id_no, '{}' FROM person WHERE id_no IS NOT NULL"
)  # (the unique constraint is checked at commit, which a test never reaches)


@pytest.mark.parametrize(
    ("plant", "checks"),
    [
        ("UPDATE link SET person_id = -1", {"link.person_id → person"}),
        ("UPDATE link SET batch_id = -1", {"link.batch_id → batch", "link.batch_id ≠ its record's batch"}),
        ("DELETE FROM link", {"accepted record without link"}),
        ("UPDATE batch SET rows_rejected = rows_rejected + 1", {"batch accounting"}),
        ("UPDATE change_event SET version_id = -5", {"change_event.version_id → person_version"}),
        # the second holder has no identifier row: person_identifier's key allows one holder
        (TWO_HOLDERS, {"number held by two live persons", "person's number without its identifier row"}),
        ("DELETE FROM person_identifier", {"person's number without its identifier row"}),
        ("UPDATE person SET status = 'retired'", {"link to a retired person"}),
    ],
)
def test_each_break_is_found(session, ingested, plant, checks) -> None:
    session.execute(text(plant))
    found = check_consistency(session=session)
    assert all(found[check] >= 1 for check in checks), found
    assert all(n == 0 for name, n in found.items() if name not in checks), found


def test_a_new_number_twice_in_a_batch_gets_one_holder(session, factory, areas, tmp_path) -> None:
    """王芳 is known without a number; a batch then brings her new number in two rows. The row that
    did not win her (a person takes one new number once) joins her by that number: it once became a
    second person holding it, and its identifier row was silently dropped."""
    wang = hj("H1", "", "王芳", "女", "1990-03-03")
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), [wang]))
    rows = [
        hj(f"H{n}", "330102199003030025", "王芳", "女", "1990-03-03", when=f"2026-11-0{n}") for n in (2, 3)
    ]
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 2), rows))
    assert set(check_consistency(session=session).values()) == {0}
    assert session.scalar(select(func.count()).select_from(Person).where(Person.status != "retired")) == 1
    holders = session.scalars(
        select(Link.person_id).join(SourceRecord, SourceRecord.id == Link.source_record_id)
    ).all()
    assert len(holders) == 3 and len(set(holders)) == 1
