"""The batch gate: a suite of Great Expectations' expectations per feed, counted on the staged rows
before anything is merged.

The suite is built from the feed spec: every required column filled, conformance per column kind (the
filled cells the normalisers accepted) and the row count against recent batches of the same source and
kind (snapshot or increment: within the spec's ratios of their median, or within VOLUME_SLACK_ROWS of
it). The gate counts the suite itself, with GE's semantics (`count_frame`; a test runs GE 1.x beside it
and compares counts and verdicts), so a process does not pay GE's import and context (~3 s, most of
a small file's cost). It judges a rate by its evidence, not by its share alone: a check
fails when, at 99.9 % confidence (the one-sided exact binomial lower bound of the bad share,
Clopper–Pearson), the batch's true bad share is above the share tolerated. Three blank ID numbers in
47 rows are no such evidence; the same share in 45,000 rows is. The tolerated share is the spec's,
moved toward the source's usual level when its recent accepted batches show one (`tolerated_share`):
a source whose files always carry 2 % blanks is not quarantined for 2 %, and a batch far above a clean
source's usual level is, even below the spec's share. A failed gate quarantines the batch with its
reasons in Chinese (check, figure, expectation); an operator can release it.
"""

import logging
import math
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from exchange import service
from registry import batches
from registry.audit import record_audit
from registry.models import Batch
from schemas.canonical import RELEASE, BatchState, ColumnKind
from schemas.feed_spec import FeedSpec, get_feed_spec

log = logging.getLogger(__name__)
HISTORY = 7  # recent batches the volume check compares with
MIN_HISTORY = 3  # fewer than this and the volume check is skipped, and a source has no usual level
# The volume check never fails a batch within this many rows of the median: a feed of a few rows a
# day (deaths, births) varies by more than its ratios allow from one day to the next.
VOLUME_SLACK_ROWS = 20
CONFIDENCE = 0.999  # a rate check fails only when the evidence is this sure that the bad share is too high
MIN_BAD_ROWS = 3  # … and never for fewer bad rows than this (a spec tolerating none still lets 2 pass)
RATE_HISTORY = 30  # recent accepted batches whose pooled bad shares are the source's usual level
MIN_HISTORY_ROWS = 200  # values those batches must hold between them before their level counts
# With a usual level u, the tolerated share is the spec's, but at least USUAL_FACTOR × u (a source is
# not refused for its usual dirt) and at most USUAL_FACTOR × u + USUAL_MARGIN (far above its usual is
# suspicious even within the spec).
USUAL_FACTOR = 2.0
USUAL_MARGIN = 0.005
ACCEPTED = [
    str(s)
    for s in (
        BatchState.GATED,
        BatchState.RESOLVED,
        BatchState.MERGED,
        BatchState.PUBLISHED,
        BatchState.COUNTED,
        BatchState.COMPLETED,
    )
]  # the gate let them through, or an operator released them: what the source usually sends

NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"
ROW_COUNT = "expect_table_row_count_to_be_between"
KIND_LABELS = {
    ColumnKind.TEXT: "文本",
    ColumnKind.ID_NO: "身份证号码",
    ColumnKind.DOC_TYPE: "证件类型",
    ColumnKind.DOC_NO: "证件号码",
    ColumnKind.NAME: "姓名",
    ColumnKind.SEX: "性别",
    ColumnKind.ETHNICITY: "民族",
    ColumnKind.DATE: "日期",
    ColumnKind.AREA_CODE: "区划代码",
    ColumnKind.PHONE: "电话号码",
    ColumnKind.EVENT: "变动类型",
}


def tail_probability(bad: int, rows: int, share: float) -> float:
    """P(X ≥ bad) for X ~ Binomial(rows, share): the chance of `bad` or more bad values among `rows`
    if the true bad share were `share`."""
    if bad <= 0 or share >= 1:
        return 1.0
    if bad > rows or share <= 0:
        return 0.0
    if bad > rows * share:
        return min(1.0, _sum_terms(bad, rows, share, 1))
    return max(0.0, 1.0 - _sum_terms(bad - 1, rows, share, -1))


def _sum_terms(start: int, rows: int, share: float, step: int) -> float:
    """Σ P(X = j) from j = start away from the mode (where the terms only shrink) until they stop counting."""
    log_p, log_q, log_n = math.log(share), math.log1p(-share), math.lgamma(rows + 1)
    total, j = 0.0, start
    while 0 <= j <= rows:
        log_term = log_n - math.lgamma(j + 1) - math.lgamma(rows - j + 1) + j * log_p + (rows - j) * log_q
        term = math.exp(log_term)
        total += term
        if term <= total * 1e-17:
            break
        j += step
    return total


def lower_bound(bad: int, rows: int, confidence: float = CONFIDENCE) -> float:
    """The smallest bad share that `bad` bad values of `rows` do not rule out at `confidence`
    (one-sided Clopper–Pearson): with that confidence, the true share is at least this."""
    if bad <= 0 or rows <= 0:
        return 0.0
    low, high = 0.0, min(bad, rows) / rows
    for _ in range(50):  # bisection: the tail probability grows with the share
        mid = (low + high) / 2
        if tail_probability(bad, rows, mid) < 1 - confidence:
            low = mid
        else:
            high = mid
    return low


def too_many(bad: int, rows: int, tolerated: float) -> bool:
    """Whether `bad` of `rows` is evidence, at CONFIDENCE, of a true bad share above `tolerated`."""
    return bad >= MIN_BAD_ROWS and lower_bound(bad, rows) > tolerated


@dataclass(frozen=True)
class Usual:
    """A source's usual level for one check: its recent accepted batches' values, pooled."""

    batches: int
    rows: int
    bad: int

    @property
    def share(self) -> float:
        """The pooled bad share."""
        return self.bad / self.rows


def tolerated_share(spec_share: float, usual: Usual | None) -> float:
    """The bad share a batch may have: the spec's, moved toward the source's usual level (see USUAL_FACTOR)."""
    if usual is None:
        return spec_share
    return min(max(spec_share, USUAL_FACTOR * usual.share), USUAL_FACTOR * usual.share + USUAL_MARGIN)


# Rows of a batch in one frame: the gate reads and counts a batch a frame at a time (a server-side
# cursor), so its memory is that of about two frames whatever the batch's size, and the counts of the
# frames add up to the batch's.
FRAME_ROWS = 50_000


@dataclass(frozen=True)
class Frame:
    """Rows of a batch as the gate reads them: per row, a value per column (None: empty)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.rows)


def _frames(session: Session, batch_id: int, spec: FeedSpec) -> Iterator[Frame]:
    """The staged records, FRAME_ROWS at a time: filled flag per required column, conformance per kind."""
    columns = []
    params: dict[str, Any] = {"b": batch_id}
    for i, col in enumerate(spec.columns):
        params[f"c{i}"] = col.name
        params[f"s{i}"] = f"%:{col.name}"
        if col.required:
            columns.append(f'CASE WHEN raw ? :c{i} THEN true END AS "req:{col.name}"')
    kinds: dict[str, list[int]] = {}
    for i, col in enumerate(spec.columns):
        if col.kind in spec.gate.min_conformance:
            kinds.setdefault(col.kind, []).append(i)
    for kind, idx in kinds.items():
        filled = " OR ".join(f"raw ? :c{i}" for i in idx)
        bad = " OR ".join(f"(raw ? :c{i} AND reasons::text LIKE '%' || :s{i} || '\"%')" for i in idx)
        columns.append(
            f'CASE WHEN NOT ({filled}) THEN NULL WHEN {bad} THEN false ELSE true END AS "kind:{kind}"'
        )
    sql = f"SELECT {', '.join(columns)} FROM source_record WHERE batch_id = :b"
    found = session.execute(text(sql).execution_options(stream_results=True), params)  # a server-side cursor
    names = list(found.keys())
    for part in found.partitions(FRAME_ROWS):
        yield Frame(names, [tuple(row) for row in part])


def _size(session: Session, batch_id: int) -> tuple[int, int]:
    """The batch's staged rows, and how many of them are snapshot rows."""
    rows, snapshots = session.execute(
        text(
            "SELECT count(*), count(*) FILTER (WHERE event = 'snapshot') FROM source_record WHERE batch_id = :b"
        ),
        {"b": batch_id},
    ).one()
    return int(rows), int(snapshots)


@dataclass(frozen=True)
class VolumeBounds:
    """The row counts the volume check accepts, from the median of the source's recent batches."""

    low: int
    high: int
    median: float
    batches: int


@dataclass(frozen=True)
class History:
    """The source's recent accepted batches of the batch's kind (snapshot or increment), newest first."""

    rows_received: list[int]
    checks: list[list[dict[str, Any]]]

    def volume(self, spec: FeedSpec) -> VolumeBounds | None:
        """Bounds from the median row count of the last HISTORY batches; None with fewer than MIN_HISTORY."""
        recent = self.rows_received[:HISTORY]
        if len(recent) < MIN_HISTORY:
            return None
        median = statistics.median(recent)
        low = min(int(median * spec.volume.min_rows_ratio), int(median) - VOLUME_SLACK_ROWS)
        high = max(int(median * spec.volume.max_rows_ratio) + 1, int(median) + VOLUME_SLACK_ROWS)
        return VolumeBounds(max(low, 0), high, median, len(recent))

    def usual(self, expectation: str, column: str | None) -> Usual | None:
        """The pooled level of one check over the batches that recorded its counts, when there is enough."""
        found = [
            (int(c["rows"]), int(c["unexpected_count"] or 0))
            for checks in self.checks
            for c in checks
            if c.get("expectation") == expectation and c.get("column") == column and c.get("rows") is not None
        ]
        rows = sum(r for r, _ in found)
        if len(found) < MIN_HISTORY or rows < MIN_HISTORY_ROWS:
            return None
        return Usual(batches=len(found), rows=rows, bad=sum(b for _, b in found))


def _history(session: Session, batch: Batch, spec: FeedSpec, snapshot: bool) -> History:
    """The last RATE_HISTORY accepted batches of the same source and kind.

    The kind (snapshot or increment) of an earlier batch is the one its own gate found: counting its
    snapshot rows again took a scan of source_record per earlier batch (3 s per daily file at
    1,000,000 persons, where the planner's estimate for one batch's rows was the table's average).
    """
    recent = session.execute(
        text(
            """
            SELECT b.rows_received, COALESCE(b.gate_result -> 'checks', '[]') AS checks FROM batch b
            WHERE b.source = :s AND b.id <> :b AND b.state = ANY(:accepted)
              AND CAST(b.gate_result ->> 'snapshot' AS boolean) = :snap
            ORDER BY b.as_of_date DESC, b.id DESC LIMIT :n
            """
        ),
        {"s": spec.source, "b": batch.id, "accepted": ACCEPTED, "snap": snapshot, "n": RATE_HISTORY},
    ).all()
    return History([r.rows_received for r in recent], [r.checks for r in recent])


@dataclass(frozen=True)
class Count:
    """What the suite counted for one expectation (as Great Expectations counts it)."""

    expectation: str
    column: str | None  # the header (filled), the column kind (conformance), None (row count)
    rows: int  # values examined: every row, or the filled cells of the kind
    bad: int  # values that failed the expectation
    success: bool  # the suite's own verdict (Great Expectations'): final for the row count only
    observed: Any  # the row count


def count_frame(spec: FeedSpec, frame: Frame, volume: VolumeBounds | None, before: int = 0) -> list[Count]:
    """The feed's suite counted on one frame, exactly as Great Expectations 1.x counts it on the frame
    in pandas (the suite's verdicts too, `mostly` the spec's share; tests/exchange/test_gate.py runs
    GE's suite beside it): each `req:<header>` filled (every row examined, the empty ones bad), each
    `kind:<kind>` conforming (the filled cells examined, those not True bad), and the row count within
    the volume bounds when there are any. Counted here, a process spares GE's import and context
    (~3 s) and pandas' (0.3 s CPU).

    `before`: rows of the batch in earlier frames; the row count is then checked on the batch's last
    frame with the bounds less those rows (a frame of n rows is within them exactly when the batch is)."""
    rows = len(frame)
    counts = []
    for i, col in enumerate(frame.columns):
        kind, _, name = col.partition(":")
        empty = sum(1 for row in frame.rows if row[i] is None)
        if kind == "req":
            examined, bad, mostly = rows, empty, 1 - spec.gate.max_null_rate
            expectation = NOT_NULL
        else:
            examined, mostly = rows - empty, spec.gate.min_conformance[ColumnKind(name)]
            bad = sum(1 for row in frame.rows if row[i] is not None and row[i] is not True)
            expectation = IN_SET
        # GE: a check with nothing to examine holds; else the share of good values against `mostly`.
        success = examined == 0 or (float(examined) - float(bad)) / float(examined) >= mostly
        counts.append(Count(expectation, name, examined, bad, success, None))
    if volume:
        low, high = max(volume.low - before, 0), max(volume.high - before, 0)
        counts.append(Count(ROW_COUNT, None, 0, 0, low <= rows <= high, before + rows))
    return counts


def measure(spec: FeedSpec, frames: Frame | Iterable[Frame], volume: VolumeBounds | None) -> list[Count]:
    """Count the feed's suite on the batch's frame, or on its frames one after the other (none empty);
    per expectation: the frames' counts added up, the row count judged on the last."""
    parts = iter([frames] if isinstance(frames, Frame) else frames)
    totals: dict[tuple[str, str | None], Count] = {}
    before = 0
    frame = next(parts, None)
    while frame is not None:
        following = next(parts, None)  # the row count is checked with the last frame
        for count in count_frame(spec, frame, volume if following is None else None, before):
            earlier = totals.get((count.expectation, count.column))
            if earlier is not None:  # rates: the suite's verdict per frame, not used (judge_rate)
                count = Count(
                    count.expectation,
                    count.column,
                    earlier.rows + count.rows,
                    earlier.bad + count.bad,
                    earlier.success and count.success,
                    None,
                )
            totals[(count.expectation, count.column)] = count
        before += len(frame)
        frame = following
    return list(totals.values())


def _pct(share: float) -> str:
    """A share as a percentage, one decimal (two where one would round a share to 0 % or 100 %)."""
    text = f"{share:.1%}"
    return f"{share:.2%}" if 0 < share < 1 and text in ("0.0%", "100.0%") else text


def _shown(expectation: str, share: float) -> str:
    """A bad share as its check states it: the null rate itself, a conformance rate as its complement."""
    return _pct(share if expectation == NOT_NULL else 1 - share)


def _rate_message(
    count: Count, spec_share: float, usual: Usual | None, tolerated: float, success: bool
) -> str:
    """The check, its figure and the expectation in one Chinese sentence."""
    share = count.bad / count.rows if count.rows else 0.0
    if count.expectation == NOT_NULL:
        figure = f"必填列「{count.column}」空值率 {_shown(NOT_NULL, share)}（{count.rows} 行中 {count.bad} 行为空）"
        want = "不高于"
    else:
        label = KIND_LABELS[ColumnKind(str(count.column))]
        figure = f"{label}合规率 {_shown(IN_SET, share)}（{count.rows} 行中 {count.bad} 行不合规）"
        want = "不低于"
    basis = f"数据规范（{want} {_shown(count.expectation, spec_share)}）"
    if usual:
        basis += f"、本数据源近 {usual.batches} 批的水平（{_shown(count.expectation, usual.share)}）"
    message = (
        f"{figure}，按{basis}和 {CONFIDENCE:.1%} 置信度，应{want} {_shown(count.expectation, tolerated)}"
    )
    if success and share > tolerated:
        message += f"；本批行数太少，尚不能以 {CONFIDENCE:.1%} 置信度认定超标"
    return message


def judge_rate(count: Count, spec: FeedSpec, history: History) -> dict[str, Any]:
    """A filled or conformance check: failed when the evidence puts the bad share above the tolerated."""
    if count.expectation == NOT_NULL:
        spec_share = spec.gate.max_null_rate
    else:
        spec_share = 1 - spec.gate.min_conformance[ColumnKind(str(count.column))]
    usual = history.usual(count.expectation, count.column)
    tolerated = tolerated_share(spec_share, usual)
    success = not too_many(count.bad, count.rows, tolerated)
    return {
        "expectation": count.expectation,
        "column": count.column,
        "success": success,
        "observed": _shown(count.expectation, count.bad / count.rows) if count.rows else None,
        "rows": count.rows,
        "unexpected_count": count.bad,
        "unexpected_percent": 100 * count.bad / count.rows if count.rows else None,
        "mostly": 1 - tolerated,
        "spec_share": spec_share,
        "tolerated_share": tolerated,
        "usual": {"batches": usual.batches, "rows": usual.rows, "bad": usual.bad} if usual else None,
        "bounds": None,
        "message": _rate_message(count, spec_share, usual, tolerated, success),
    }


def judge_volume(count: Count, volume: VolumeBounds) -> dict[str, Any]:
    """The row count, as Great Expectations found it against the bounds."""
    return {
        "expectation": count.expectation,
        "column": None,
        "success": count.success,
        "observed": count.observed,
        "unexpected_count": None,
        "unexpected_percent": None,
        "mostly": None,
        "bounds": [volume.low, volume.high],
        "message": f"行数 {count.observed}，按本数据源近 {volume.batches} 批同类批次的中位数（{volume.median:g} 行），"
        f"应在 {volume.low}–{volume.high} 行之间",
    }


def judge(count: Count, spec: FeedSpec, history: History) -> dict[str, Any]:
    """One check's verdict and its Chinese sentence."""
    volume = history.volume(spec)
    if count.expectation == ROW_COUNT and volume:
        return judge_volume(count, volume)
    return judge_rate(count, spec, history)


def decide(
    *, session: Session, batch: Batch, checks: list[dict[str, Any]], snapshot: bool, rows: int
) -> dict[str, Any]:
    """Store the checks on the batch and move it to gated, or to quarantined (audited) when one failed."""
    failed = [c for c in checks if not c["success"]]
    gate = {
        **(batch.gate_result or {}),
        "success": not failed,
        "snapshot": snapshot,
        "rows": rows,
        "checks": checks,
        "failed": failed,
    }
    batch.gate_result = gate
    batches.advance(
        session, batch.id, to=BatchState.QUARANTINED if failed else BatchState.GATED, expect=BatchState.PARSED
    )
    if failed:
        record_audit(
            session=session,
            actor="pipeline",
            action="batch.quarantined",
            object_type="batch",
            object_id=str(batch.id),
            detail={"failed": [f"{c['expectation']}:{c['column']}" for c in failed]},
        )
    session.flush()
    return gate


def run_gate(*, session: Session, batch_id: int, outbox: Path | str | None = None) -> dict[str, Any]:
    """Validate the staged batch with its feed's suite; move it to gated or quarantined (its receipt,
    saying why, goes to the outbox at once: exchange.service.write_receipts)."""
    batch = session.get_one(Batch, batch_id, with_for_update=True)
    if batch.state != "parsed":
        return batch.gate_result or {}
    spec = get_feed_spec(batch.source)
    rows, snapshots = _size(session, batch_id)
    snapshot = snapshots * 2 > rows
    checks = []
    if rows:  # a day with nothing to report has nothing to judge
        history = _history(session, batch, spec, snapshot)
        counts = measure(spec, _frames(session, batch_id, spec), history.volume(spec))
        checks = [judge(count, spec, history) for count in counts]
    gate = decide(session=session, batch=batch, checks=checks, snapshot=snapshot, rows=rows)
    if not gate["success"]:
        service.write_receipts(session=session, batch_id=batch_id, outbox=outbox)
    return gate


def release_batch(*, session: Session, batch_id: int, actor: str, note: str) -> Batch:
    """An operator releases a quarantined batch after checking it; audited."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.state != BatchState.QUARANTINED:
        raise ValueError(f"批次 {batch_id} 不存在或不在隔离状态")
    batches.advance(session, batch_id, to=RELEASE[1], expect=RELEASE[0])
    batch.gate_result = {**(batch.gate_result or {}), "released_by": actor, "release_note": note}
    record_audit(
        session=session,
        actor=actor,
        action="batch.released",
        object_type="batch",
        object_id=str(batch_id),
        detail={"note": note},
    )
    session.flush()
    return batch
