"""The gate's volume check: a batch far off the row counts of the same source's recent batches of its
kind (snapshot or increment) is quarantined; a snapshot does not count as an increment's history."""

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from exchange import flows
from registry.models import Batch
from registry.normalise.ids import check_char
from tests.feedfiles import hj, write_feed

DAY0 = date(2026, 11, 1)


def _rows(start: int, count: int, event: str, day: date) -> list[dict[str, str]]:
    rows = []
    for i in range(start, start + count):
        first17 = f"33010219800101{i:03d}"
        rows.append(
            hj(
                f"K{i}",
                first17 + check_char(first17),
                f"居民{i}",
                "男" if i % 2 else "女",
                "1980-01-01",
                event,
                day.isoformat(),
            )
        )
    return rows


def _ingest(
    factory: Callable[[], Session], tmp_path, day: date, rows: list[dict[str, str]], suffix: str = ""
) -> Batch:
    folder = tmp_path / f"{day.isoformat()}{suffix}"
    folder.mkdir()
    result = flows.ingest_file(factory, write_feed(folder, "gaj_hj", day, rows))
    with factory() as session:
        return session.get_one(Batch, result.batch_id)


def _volume_check(batch: Batch) -> dict[str, Any] | None:
    checks = (batch.gate_result or {}).get("checks", [])
    return next((c for c in checks if c["expectation"] == "expect_table_row_count_to_be_between"), None)


def test_an_increment_ten_times_its_usual_size_is_quarantined(factory, areas, tmp_path) -> None:
    snapshot = _ingest(factory, tmp_path, DAY0, _rows(0, 60, "在册", DAY0))
    assert snapshot.gate_result is not None
    assert snapshot.state == "completed", snapshot.gate_result["failed"]
    assert snapshot.gate_result["snapshot"] is True
    first = 100
    for n in range(1, 4):  # three increments of 4 rows: history enough for the check
        day = DAY0 + timedelta(days=n)
        batch = _ingest(factory, tmp_path, day, _rows(first, 4, "迁入", day))
        first += 4
        assert batch.state == "completed" and batch.gate_result is not None
        assert batch.gate_result["snapshot"] is False
        # the snapshot is not an increment's history: until three increments exist, no volume check
        assert _volume_check(batch) is None
    day = DAY0 + timedelta(days=4)
    big = _ingest(factory, tmp_path, day, _rows(first, 40, "迁入", day))
    check = _volume_check(big)
    assert big.state == "quarantined"
    assert check is not None and not check["success"]
    # median 4: × 0.3 and × 3.0 + 1 would be 1 … 13; within 20 rows of the median is never refused
    assert check["observed"] == 40 and check["bounds"] == [0, 24]
    usual = _ingest(factory, tmp_path, day, _rows(first + 40, 18, "迁入", day), suffix="_2")
    check = _volume_check(usual)  # 18 > 13, a small feed's day
    assert usual.state == "completed" and check is not None and check["success"]
