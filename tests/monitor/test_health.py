"""The monitor's audit counts: the hourly roll-up plus audit_log give exactly what counting audit_log
gives, whenever the roll-up last ran and whatever the window (the log's total too); a roll-up running
elsewhere is skipped."""

import json
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from monitor import health

T0 = datetime(2026, 11, 28, 0, 0)
SPAN = 3 * 86400  # seconds of audit records
ACTIONS = ["sharing.lookup", "sharing.verify", "batch.release", "review.decide"]
OUTCOMES = ["ok", "refused", "not_found", "error", None]

# What the monitor counted before the roll-up: every audit record of the window.
REFERENCE_USAGE = """
SELECT coalesce(detail ->> 'client', actor) AS client, count(*) AS n,
       count(*) FILTER (WHERE detail ->> 'outcome' = 'refused') AS refused,
       count(*) FILTER (WHERE detail ->> 'outcome' = 'not_found') AS not_found,
       count(*) FILTER (WHERE detail ->> 'outcome' = 'error') AS failed
FROM audit_log WHERE action LIKE 'sharing.%' AND at > :start AND at <= :end
GROUP BY 1 ORDER BY n DESC, client
"""
REFERENCE_VOLUME = """
SELECT CAST(at AS date) AS day, split_part(action, '.', 1) AS area, count(*) AS n
FROM audit_log WHERE at > :start AND at <= :end GROUP BY 1, 2 ORDER BY 1, 2
"""

records = st.lists(
    st.tuples(
        st.integers(0, SPAN),
        st.sampled_from(ACTIONS),
        st.sampled_from(["gongan", "yibao", None]),
        st.sampled_from(OUTCOMES),
    ),
    max_size=40,
)
moments = st.integers(-3600, SPAN + 3600).map(lambda s: T0 + timedelta(seconds=s))


def _insert(session: Session, rows: list[tuple[int, str, str | None, str | None]]) -> None:
    # Records at chosen times: past the chain trigger, which sets every record's time to the clock's.
    session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_chain"))
    for offset, action, client, outcome in rows:
        detail = {k: v for k, v in (("client", client), ("outcome", outcome)) if v is not None}
        session.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, detail, prev_hash, hash)"
                " VALUES (:at, 'actor-x', :action, CAST(:detail AS jsonb), '', '')"
            ),
            {"at": T0 + timedelta(seconds=offset), "action": action, "detail": json.dumps(detail)},
        )
    session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_chain"))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(before=records, after=records, windows=st.lists(st.tuples(moments, moments), min_size=1, max_size=4))
def test_counts_are_those_of_audit_log_whenever_the_roll_up_ran(
    session: Session, before, after, windows
) -> None:
    savepoint = session.begin_nested()
    try:
        _insert(session, before)
        health.roll_up(session=session)  # part of the records rolled up, the rest after its last id
        _insert(session, after)
        assert health.audit_records(session=session) == session.scalar(text("SELECT count(*) FROM audit_log"))
        for start, end in windows:
            params = {"start": start, "end": end}
            usage = [
                (u.client, u.requests, u.refused, u.not_found, u.failed)
                for u in health.api_usage(session=session, **params)
            ]
            volume = [(v.day, v.area, v.records) for v in health.audit_volume(session=session, **params)]
            if start < end:
                assert usage == [tuple(r) for r in session.execute(text(REFERENCE_USAGE), params)]
                assert volume == [tuple(r) for r in session.execute(text(REFERENCE_VOLUME), params)]
            else:
                assert usage == [] and volume == []
        assert health.roll_up(session=session) == len(after)
        assert health.roll_up(session=session) == 0  # nothing new: nothing counted twice
    finally:
        savepoint.rollback()


def test_a_roll_up_in_progress_elsewhere_is_skipped_not_waited_for(session: Session) -> None:
    _insert(session, [(60, "sharing.lookup", "gongan", "ok")])
    other = create_engine(session.get_bind().engine.url)
    with other.connect() as holder:
        holder.execute(text("SELECT 1 FROM audit_rollup WHERE id = 1 FOR UPDATE"))
        assert health.roll_up(session=session) == 0  # returns at once
        window = {"start": T0, "end": T0 + timedelta(days=1)}
        assert [u.requests for u in health.api_usage(session=session, **window)] == [1]
        holder.rollback()
    other.dispose()
    assert health.roll_up(session=session) >= 1


def test_a_large_backlog_is_rolled_up_step_by_step_and_counted_exactly_meanwhile(session: Session) -> None:
    health.roll_up(session=session)  # whatever the database held before
    _insert(session, [(3600 * h + 5, "sharing.lookup", "gongan", "ok") for h in range(30)])
    window = {"start": T0, "end": T0 + timedelta(days=2)}
    steps = []
    while added := health.roll_up(session=session, step=16):
        steps.append(added)
        assert [u.requests for u in health.api_usage(session=session, **window)] == [30]
    assert sum(steps) == 30 and len(steps) > 1 and max(steps) <= 16
