"""`make demo`: database, a synthetic city, the daily DAGs over its days, a summary, then the web app."""

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.orm import Session

from base.settings import ROOT

console = Console()
DEMO_DIR = ROOT / "var" / "demo"
# The demo's community officer (printed at the end, for /collection).
DEMO_OFFICER = ("demo01", "演示信息员", "popex-demo-2026")
# Yesterday's file of this feed is held back, so the monitor has a missing delivery to show.
HELD_BACK = "wjw_sw"
PAGES = (
    ("首页", "/"),
    ("统一人口库", "/registry"),
    ("部门数据交换", "/exchange"),
    ("社区信息采集（信息员登录）", "/collection"),
    ("决策分析", "/decision"),
    ("监控管理", "/monitor"),
    ("信息共享服务 API 文档", "/docs"),
)


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

    table = Table("指标", "数量", title="统一人口库概况（与 /registry 同一口径）")
    queries = {
        "在册人员": "SELECT count(*) FROM person WHERE status = 'active'",
        "其中 户籍/流动/境外": "SELECT count(*) FILTER (WHERE population_type = 'registered') || ' / ' ||"
        " count(*) FILTER (WHERE population_type = 'floating') || ' / ' ||"
        " count(*) FILTER (WHERE population_type = 'foreign') FROM person WHERE status = 'active'",
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


def demo_start(days: int, today: date | None = None) -> date:
    """The first as-of day of a demo whose last one is yesterday (the full snapshot, then `days` days)."""
    return (today or date.today()) - timedelta(days=days + 1)


def arrival(source: str, day: date, *, last: date, now: datetime) -> datetime:
    """When the demo says a feed's file for `day` arrived: before its 09:00 deadline on the next morning,
    except one feed two days before the last, which came late (never later than now)."""
    minutes = int(hashlib.sha256(f"{source}{day}".encode()).hexdigest()[:4], 16) % 170
    at = datetime.combine(day + timedelta(days=1), time(6, 0)) + timedelta(minutes=minutes)
    if source == "rsj_cb" and day == last - timedelta(days=2):
        at = datetime.combine(day + timedelta(days=1), time(10, 35))
    return min(at, now - timedelta(minutes=1))


def run_demo(*, persons: int, days: int, seed: int, start: date | None, serve: bool) -> None:
    """The whole demo; re-running it reuses the database and skips what is already done."""
    from base.db import session_scope
    from base.settings import database_settings
    from decision import access
    from registry.areas import load_areas
    from registry.migrate import upgrade
    from synth import generate_city

    start = start or demo_start(days)
    last = start + timedelta(days=days)
    console.print("[bold]1/5[/bold] 数据库迁移")
    upgrade()
    city = DEMO_DIR / f"city_{persons}_{days}_{seed}_{start:%Y%m%d}"
    span = (
        f"{start.isoformat()} 至 {last.isoformat()}，共 {days + 1} 个交换日（首日全量，之后 {days} 天日增量）"
    )
    if not (city / "areas.csv").exists():
        console.print(f"[bold]2/5[/bold] 生成合成城市：起始 {persons} 人，{span}")
        shutil.rmtree(city, ignore_errors=True)
        generate_city(city, persons=persons, days=days, seed=seed, start=start)
    else:
        console.print(f"[bold]2/5[/bold] 使用已生成的合成城市 {city}（{span}）")
    console.print("[bold]3/5[/bold] 导入区划")
    with session_scope() as session:
        load_areas(session=session, path=city / "areas.csv")
    console.print(f"[bold]4/5[/bold] 用 Airflow 运行每日交换流程：{span}")
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
    shutil.copytree(
        city / "landing", landing, ignore=shutil.ignore_patterns("_*", f"{HELD_BACK}_{last:%Y%m%d}*")
    )
    delivered = (
        datetime.now().timestamp() - 3600
    )  # delivered before the runs (a run waits for a file still changing)
    for path in landing.iterdir():
        os.utime(path, (delivered, delivered))
    console.print(
        f"  演示：{HELD_BACK} {last.isoformat()} 的文件不投递（监控页的缺报）；各文件的接收时间记为次日上午模拟的送达时间"
    )
    conf = {"landing": str(landing), "outbox": str(ROOT / "var" / "outbox")}
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        run = dag.test(run_conf={**conf, "as_of": day.isoformat()})
        console.print(f"  {day.isoformat()} exchange_daily：{run.state}")
    with session_scope() as session:
        backdate_arrivals(session, start=start, last=last)
        officer = demo_officer(session)
        # Statistics are for planners; the demo shows the city's and districts' to everyone.
        for level in ("city", "district"):
            access.set_open(session=session, level=level, opened=True, actor="demo")
    console.print("[bold]5/5[/bold] 概况")
    console.print(summary())
    console.print(addresses(officer))
    # The monitor expects every daily file from the first increment on: the first day is a snapshot of the
    # departments that hold registers, not a day every feed delivers (it would show as misses).
    first_daily = start + timedelta(days=1)
    os.environ.setdefault("POPEX_MONITOR_EXPECTED_FROM", first_daily.isoformat())
    if serve:
        import uvicorn

        console.print(
            f"网页已启动：http://127.0.0.1:8000 （按 Ctrl-C 停止网页）。以后用 popex serve 启动时，"
            f"设置 POPEX_MONITOR_EXPECTED_FROM={first_daily.isoformat()}，监控页就不把首日全量之前的日子算作缺报"
        )
        try:
            uvicorn.run("popex.app:app", host="127.0.0.1", port=8000, log_level="warning")
        finally:
            if not database_settings().database_url:
                console.print(
                    "网页已停止。内嵌 PostgreSQL 仍在后台运行（数据在 var/pg，下次 make demo 直接使用）；"
                    "要停止它：.venv/bin/popex db stop"
                )


def backdate_arrivals(session: Session, *, start: date, last: date) -> None:
    """The demo's deliveries and batches dated when `arrival` says their files came."""
    now = session.execute(text("SELECT localtimestamp")).scalar_one()
    rows = session.execute(
        text("SELECT id, batch_id, source, as_of_date FROM delivery WHERE as_of_date BETWEEN :a AND :b"),
        {"a": start, "b": last},
    ).all()
    for row in rows:
        at = arrival(row.source, row.as_of_date, last=last, now=now)
        session.execute(
            text("UPDATE delivery SET received_at = :at WHERE id = :id"), {"at": at, "id": row.id}
        )
        session.execute(
            text("UPDATE batch SET received_at = :at WHERE id = :id AND received_at > :at"),
            {"at": at, "id": row.batch_id},
        )


def demo_officer(session: Session) -> tuple[str, str, str, str]:
    """The demo's officer in the community with the most residents (made once): 工号, password, community."""
    from collection import service as collection_service

    officer_no, name, password = DEMO_OFFICER
    found = collection_service.list_officers(session=session)
    mine = next((o for o in found if o.officer_no == officer_no), None)
    if mine is None:
        code = session.execute(
            text(
                "SELECT community_code FROM person WHERE status = 'active' AND community_code IS NOT NULL "
                "GROUP BY community_code ORDER BY count(*) DESC, community_code LIMIT 1"
            )
        ).scalar_one()
        mine = collection_service.add_officer(
            session=session, officer_no=officer_no, name=name, community_code=code, password=password
        )
    area = session.execute(text("SELECT name FROM area WHERE code = :c"), {"c": mine.community_code}).scalar()
    return officer_no, password, mine.community_code, area or ""


def addresses(officer: tuple[str, str, str, str]) -> Table:
    """Where each platform is, and the officer's login."""
    officer_no, password, code, name = officer
    table = Table("平台", "地址", title="网页地址（本机）")
    for label, path in PAGES:
        table.add_row(label, f"http://127.0.0.1:8000{path}")
    table.add_row("信息员账号", f"工号 {officer_no}  密码 {password}（{name} {code}，仅供演示）")
    table.add_row("决策分析", "全市、区级统计公开；街道、社区需规划人员密钥：popex decision planner-add 姓名")
    return table
