"""The consistency checks find nothing after a real ingest and find each planted break."""

from datetime import date

import pytest
from sqlalchemy import text

from exchange import flows
from registry.consistency import check_consistency
from tests.feedfiles import hj, write_feed


@pytest.fixture
def ingested(session, factory, areas, tmp_path) -> None:
    rows = [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01"), hj("H2", "", "", "男", "1980-01-01")]
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), rows))


def test_a_real_ingest_is_consistent(session, ingested) -> None:
    assert set(check_consistency(session=session).values()) == {0}


@pytest.mark.parametrize(
    ("plant", "check"),
    [
        ("UPDATE link SET person_id = -1", "link.person_id → person"),
        ("DELETE FROM link", "accepted record without link"),
        ("UPDATE batch SET rows_rejected = rows_rejected + 1", "batch accounting"),
        ("UPDATE change_event SET version_id = -5", "change_event.version_id → person_version"),
    ],
)
def test_each_break_is_found(session, ingested, plant, check) -> None:
    session.execute(text(plant))
    found = check_consistency(session=session)
    assert found[check] >= 1
    assert all(n == 0 for name, n in found.items() if name != check)
