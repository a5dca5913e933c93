"""The dashboard's Airflow runs in words: each flow, run state and task by its Chinese name, the codes only
as small print or attributes (Airflow's own metadata is stood in for by the rows it would give)."""

import re
from datetime import datetime

import pytest

from monitor import health
from schemas.canonical import AirflowState, Dag, DagTask

RUNS = [
    health.DagRunRow(
        dag_id="exchange_daily",
        run_id="scheduled__2026-11-09",
        state="failed",
        logical_date=datetime(2026, 11, 9, 1, 0),
        start_date=None,
        end_date=None,
        tasks={
            "detect": "success",
            "batch.parse": "success",
            "batch.gate": "failed",
            "resolve": "upstream_failed",
        },
    ),
    health.DagRunRow(
        dag_id="monitor_alerts",
        run_id="manual__1",
        state="running",
        logical_date=None,
        start_date=None,
        end_date=None,
        tasks={"evaluate": "up_for_retry", "notify": "none", "a_new_task": "a_new_state"},
    ),
]


def test_airflow_runs_are_shown_in_words(client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "airflow_configured", lambda: True)
    monkeypatch.setattr(health, "airflow_runs", lambda: RUNS)
    html = client.get("/monitor", params={"now": "2026-11-09T12:00"}).text
    table = html[html.index('id="dag-runs"') : html.index('id="api"')]
    assert f"<th>{Dag.EXCHANGE_DAILY.label}<small>exchange_daily</small></th>" in table
    assert f'<td class="state failed">{AirflowState.FAILED.label}</td>' in table
    assert f'<td class="state running">{AirflowState.RUNNING.label}</td>' in table
    tasks = re.findall(r'<span class="task (\w+)">([^<]*)</span>', table)
    assert tasks == [
        ("success", f"{DagTask.DETECT.label}：成功"),
        ("success", f"{DagTask.PARSE.label}：成功"),
        ("failed", f"{DagTask.GATE.label}：失败"),
        ("upstream_failed", f"{DagTask.RESOLVE.label}：上游失败"),
        ("up_for_retry", f"{DagTask.EVALUATE.label}：等待重试"),
        ("none", f"{DagTask.NOTIFY.label}：未开始"),
        ("a_new_state", "a_new_task：a_new_state"),  # what no vocabulary knows yet, as Airflow says it
    ]
    visible = re.sub(r"<small>[^<]*</small>", "", table)
    visible = " ".join(re.findall(r">([^<]+)<", visible))
    assert not re.search(
        r"\b(exchange_daily|success|failed|running|detect|parse|gate|upstream_failed)\b", visible
    )
