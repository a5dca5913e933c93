"""Platform health: API usage per client and audit volume (from audit_log), Airflow runs (optional).

Audit counts read the hourly roll-up (audit_hourly) for whole hours and audit_log for the rest, so
a week of dashboard costs the same at a million requests a day as at a thousand; `roll_up` moves the
roll-up on (each alert evaluation and each dashboard view call it).
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from monitor.config import airflow_settings
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
    """Whether the monitor knows where Airflow's REST API is (POPEX_AIRFLOW_API_URL)."""
    return bool(airflow_settings().api_url)


# A mapped task (one instance per batch) is shown once, in the state of its instance that most needs
# a look: the first of these that any instance is in.
_WORST_FIRST = ["failed", "upstream_failed", "up_for_retry", "running", "queued", "scheduled", "none"]


def _worst(states: list[str]) -> str:
    return min(states, key=lambda s: _WORST_FIRST.index(s) if s in _WORST_FIRST else len(_WORST_FIRST))


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def airflow_runs(limit: int = 20) -> list[DagRunRow]:
    """The latest DAG runs with their task states, from Airflow's REST API (v2, a JWT from /auth/token).

    Only call when airflow_configured(). Raises httpx.HTTPError when the API cannot be reached or refuses.
    """
    settings = airflow_settings()
    assert settings.api_url
    with httpx.Client(base_url=settings.api_url.rstrip("/"), timeout=settings.timeout) as client:
        if settings.username:
            token = client.post(
                "/auth/token", json={"username": settings.username, "password": settings.password or ""}
            )
        else:
            token = client.get("/auth/token")
        client.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"
        runs = (
            client.get("/api/v2/dags/~/dagRuns", params={"order_by": "-run_after", "limit": limit})
            .raise_for_status()
            .json()["dag_runs"]
        )
        states: dict[tuple[str, str], dict[str, list[str]]] = {
            (r["dag_id"], r["dag_run_id"]): {} for r in runs
        }
        offset = 0
        while runs:  # the API gives at most [api] maximum_page_limit (100) instances a page
            page = (
                client.post(
                    "/api/v2/dags/~/dagRuns/~/taskInstances/list",
                    json={
                        "dag_ids": sorted({r["dag_id"] for r in runs}),
                        "dag_run_ids": sorted({r["dag_run_id"] for r in runs}),
                        "order_by": "id",
                        "page_offset": offset,
                        "page_limit": 100,
                    },
                )
                .raise_for_status()
                .json()
            )
            for ti in page["task_instances"]:
                tasks = states.get((ti["dag_id"], ti["dag_run_id"]))
                if tasks is not None:
                    tasks.setdefault(ti["task_id"], []).append(ti["state"] or str(AirflowState.NONE))
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                break
    return [
        DagRunRow(
            dag_id=r["dag_id"],
            run_id=r["dag_run_id"],
            state=str(r["state"]),
            logical_date=_when(r.get("logical_date")),
            start_date=_when(r.get("start_date")),
            end_date=_when(r.get("end_date")),
            tasks={task: _worst(s) for task, s in states[(r["dag_id"], r["dag_run_id"])].items()},
        )
        for r in runs
    ]
