"""Platform health: API usage per client and audit volume (from audit_log), Airflow runs (optional).

Audit counts read the hourly roll-up (audit_hourly) for whole hours and audit_log for the rest, so
a week of dashboard costs the same at a million requests a day as at a thousand; `roll_up` moves the
roll-up on (each alert evaluation and each dashboard view call it).
"""

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from schemas.canonical import AirflowState, AuditCategory, Dag, DagTask, label_of


@dataclass(frozen=True)
class ClientUsage:
    """One API client's requests in a period (the sharing service audits every request)."""

    client: str
    requests: int
    refused: int
    not_found: int
    failed: int  # requests the service could not answer (a fault of its own, the database away)

    @property
    def error_rate(self) -> float:
        """Refused share of the requests (authentication, policy, rate limit)."""
        return self.refused / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class AuditDay:
    """Audit records of one day for one area of the platform (the action's prefix)."""

    day: date
    area: str
    records: int

    @property
    def area_label(self) -> str:
        """The area in Chinese (文件接收, 信息共享 …)."""
        return label_of(AuditCategory, self.area)


@dataclass(frozen=True)
class DagRunRow:
    """One Airflow DAG run and its task states (Airflow's codes; the labels say them in Chinese)."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    tasks: dict[str, str]

    @property
    def dag_label(self) -> str:
        """What the DAG does, in Chinese."""
        return label_of(Dag, self.dag_id)

    @property
    def state_label(self) -> str:
        """The run's state in Chinese."""
        return label_of(AirflowState, self.state)

    @property
    def task_labels(self) -> list[tuple[str, str, str]]:
        """Each task as (its step's name, its state's code, its state in Chinese); a task in a group
        (batch.parse) by its own name."""
        return [
            (label_of(DagTask, t.rpartition(".")[2]), s, label_of(AirflowState, s))
            for t, s in self.tasks.items()
        ]


# One audit record's keys and counts, as audit_hourly rolls them up.
_RECORD_COLUMNS = """
    date_trunc('hour', at) AS hour, split_part(action, '.', 1) AS area,
    coalesce(detail ->> 'client', actor) AS client, 1 AS records,
    coalesce((detail ->> 'outcome' = 'refused')::int, 0) AS refused,
    coalesce((detail ->> 'outcome' = 'not_found')::int, 0) AS not_found,
    coalesce((detail ->> 'outcome' = 'error')::int, 0) AS failed
"""
ROLL_UP = f"""
WITH added AS (
    SELECT hour, area, client, sum(records) AS records, sum(refused) AS refused, sum(not_found) AS not_found,
           sum(failed) AS failed
    FROM (SELECT {_RECORD_COLUMNS} FROM audit_log WHERE id > :last AND id <= :upto) AS r
    GROUP BY hour, area, client
), rolled AS (
    INSERT INTO audit_hourly (hour, area, client, records, refused, not_found, failed)
    SELECT * FROM added
    ON CONFLICT (hour, area, client) DO UPDATE
    SET records = audit_hourly.records + excluded.records,
        refused = audit_hourly.refused + excluded.refused,
        not_found = audit_hourly.not_found + excluded.not_found,
        failed = audit_hourly.failed + excluded.failed
)
SELECT coalesce(sum(records), 0) FROM added
"""
# Ids per roll-up call: a log of 7,000,000 records took 15 s to roll up at once here; 2,000,000 ids
# (about 1,000,000 records: ids have gaps) keep a dashboard view that rolls up within about 2 s.
ROLL_UP_STEP = 2_000_000
# The records of (start, end]: the whole hours [a, b) from the roll-up plus the records after its
# last id, and the part-hours (start, a) and [b, end] from audit_log (its BRIN index on `at`). The
# last id is read in the same statement as the roll-up's rows: one snapshot, so a roll-up committed
# meanwhile cannot have its records counted twice.
_COUNTED = f"""
    SELECT hour, area, client, records, refused, not_found, failed
    FROM audit_hourly WHERE hour >= :a AND hour < :b
    UNION ALL
    SELECT {_RECORD_COLUMNS} FROM audit_log
    WHERE id > (SELECT last_id FROM audit_rollup WHERE id = 1) AND at >= :a AND at < :b
    UNION ALL
    SELECT {_RECORD_COLUMNS} FROM audit_log WHERE at > :start AND at < :a
    UNION ALL
    SELECT {_RECORD_COLUMNS} FROM audit_log WHERE at >= :b AND at <= :end
"""


def roll_up(*, session: Session, step: int = ROLL_UP_STEP) -> int:
    """Add audit records written since the last roll-up to audit_hourly, at most `step` ids' worth
    (a first roll-up of a large log is spread over calls); returns how many records it added.

    Audit ids become visible in id order (drawn under the chain's lock, which is held until commit),
    so every record up to the largest id seen is there to be counted, and none after it is. A roll-up
    in progress elsewhere is skipped, not waited for (the counts stay exact either way: see _COUNTED).
    """
    last = session.scalar(text("SELECT last_id FROM audit_rollup WHERE id = 1 FOR UPDATE SKIP LOCKED"))
    if last is None:
        return 0
    first, newest = session.execute(
        text("SELECT min(id), max(id) FROM audit_log WHERE id > :last"), {"last": last}
    ).one()
    if first is None:
        return 0
    upto = min(newest, first + step - 1)  # from the first record after the last: over gaps in the ids
    added = session.scalar(text(ROLL_UP), {"last": last, "upto": upto}) or 0
    session.execute(
        text("UPDATE audit_rollup SET last_id = :upto, rolled_at = now() WHERE id = 1"), {"upto": upto}
    )
    return int(added)


def _window(start: datetime, end: datetime) -> dict[str, object]:
    """The parameters of _COUNTED for (start, end]: its whole hours [a, b)."""
    a = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    b = end.replace(minute=0, second=0, microsecond=0)
    if a > b:  # no whole hour: (start, end) and [end, end] from audit_log
        a = b = end
    return {"start": start, "end": end, "a": a, "b": b}


def audit_records(*, session: Session) -> int:
    """Records in the audit log: the rolled-up ones and those after the roll-up's last id."""
    return int(
        session.scalar(
            text(
                """
                SELECT (SELECT coalesce(sum(records), 0) FROM audit_hourly)
                     + (SELECT count(*) FROM audit_log WHERE id > (SELECT last_id FROM audit_rollup WHERE id = 1))
                """
            )
        )
        or 0
    )


def api_usage(*, session: Session, start: datetime, end: datetime) -> list[ClientUsage]:
    """Requests per client in start … end from the sharing service's audit records (action sharing.*).

    Latency is not in the audit record, so it is not reported here.
    """
    if start >= end:
        return []
    rows = session.execute(
        text(
            f"""
            SELECT client, sum(records) AS n, sum(refused) AS refused, sum(not_found) AS not_found,
                   sum(failed) AS failed
            FROM ({_COUNTED}) AS c
            WHERE area = 'sharing'
            GROUP BY client ORDER BY n DESC, client
            """
        ),
        _window(start, end),
    )
    return [ClientUsage(r.client, int(r.n), int(r.refused), int(r.not_found), int(r.failed)) for r in rows]


def audit_volume(*, session: Session, start: datetime, end: datetime) -> list[AuditDay]:
    """Audit records per day and area (sharing, batch, review …) in start … end."""
    if start >= end:
        return []
    rows = session.execute(
        text(
            f"""
            SELECT CAST(hour AS date) AS day, area, sum(records) AS n
            FROM ({_COUNTED}) AS c
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ),
        _window(start, end),
    )
    return [AuditDay(r.day, r.area, int(r.n)) for r in rows]


def airflow_configured() -> bool:
    """Whether this process can reach Airflow's metadata (AIRFLOW_HOME is set)."""
    return bool(os.environ.get("AIRFLOW_HOME"))


def airflow_runs(limit: int = 20) -> list[DagRunRow]:
    """The latest DAG runs with their task states, read through Airflow's own models.

    Only call when airflow_configured(): importing airflow reads its configuration and database.
    """
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as af:
        runs = af.scalars(select(DagRun).order_by(DagRun.id.desc()).limit(limit)).all()
        out = []
        for run in runs:
            tasks = af.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(
                    TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
                )
            ).all()
            out.append(
                DagRunRow(
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    state=str(run.state),
                    logical_date=run.logical_date,
                    start_date=run.start_date,
                    end_date=run.end_date,
                    tasks={t.task_id: str(t.state or AirflowState.NONE) for t in tasks},
                )
            )
    return out
