"""The synthetic week of the monitoring tests: eight feeds over 2026-11-02 … 11-08 with the troubles
the monitor must see (a missing feed, a late feed, a failed gate, a spike of rejects, an aged review)."""

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from exchange import flows
from registry.models import ReviewItem, SourceRecord
from schemas.feed_spec import load_feed_specs
from tests.feedfiles import hj, write_feed

WEEK = [date(2026, 11, 2) + timedelta(days=i) for i in range(7)]
NOW = datetime(2026, 11, 9, 12, 0)  # the week evaluated on the Monday after, at noon
MISSING = ("wjw_sw", date(2026, 11, 4))  # never delivered
LATE = ("mzj_hy", date(2026, 11, 3))  # delivered 11-04 15:30, deadline 11-04 09:00
LATE_AT = datetime(2026, 11, 4, 15, 30)
SPIKE_DAY = date(2026, 11, 5)  # gaj_hj: 4 of 10 rows rejected
GATE_DAY = date(2026, 11, 6)  # gaj_hj: 40 rows against a median of 5: the volume check fails
REVIEW_DAY = date(2026, 11, 3)  # a review item on gaj_hj's batch of the day, opened 11-04 10:00
REVIEW_CREATED = datetime(2026, 11, 4, 10, 0)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_no(body: str) -> str:
    """An 18-digit citizen number with its check digit (GB 11643)."""
    total = sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def person(day: date, n: int) -> dict[str, str]:
    """A distinct valid gaj_hj row per day and number."""
    birth = date(1960, 1, 1) + timedelta(days=day.toordinal() % 1000 * 7 + n * 400)
    number = id_no(f"330102{birth:%Y%m%d}{(day.day * 10 + n) % 1000:03d}")
    return hj(f"K{day:%m%d}{n:02d}", number, f"测试{day.day}号{n}", "男" if n % 2 else "女", f"{birth}")


def gaj_rows(day: date) -> list[dict[str, str]]:
    """gaj_hj's file for the day."""
    if day == GATE_DAY:
        return [person(day, n) for n in range(40)]
    rows = [person(day, n) for n in range(5)]
    if day == SPIKE_DAY:
        rows += [rows[0], rows[1], rows[2]]  # the same lines again: DUPLICATE_ROW
        rows.append(hj("K_NOBODY", "", "", "男", "1990-01-01"))  # no number, no name: identifies nobody
    return rows


def build_week(session: Session, factory: Callable[[], Session], folder: Path) -> dict[str, int]:
    """Every feed's files for the week through the whole pipeline; deliveries on time at 07:00 the
    next morning unless the week says otherwise. Returns gaj_hj's batch id per day (ISO date)."""
    folder.mkdir(parents=True, exist_ok=True)
    gaj: dict[str, int] = {}
    for day in WEEK:
        for source in load_feed_specs():
            if (source, day) == MISSING:
                continue
            rows = gaj_rows(day) if source == "gaj_hj" else []
            done = flows.ingest_file(factory, write_feed(folder, source, day, rows))
            if source == "gaj_hj":
                gaj[day.isoformat()] = done.batch_id
            at = (
                LATE_AT
                if (source, day) == LATE
                else datetime.combine(day + timedelta(days=1), datetime.min.time()) + timedelta(hours=7)
            )
            session.execute(
                text("UPDATE delivery SET received_at = :at WHERE source = :s AND as_of_date = :d"),
                {"at": at, "s": source, "d": day},
            )
    review_batch = gaj[REVIEW_DAY.isoformat()]
    record = session.scalars(select(SourceRecord).where(SourceRecord.batch_id == review_batch)).first()
    assert record is not None
    session.add(
        ReviewItem(
            kind="probable_match",
            source_record_id=record.id,
            batch_id=review_batch,
            created_at=REVIEW_CREATED,
        )
    )
    session.flush()
    return gaj
