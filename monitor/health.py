"""Platform health: API usage per client and audit volume (from audit_log), Airflow runs (optional)."""

import os
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ClientUsage:
    """One API client's requests in a period (the sharing service audits every request)."""

    client: str
    requests: int
    refused: int
    not_found: int

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


@dataclass(frozen=True)
class DagRunRow:
    """One Airflow DAG run and its task states."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    tasks: dict[str, str]


def api_usage(*, session: Session, start: datetime, end: datetime) -> list[ClientUsage]:
    """Requests per client in start … end from the sharing service's audit records (action sharing.*).

    Latency is not in the audit record, so it is not reported here.
    """
    rows = session.execute(
        text(
            """
            SELECT coalesce(detail ->> 'client', actor) AS client, count(*) AS n,
                   count(*) FILTER (WHERE detail ->> 'outcome' = 'refused') AS refused,
                   count(*) FILTER (WHERE detail ->> 'outcome' = 'not_found') AS not_found
            FROM audit_log
            WHERE action LIKE 'sharing.%' AND at > :start AND at <= :end
            GROUP BY 1 ORDER BY n DESC, client
            """
        ),
        {"start": start, "end": end},
    )
    return [ClientUsage(r.client, r.n, r.refused, r.not_found) for r in rows]


def audit_volume(*, session: Session, start: datetime, end: datetime) -> list[AuditDay]:
    """Audit records per day and area (sharing, batch, review …) in start … end."""
    rows = session.execute(
        text(
            """
            SELECT CAST(at AS date) AS day, split_part(action, '.', 1) AS area, count(*) AS n
            FROM audit_log WHERE at > :start AND at <= :end
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ),
        {"start": start, "end": end},
    )
    return [AuditDay(r.day, r.area, r.n) for r in rows]


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
                    tasks={t.task_id: str(t.state) for t in tasks},
                )
            )
    return out
