"""The batch gate: a Great Expectations suite per feed, run on the staged rows before anything is merged.

The suite is built from the feed spec: every required column filled (null rate ≤ max_null_rate),
conformance per column kind (the share of filled cells the normalisers accepted ≥ min_conformance) and
the row count against recent batches of the same source and kind (snapshot or increment: within the
spec's ratios of their median, or within VOLUME_SLACK_ROWS of it). A failed
gate quarantines the batch with its reasons; an operator can release it.
"""

import logging
import statistics
from typing import Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.models import Batch
from schemas.feed_spec import FeedSpec, get_feed_spec

log = logging.getLogger(__name__)
HISTORY = 7  # recent batches the volume check compares with
MIN_HISTORY = 3  # fewer than this and the volume check is skipped
SLACK_ROWS = 3  # a rate threshold never fails a batch for fewer bad rows than this (small daily files)
# The volume check never fails a batch within this many rows of the median: a feed of a few rows a
# day (deaths, births) varies by more than its ratios allow from one day to the next.
VOLUME_SLACK_ROWS = 20

CHECK_LABELS = {
    "expect_column_values_to_not_be_null": "必填列为空的比例超过上限",
    "expect_column_values_to_be_in_set": "格式合格率低于下限",
    "expect_table_row_count_to_be_between": "行数与近期批次相比异常",
}


def _frame(session: Session, batch_id: int, spec: FeedSpec) -> pd.DataFrame:
    """One row per staged record: filled flag per required column, conformance per kind."""
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
    columns.append(
        "(SELECT count(*) FROM source_record x WHERE x.batch_id = :b AND x.event = 'snapshot') AS snapshots"
    )
    sql = f"SELECT {', '.join(columns)} FROM source_record WHERE batch_id = :b"
    return pd.DataFrame(session.execute(text(sql), params).mappings().all())


def _volume_bounds(session: Session, batch: Batch, spec: FeedSpec, snapshot: bool) -> tuple[int, int] | None:
    """Bounds from the median row count of recent batches of the same source and kind.

    The kind (snapshot or increment) of an earlier batch is the one its own gate found: counting its
    snapshot rows again took a scan of source_record per earlier batch (3 s per daily file at
    1,000,000 persons, where the planner's estimate for one batch's rows was the table's average).
    """
    recent = (
        session.execute(
            text(
                """
            SELECT b.rows_received FROM batch b
            WHERE b.source = :s AND b.id <> :b AND b.state IN ('gated', 'resolved', 'merged', 'published')
              AND CAST(b.gate_result ->> 'snapshot' AS boolean) = :snap
            ORDER BY b.as_of_date DESC, b.id DESC LIMIT :n
            """
            ),
            {"s": spec.source, "b": batch.id, "snap": snapshot, "n": HISTORY},
        )
        .scalars()
        .all()
    )
    if len(recent) < MIN_HISTORY:
        return None
    median = statistics.median(recent)
    low = min(int(median * spec.volume.min_rows_ratio), int(median) - VOLUME_SLACK_ROWS)
    high = max(int(median * spec.volume.max_rows_ratio) + 1, int(median) + VOLUME_SLACK_ROWS)
    return max(low, 0), high


def run_gate(*, session: Session, batch_id: int) -> dict[str, Any]:
    """Validate the staged batch with its feed's suite; move it to gated or quarantined."""
    import great_expectations as gx  # imported here: ~4 s, only the gate needs it
    from great_expectations.core.validation_definition import ValidationDefinition

    batch = session.get_one(Batch, batch_id, with_for_update=True)
    if batch.state != "parsed":
        return batch.gate_result or {}
    spec = get_feed_spec(batch.source)
    frame = _frame(session, batch_id, spec)
    if frame.empty:  # a day with nothing to report: nothing to judge
        batch.gate_result = {
            **(batch.gate_result or {}),
            "success": True,
            "snapshot": False,
            "checks": [],
            "failed": [],
        }
        batch.state = "gated"
        session.flush()
        return batch.gate_result
    snapshot = bool(len(frame) and frame["snapshots"].iloc[0] * 2 > len(frame))
    frame = frame.drop(columns=["snapshots"])
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add(gx.ExpectationSuite(name=f"feed_{spec.source}"))
    slack = 1 - SLACK_ROWS / max(len(frame), 1)
    for col in frame.columns:
        kind, _, name = col.partition(":")
        if kind == "req":
            suite.add_expectation(
                gx.expectations.ExpectColumnValuesToNotBeNull(
                    column=col, mostly=max(0.0, min(1 - spec.gate.max_null_rate, slack))
                )
            )
        else:
            suite.add_expectation(
                gx.expectations.ExpectColumnValuesToBeInSet(
                    column=col,
                    value_set=[True],
                    mostly=max(0.0, min(spec.gate.min_conformance[name], slack)),  # type: ignore[index]
                )
            )
    bounds = _volume_bounds(session, batch, spec, snapshot)
    if bounds:
        suite.add_expectation(
            gx.expectations.ExpectTableRowCountToBeBetween(min_value=bounds[0], max_value=bounds[1])
        )
    asset = context.data_sources.add_pandas("popex").add_dataframe_asset(name=spec.source)
    definition = asset.add_batch_definition_whole_dataframe("batch")
    validation = context.validation_definitions.add(
        ValidationDefinition(name=f"gate_{spec.source}", data=definition, suite=suite)
    )
    outcome = validation.run(batch_parameters={"dataframe": frame})
    checks = []
    for result in outcome.results:
        config = result.expectation_config
        assert config is not None
        column = config.kwargs.get("column")
        checks.append(
            {
                "expectation": config.type,
                "column": column.partition(":")[2] if column else None,
                "success": bool(result.success),
                "observed": result.result.get("observed_value"),
                "unexpected_count": result.result.get("unexpected_count"),
                "unexpected_percent": result.result.get("unexpected_percent"),
                "mostly": config.kwargs.get("mostly"),
                "bounds": [config.kwargs.get("min_value"), config.kwargs.get("max_value")]
                if config.type == "expect_table_row_count_to_be_between"
                else None,
                "message": CHECK_LABELS.get(config.type, config.type),
            }
        )
    gate = {
        **(batch.gate_result or {}),
        "success": bool(outcome.success),
        "snapshot": snapshot,
        "checks": checks,
        "failed": [c for c in checks if not c["success"]],
    }
    batch.gate_result = gate
    batch.state = "gated" if outcome.success else "quarantined"
    if not outcome.success:
        record_audit(
            session=session,
            actor="pipeline",
            action="batch.quarantined",
            object_type="batch",
            object_id=str(batch_id),
            detail={"failed": [f"{c['expectation']}:{c['column']}" for c in gate["failed"]]},
        )
    session.flush()
    return gate


def release_batch(*, session: Session, batch_id: int, actor: str, note: str) -> Batch:
    """An operator releases a quarantined batch after checking it; audited."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.state != "quarantined":
        raise ValueError(f"批次 {batch_id} 不存在或不在隔离状态")
    batch.state = "gated"
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
