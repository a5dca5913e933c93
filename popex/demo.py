"""`make demo`: database, a synthetic city, the daily DAGs over its days, a summary, then the web app."""

import os
import shutil
import subprocess
import sys
import warnings
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from base.settings import ROOT

console = Console()
DEMO_DIR = ROOT / "var" / "demo"


def airflow_env(home: Path) -> None:
    """Configure Airflow offline and quiet (before it is imported) and migrate its metadata database."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def summary() -> Table:
    """Persons, source records, links, rejects and review items in the one database."""
    from base.db import session_scope

    table = Table("指标", "数量", title="统一人口库概况")
    queries = {
        "人员（在册金色记录）": "SELECT count(*) FROM person WHERE status <> 'retired'",
        "其中 户籍/流动/境外": "SELECT count(*) FILTER (WHERE population_type = 'registered') || ' / ' ||"
        " count(*) FILTER (WHERE population_type = 'floating') || ' / ' ||"
        " count(*) FILTER (WHERE population_type = 'foreign') FROM person WHERE status <> 'retired'",
        "死亡 / 离开": "SELECT count(*) FILTER (WHERE status = 'dead') || ' / ' || count(*) FILTER (WHERE status = 'left')"
        " FROM person",
        "批次（接收文件）": "SELECT count(*) FROM batch",
        "源记录": "SELECT count(*) FROM source_record",
        "关联（源记录→人员）": "SELECT count(*) FROM link",
        "拒收记录": "SELECT count(*) FROM source_record WHERE status = 'rejected'",
        "待核查": "SELECT count(*) FROM review_item WHERE state = 'open'",
        "变更事件": "SELECT count(*) FROM change_event",
    }
    with session_scope() as session:
        for label, sql in queries.items():
            table.add_row(label, str(session.execute(text(sql)).scalar() or 0))
    return table


def run_demo(*, persons: int, days: int, seed: int, start: date, serve: bool) -> None:
    """The whole demo; re-running it reuses the database and skips what is already done."""
    from base.db import session_scope
    from registry.areas import load_areas
    from registry.migrate import upgrade
    from synth import generate_city

    console.print("[bold]1/5[/bold] 数据库迁移")
    upgrade()
    city = DEMO_DIR / f"city_{persons}_{days}_{seed}"
    if not (city / "areas.csv").exists():
        console.print(f"[bold]2/5[/bold] 生成合成城市：{persons} 人，{days} 天")
        shutil.rmtree(city, ignore_errors=True)
        generate_city(city, persons=persons, days=days, seed=seed, start=start)
    else:
        console.print(f"[bold]2/5[/bold] 使用已生成的合成城市 {city}")
    console.print("[bold]3/5[/bold] 导入区划")
    with session_scope() as session:
        load_areas(session=session, path=city / "areas.csv")
    console.print(f"[bold]4/5[/bold] 用 Airflow 运行每日交换流程（{days + 1} 天）")
    airflow_env(ROOT / "var" / "airflow")
    from airflow.dag_processing.dagbag import DagBag

    # Airflow's deprecation notices about its own dependencies say nothing to a demo's user (set after
    # the import: importing Airflow installs filters of its own that would come first).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"airflow\.")

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["exchange_daily"]
    # The run moves the files it receives out of its landing folder: it gets a fresh copy of the
    # city's files each time (a file received before is recognised by its hash, not applied twice).
    landing = DEMO_DIR / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.copytree(city / "landing", landing, ignore=shutil.ignore_patterns("_*"))
    conf = {"landing": str(landing), "outbox": str(ROOT / "var" / "outbox")}
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        run = dag.test(run_conf={**conf, "as_of": day.isoformat()})
        console.print(f"  {day.isoformat()} exchange_daily：{run.state}")
    console.print("[bold]5/5[/bold] 概况")
    console.print(summary())
    if serve:
        import uvicorn

        console.print("网页已启动：http://127.0.0.1:8000 （Ctrl-C 退出）")
        uvicorn.run("popex.app:app", host="127.0.0.1", port=8000, log_level="warning")
