"""The popex command line: operators' entry to every platform."""

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

app = typer.Typer(help="popex 人口信息交换平台（一库五平台）", no_args_is_help=True)
db_app = typer.Typer(help="数据库：迁移、嵌入式 PostgreSQL", no_args_is_help=True)
areas_app = typer.Typer(help="区划参考数据", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(areas_app, name="areas")
console = Console()
err = Console(stderr=True)


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="显示调试日志")] = False) -> None:
    """popex command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    from registry.migrate import upgrade

    upgrade()
    console.print("数据库已迁移到最新版本")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="目标版本")] = "base") -> None:
    """Roll the schema back (default: remove everything)."""
    from registry.migrate import downgrade

    downgrade(revision=revision)
    console.print(f"数据库已回退到 {revision}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL, if one is running."""
    from popex.settings import database_settings
    from registry.embedded import stop_embedded

    stopped = stop_embedded(database_settings().embedded_dir)
    console.print("嵌入式数据库已停止" if stopped else "没有正在运行的嵌入式数据库")


@areas_app.command("load")
def areas_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="区划 CSV 文件")],
) -> None:
    """Load the area hierarchy; all rows or none, idempotent."""
    from registry.areas import AreaFileError, load_areas
    from registry.db import session_scope

    try:
        with session_scope() as session:
            result = load_areas(session=session, path=file)
    except AreaFileError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"区划导入完成：共 {result.rows} 行，新增 {result.inserted}，更新 {result.updated}，未变 {result.unchanged}"
    )


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="输出目录")],
    persons: Annotated[int, typer.Option(help="人口数")] = 10_000,
    days: Annotated[int, typer.Option(help="日增量天数")] = 5,
    seed: Annotated[int, typer.Option(help="随机种子")] = 1,
    start: Annotated[str, typer.Option(help="起始日期 YYYY-MM-DD")] = "2026-11-01",
) -> None:
    """Write a synthetic city: areas, daily department files with their mess, and ground truth."""
    from popex.synth import generate_city

    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = generate_city(
            out, persons=persons, days=days, seed=seed, start=date.fromisoformat(start), progress=report
        )
    console.print(summary)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
) -> None:
    """Serve the web app (every platform) until Ctrl-C."""
    import uvicorn

    uvicorn.run("popex.app:app", host=host, port=port, log_level="warning")
