"""The batch gate judged by evidence: a share of bad values counts by the batch's size and against the
source's usual level; each check says in Chinese what it found and what was expected."""

import math
import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from base.db import transaction
from exchange import flows, gate, service
from registry.models import Batch
from registry.normalise.ids import check_char
from schemas.canonical import ColumnKind
from schemas.feed_spec import get_feed_spec
from tests.feedfiles import hj, write_feed

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition

DAY0 = date(2026, 11, 2)
ID_CHECK = ("expect_column_values_to_be_in_set", "id_no")
ID_FILLED = ("expect_column_values_to_not_be_null", "公民身份号码")


def _rows(start: int, count: int, day: date, *, bad: int = 0, blank: int = 0) -> list[dict[str, str]]:
    """`count` increment rows of distinct persons; the first `bad` with a wrong check digit, the next
    `blank` without an ID number."""
    rows = []
    for i in range(start, start + count):
        birth = date(1960, 1, 1) + timedelta(days=i // 400)
        first17 = f"330102{birth:%Y%m%d}{i % 400 + 100:03d}"
        id_no = first17 + check_char(first17)
        if i - start < bad:
            id_no = first17 + ("1" if check_char(first17) != "1" else "2")
        elif i - start < bad + blank:
            id_no = ""
        sex = "男" if int(first17[-1]) % 2 else "女"
        rows.append(hj(f"K{i}", id_no, f"居民{i}", sex, birth.isoformat(), "迁入", day.isoformat()))
    return rows


def _gate(
    factory: Callable[[], Session],
    tmp_path: Path,
    day: date,
    rows: list[dict[str, str]],
    seq: int | None = None,
) -> Batch:
    """Receive, parse and gate one gaj_hj file (the later steps are not the gate's business)."""
    folder = tmp_path / f"{day.isoformat()}_{seq or 1}"
    folder.mkdir()
    path = write_feed(folder, "gaj_hj", day, rows, seq=seq)
    with transaction(factory) as session:
        batch_id = service.receive_file(session=session, path=path).batch.id
    flows.run_step(factory, "parse", batch_id)
    flows.run_step(factory, "gate", batch_id)
    with factory() as session:
        return session.get_one(Batch, batch_id)


def _check(batch: Batch, key: tuple[str, str]) -> dict[str, Any]:
    assert batch.gate_result is not None
    return next(c for c in batch.gate_result["checks"] if (c["expectation"], c["column"]) == key)


def test_a_small_clean_file_passes(factory, areas, tmp_path) -> None:
    batch = _gate(factory, tmp_path, DAY0, _rows(0, 20, DAY0))
    assert batch.gate_result is not None
    assert batch.state == "gated" and batch.gate_result["success"] is True
    check = _check(batch, ID_CHECK)
    assert check["success"] and check["rows"] == 20 and check["unexpected_count"] == 0
    assert check["message"] == (
        "身份证号码合规率 100.0%（20 行中 0 行不合规），按数据规范（不低于 98.0%）和 99.9% 置信度，应不低于 98.0%"
    )


def test_a_few_bad_values_in_a_small_file_are_no_evidence(factory, areas, tmp_path) -> None:
    # 4 wrong check digits in 40 rows (10 % against 2 % tolerated) and, as in a day's death
    # certificates, 4 blank ID numbers in 47 rows (8.5 % against 1 %): the fixed-share gate quarantined both
    batch = _gate(factory, tmp_path, DAY0, _rows(0, 40, DAY0, bad=4))
    assert batch.gate_result is not None
    assert batch.state == "gated", [c["message"] for c in batch.gate_result["failed"]]
    check = _check(batch, ID_CHECK)
    assert check["success"] and check["unexpected_count"] == 4
    assert check["message"].startswith("身份证号码合规率 90.0%（40 行中 4 行不合规）")
    assert check["message"].endswith("应不低于 98.0%；本批行数太少，尚不能以 99.9% 置信度认定超标")
    blanks = _gate(factory, tmp_path, DAY0, _rows(100, 47, DAY0, blank=4), seq=2)
    assert blanks.state == "gated"
    assert _check(blanks, ID_FILLED)["message"].startswith(
        "必填列「公民身份号码」空值率 8.5%（47 行中 4 行为空）"
    )


def test_the_same_share_in_a_large_file_is_quarantined(factory, areas, tmp_path) -> None:
    batch = _gate(factory, tmp_path, DAY0, _rows(0, 800, DAY0, bad=60))
    assert batch.state == "quarantined" and batch.gate_result is not None
    assert [(c["expectation"], c["column"]) for c in batch.gate_result["failed"]] == [ID_CHECK]
    check = _check(batch, ID_CHECK)
    # the message names the check, the figure and the expectation
    assert check["message"] == (
        "身份证号码合规率 92.5%（800 行中 60 行不合规），按数据规范（不低于 98.0%）和 99.9% 置信度，应不低于 98.0%"
    )
    assert math.isclose(check["spec_share"], 0.02) and check["tolerated_share"] == check["spec_share"]
    assert check["usual"] is None


def test_a_source_that_always_sends_some_bad_ids_is_judged_by_its_usual_level(
    factory, areas, tmp_path
) -> None:
    first = 0
    for n in range(3):  # 5 % bad IDs where 2 % is tolerated: quarantined, and released by an operator
        day = DAY0 + timedelta(days=n)
        batch = _gate(factory, tmp_path, day, _rows(first, 700, day, bad=35))
        assert batch.state == "quarantined"
        with transaction(factory) as session:
            gate.release_batch(session=session, batch_id=batch.id, actor="操作员", note="该部门一贯如此")
        first += 700
    # the releases taught the gate the source's usual level: the same share no longer stops the run
    day = DAY0 + timedelta(days=3)
    usual = _gate(factory, tmp_path, day, _rows(first, 700, day, bad=35))
    check = _check(usual, ID_CHECK)
    assert usual.state == "gated", check["message"]
    assert check["usual"] == {"batches": 3, "rows": 2100, "bad": 105}
    assert math.isclose(check["tolerated_share"], 0.10)  # twice the usual level
    assert "本数据源近 3 批的水平（95.0%）" in check["message"] and check["message"].endswith(
        "应不低于 90.0%"
    )
    first += 700
    worse = _gate(factory, tmp_path, day, _rows(first, 700, day, bad=140), seq=2)  # 20 %: far off its usual
    assert worse.state == "quarantined" and not _check(worse, ID_CHECK)["success"]


def test_a_clean_source_is_quarantined_far_above_its_usual_level_even_within_the_spec(
    factory, areas, tmp_path
) -> None:
    first = 0
    for n in range(3):  # three clean days of 400 rows
        day = DAY0 + timedelta(days=n)
        assert _gate(factory, tmp_path, day, _rows(first, 400, day)).state == "gated"
        first += 400
    day = DAY0 + timedelta(days=3)
    batch = _gate(factory, tmp_path, day, _rows(first, 1000, day, bad=15))  # 1.5 %: within the spec's 2 %
    check = _check(batch, ID_CHECK)
    assert batch.state == "quarantined"
    assert check["tolerated_share"] == gate.USUAL_MARGIN
    assert check["message"] == (
        "身份证号码合规率 98.5%（1000 行中 15 行不合规），按数据规范（不低于 98.0%）、本数据源近 3 批的水平"
        "（100.0%）和 99.9% 置信度，应不低于 99.5%"
    )


def test_an_empty_day_passes_with_nothing_to_judge(factory, areas, tmp_path) -> None:
    batch = _gate(factory, tmp_path, DAY0, [])
    assert batch.gate_result is not None
    assert batch.state == "gated" and batch.gate_result["checks"] == [] and batch.gate_result["rows"] == 0


# The algebra, without a database.

counts = st.integers(min_value=1, max_value=3000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
shares = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(st.integers(min_value=1, max_value=60), st.data(), st.floats(min_value=0.001, max_value=0.999))
def test_the_tail_is_the_binomial_sum(rows, data, share) -> None:
    bad = data.draw(st.integers(min_value=0, max_value=rows))
    exact = sum(math.comb(rows, j) * share**j * (1 - share) ** (rows - j) for j in range(bad, rows + 1))
    assert math.isclose(gate.tail_probability(bad, rows, share), exact, rel_tol=1e-9, abs_tol=1e-15)


@given(counts, shares)
def test_the_tail_shrinks_with_more_bad_values_and_grows_with_the_share(count, share) -> None:
    bad, rows = count
    tail = gate.tail_probability(bad, rows, share)
    assert 0.0 <= tail <= 1.0
    if bad < rows:
        assert gate.tail_probability(bad + 1, rows, share) <= tail + 1e-12
    assert gate.tail_probability(bad, rows, min(1.0, share + 0.01)) >= tail - 1e-12


@given(counts)
def test_the_bound_is_monotone_in_bad_values_and_below_the_observed_share(count) -> None:
    bad, rows = count
    bound = gate.lower_bound(bad, rows)
    assert 0.0 <= bound <= bad / rows
    if bad < rows:
        assert gate.lower_bound(bad + 1, rows) >= bound


@given(counts, st.integers(min_value=2, max_value=20))
def test_the_bound_tightens_with_more_rows(count, times) -> None:
    bad, rows = count
    # the same share in a larger batch: the evidence only grows
    assert gate.lower_bound(bad * times, rows * times) >= gate.lower_bound(bad, rows) - 1e-12


@given(counts, shares)
def test_the_verdict_follows_the_bound_and_more_bad_values_never_pass_a_failed_batch(
    count, tolerated
) -> None:
    bad, rows = count
    failed = gate.too_many(bad, rows, tolerated)
    assert failed == (bad >= gate.MIN_BAD_ROWS and gate.lower_bound(bad, rows) > tolerated)
    if failed and bad < rows:
        assert gate.too_many(bad + 1, rows, tolerated)
    assert not gate.too_many(0, rows, tolerated)  # a batch that is all good never fails


@given(
    shares, st.integers(min_value=1, max_value=30), st.integers(min_value=200, max_value=10_000), st.data()
)
def test_the_tolerated_share_lies_between_the_spec_and_the_usual_level(spec, batches, rows, data) -> None:
    bad = data.draw(st.integers(min_value=0, max_value=rows))
    usual = gate.Usual(batches=batches, rows=rows, bad=bad)
    tolerated = gate.tolerated_share(spec, usual)
    assert gate.tolerated_share(spec, None) == spec
    assert gate.USUAL_FACTOR * usual.share <= tolerated <= gate.USUAL_FACTOR * usual.share + gate.USUAL_MARGIN
    assert tolerated == spec or not (
        gate.USUAL_FACTOR * usual.share < spec < gate.USUAL_FACTOR * usual.share + gate.USUAL_MARGIN
    )


def _frame(ids: list[bool | None], names: list[bool | None]) -> gate.Frame:
    """A gaj_hj batch as the gate sees it: filled flags and conformance per kind."""
    columns = ["req:公民身份号码", "req:姓名", "kind:id_no", "kind:name"]
    return gate.Frame(
        columns,
        [
            (True if i is not None else None, True if n is not None else None, i, n)
            for i, n in zip(ids, names)
        ],
    )


cells = st.sampled_from([True, True, True, True, False, None])


@settings(max_examples=25)  # each example runs Great Expectations twice
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=300), st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_the_row_order(rows, rng: random.Random) -> None:
    spec = get_feed_spec("gaj_hj")
    history = gate.History([], [])
    shuffled = rows[:]
    rng.shuffle(shuffled)
    judged = [
        [gate.judge(c, spec, history) for c in gate.measure(spec, _frame(*map(list, zip(*order))), None)]
        for order in (rows, shuffled)
    ]
    assert judged[0] == judged[1]
    if all(i is True and n is True for i, n in rows):  # all good: every check passes
        assert all(c["success"] for c in judged[0])


@settings(max_examples=25)  # each example runs Great Expectations once per frame
@given(
    st.lists(st.tuples(cells, cells), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=25),
    st.integers(min_value=0, max_value=70),
    st.integers(min_value=0, max_value=70),
)
def test_a_batch_read_a_frame_at_a_time_counts_as_one_frame(rows, size, low, high) -> None:
    """The gate reads a batch FRAME_ROWS at a time (its memory does not grow with the batch): the
    frames' counts add up to the whole frame's, and the row count's verdict on the last frame is the batch's."""
    spec = get_feed_spec("gaj_hj")
    volume = gate.VolumeBounds(low=min(low, high), high=max(low, high), median=30, batches=5)
    whole = _frame(*map(list, zip(*rows)))
    frames = [gate.Frame(whole.columns, whole.rows[i : i + size]) for i in range(0, len(whole), size)]
    assert gate.measure(spec, frames, volume) == gate.measure(spec, whole, volume)


def test_the_gate_streams_a_batch_with_the_same_verdict(factory, areas, tmp_path, monkeypatch) -> None:
    """Through the database, a frame of 4 rows at a time: the same checks as in one frame."""
    results = []
    for frame_rows, day in ((gate.FRAME_ROWS, DAY0), (4, DAY0 + timedelta(days=1))):
        monkeypatch.setattr(gate, "FRAME_ROWS", frame_rows)
        batch = _gate(factory, tmp_path, day, _rows(0, 30, day, bad=2, blank=3))
        assert batch.gate_result is not None
        results.append(batch.gate_result["checks"])
    assert results[0] == results[1] and len(results[0]) > 1


def ge_counts(spec, rows: gate.Frame, volume, before: int) -> list[gate.Count]:
    """The suite run by Great Expectations itself on the frame in pandas, as the gate ran it before it
    counted the suite on its own (commit b8cf86a): the oracle of gate.count_frame."""
    import great_expectations as gx

    global _GE_FRAMES
    frame = pd.DataFrame.from_records(rows.rows, columns=rows.columns)
    expectations: list[gx.expectations.Expectation] = []
    for col in frame.columns:
        kind, _, name = col.partition(":")
        if kind == "req":
            expectations.append(
                gx.expectations.ExpectColumnValuesToNotBeNull(column=col, mostly=1 - spec.gate.max_null_rate)
            )
        else:
            expectations.append(
                gx.expectations.ExpectColumnValuesToBeInSet(
                    column=col, value_set=[True], mostly=spec.gate.min_conformance[ColumnKind(name)]
                )
            )
    if volume:
        expectations.append(
            gx.expectations.ExpectTableRowCountToBeBetween(
                min_value=max(volume.low - before, 0), max_value=max(volume.high - before, 0)
            )
        )
    suite = gx.ExpectationSuite(name=f"feed_{spec.source}", expectations=expectations)
    if _GE_FRAMES is None:
        context = gx.get_context(mode="ephemeral")
        asset = context.data_sources.add_pandas("popex").add_dataframe_asset(name="frame")
        _GE_FRAMES = asset.add_batch_definition_whole_dataframe("batch")
    results = _GE_FRAMES.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format="BASIC"
    )
    counts = []
    for result in results.results:
        config = result.expectation_config
        assert config is not None
        column = config.kwargs.get("column")
        found = result.result
        counts.append(
            gate.Count(
                expectation=config.type,
                column=column.partition(":")[2] if column else None,
                rows=int(found.get("element_count") or 0) - int(found.get("missing_count") or 0),
                bad=int(found.get("unexpected_count") or 0),
                success=bool(result.success),
                observed=before + found["observed_value"] if config.type == gate.ROW_COUNT else None,
            )
        )
    return counts


_GE_FRAMES: "BatchDefinition[Any] | None" = None
MIXES = [[True], [True] * 30 + [None, False], [True, None], [None], [False], [False, None]]


def _columns(spec) -> list[str]:
    """The gate's columns for a feed: filled per required header, conformance per kind."""
    kinds = dict.fromkeys(c.kind for c in spec.columns if c.kind in spec.gate.min_conformance)
    return [f"req:{c.name}" for c in spec.columns if c.required] + [f"kind:{k}" for k in kinds]


@settings(max_examples=40, deadline=None)  # each example runs Great Expectations once
@given(
    st.sampled_from(["gaj_hj", "gaj_ld", "rsj_cb", "wjw_cs", "jyj_xj"]),
    st.data(),
    st.integers(min_value=0, max_value=80),
    st.integers(min_value=0, max_value=80),
    st.integers(min_value=0, max_value=40),
    st.booleans(),
)
def test_the_suite_counted_by_the_gate_is_what_great_expectations_counts(
    source, data, low, high, before, with_volume
) -> None:
    """Counts, verdicts and their order on frames of every feed's columns: mostly filled, half empty,
    all empty, all bad, one row."""
    spec = get_feed_spec(source)
    rows = data.draw(st.integers(min_value=1, max_value=120))
    values = []
    for col in _columns(spec):
        mix = data.draw(st.sampled_from(MIXES))
        cells = data.draw(st.lists(st.sampled_from(mix), min_size=rows, max_size=rows))
        values.append(cells if col.startswith("kind:") else [None if v is None else True for v in cells])
    frame = gate.Frame(_columns(spec), list(zip(*values)))
    volume = gate.VolumeBounds(min(low, high), max(low, high), 30, 5) if with_volume else None
    assert gate.count_frame(spec, frame, volume, before) == ge_counts(spec, frame, volume, before)


def test_a_share_exactly_at_the_suites_mostly_is_what_great_expectations_says() -> None:
    """At, one value under and one over each check's `mostly` (the float comparison GE makes)."""
    spec = get_feed_spec("gaj_hj")
    columns = _columns(spec)
    for rows in (100, 200, 1000):
        for shift in (-1, 0, 1):
            values: list[Sequence[bool | None]] = []
            for col in columns:
                if col.startswith("req:"):
                    bad = max(round(spec.gate.max_null_rate * rows) + shift, 0)
                    values.append([None] * bad + [True] * (rows - bad))
                else:
                    bad = max(round((1 - spec.gate.min_conformance[ColumnKind(col[5:])]) * rows) + shift, 0)
                    values.append([False] * bad + [True] * (rows - bad))
            frame = gate.Frame(columns, list(zip(*values)))
            volume = gate.VolumeBounds(rows - shift, rows + 5, rows, 5)
            assert gate.count_frame(spec, frame, volume, 0) == ge_counts(spec, frame, volume, 0), (
                rows,
                shift,
            )
