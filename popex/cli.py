"""The popex command line: operators' entry to every platform."""

import logging
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import TaskID

from base.progress import err, progress_bar, waiting_notice
from collection.cli import officers_app
from decision.cli import decision_app
from exchange.cli import departments_app
from registry.operator import operator_actor
from schemas.canonical import (
    BatchState,
    BatchStep,
    IdType,
    Labelled,
    PopulationType,
    ReviewKind,
    ReviewState,
    Sex,
    batch_state_label,
    label_of,
)
from sharing_api.cli import audit_app, clients_app

if TYPE_CHECKING:
    from rich.progress import Progress
    from sqlalchemy.orm import Session

    from base.db import SessionFactory
    from exchange.flows import Ingested

app = typer.Typer(help="popex 人口信息交换平台（一库五平台）", no_args_is_help=True)
db_app = typer.Typer(help="数据库：迁移、嵌入式 PostgreSQL", no_args_is_help=True)
areas_app = typer.Typer(help="区划参考数据", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(areas_app, name="areas")
app.add_typer(officers_app, name="officers")
app.add_typer(decision_app, name="decision")
app.add_typer(clients_app, name="clients")
app.add_typer(audit_app, name="audit")
console = Console()


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="显示调试日志")] = False) -> None:
    """popex command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    waiting_notice.set(lambda message: err.print(f"[yellow]{message}[/yellow]"))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (a migration the data does not allow says why)."""
    from registry.migrate import MigrationRefused, upgrade

    try:
        upgrade()
    except MigrationRefused as exc:
        err.print(f"[red]数据库未迁移[/red]：{exc}")
        raise typer.Exit(1) from None
    console.print("数据库已迁移到最新版本")
    db_partitions()


@db_app.command("partitions")
def db_partitions() -> None:
    """Create the partitions of the coming POPEX_PARTITION_AHEAD_DAYS days (what the daily run does)."""
    from base.db import session_scope
    from registry.partitions import ensure_ahead

    with session_scope() as session:
        created = ensure_ahead(session)
    console.print(f"已创建分区：{'、'.join(created)}" if created else "分区齐全，无需创建")


@db_app.command("retention")
def db_retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只列出到期的分区，不分离")] = False,
) -> None:
    """Detach the partitions past their retention (docs/PARTITIONS.md: archive them, then drop).

    Each in a transaction of its own, oldest first; an audit month through registry.anchors, which
    verifies it and moves the log's signed start past it (a refusal stops the run and says why).
    """
    from base.db import session_scope
    from base.settings import partition_settings
    from registry.anchors import AnchorSettings, RetentionRefused, detach_audit_month
    from registry.partitions import detach, expired_partitions

    with session_scope() as session:
        expired = expired_partitions(session, partition_settings().retention_years())
    for part in expired:
        start = None
        if not dry_run:
            try:
                with session_scope() as session:
                    if part.table == "audit_log":
                        start = detach_audit_month(session=session, settings=AnchorSettings(), part=part)
                    else:
                        detach(session, part)
            except RetentionRefused as exc:
                err.print(f"[red]未分离 {part.name}[/red]：{exc}")
                raise typer.Exit(1) from None
        state = "待分离" if dry_run else "已分离"
        console.print(f"{state}  {part.name}  {part.start} 至 {part.end}  约 {part.rows} 行")
        if start is not None:
            console.print(
                f"  审计日志起点：记录 id={start.id}，此前共 {start.count} 条（已签名）；请归档该分区后再删除"
            )
    if not expired:
        console.print("没有超过保留期限的分区")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="目标版本")] = "base") -> None:
    """Roll the schema back (default: remove everything)."""
    from registry.migrate import downgrade

    downgrade(revision=revision)
    console.print(f"数据库已回退到 {revision}")


@db_app.command("restored")
def db_restored(
    note: Annotated[
        str, typer.Option(help="恢复说明（记入审计日志），如 db1 损坏，从 2026-12-05 夜间备份恢复")
    ],
    actor: Annotated[str | None, typer.Option(help="经办人（与当前系统用户一并记入审计日志）")] = None,
) -> None:
    """Run once after restoring the database from a backup, before starting the platform: the numbers
    given out since the backup (persons', change events', batches') are never given out again, and the
    audit log's restore is recorded against its anchors (docs/OPERATIONS.md, Backup and restore)."""
    from sqlalchemy import text

    from base.db import session_scope
    from registry.anchors import AnchorSettings, RestoreRefused, record_restore
    from registry.operator import operator_actor
    from registry.restore import skip_ahead

    who = operator_actor(actor)
    settings = AnchorSettings()
    refused: RestoreRefused | None = None
    if settings.key() is None:
        err.print("[yellow]未配置锚点密钥：审计日志的恢复未签记录，popex audit verify 只校验哈希链[/yellow]")
    else:
        try:  # first: any audit record written before it would take the id of a record the restore lost
            with session_scope() as session:
                point, lost = record_restore(session=session, settings=settings, actor=who, note=note)
            console.print(
                f"审计日志恢复到记录 id={point.id}（共 {point.count} 条），"
                f"此前 {lost} 个锚点所记的记录随恢复丢失，不再核对"
            )
        except RestoreRefused as exc:
            if exc.nothing_lost:
                console.print(f"审计日志：{exc}")
            else:
                refused = exc
    with session_scope() as session:
        skipped = skip_ahead(session=session, actor=who, note=note)
    for s in skipped:
        console.print(f"{s.numbers}：由 {s.before:,} 跳至 {s.after:,} 之后，备份之后发出的号码不会再次发出")
    # A revocation made since the backup is undone by the restore: list who can get in, to check.
    with session_scope() as session:
        active = session.execute(text(ACCESS_AFTER_RESTORE)).all()
    console.print(
        "恢复后仍有效的账户与密钥（备份之后的停用、轮换、吊销已随恢复撤销，请与记录核对后重新执行）："
    )
    for kind, count, names in active:
        console.print(f"  {kind} {count} 个{'：' + names if names else ''}")
    if refused is not None:
        err.print(f"[red]审计日志：{refused}[/red]")
        raise typer.Exit(1)


# Who can get in, by kind: API clients, planners, officers, departments' push keys (names, newest first).
ACCESS_AFTER_RESTORE = """
SELECT '接口客户端', count(*), string_agg(code, '、' ORDER BY created_at DESC) FROM api_client WHERE status = 'active'
UNION ALL SELECT '规划人员', count(*), string_agg(name, '、' ORDER BY created_at DESC) FROM decision.planner WHERE active
UNION ALL SELECT '社区信息员', count(*), NULL FROM collection_officer WHERE active
UNION ALL SELECT '部门推送密钥', count(*), string_agg(DISTINCT department_code, '、') FROM push_credential
 WHERE revoked_at IS NULL
"""


@db_app.command("repair-history")
def db_repair_history(
    apply: Annotated[bool, typer.Option("--apply", help="修复并重建统计（不加时只报告数量）")] = False,
    actor: Annotated[str | None, typer.Option(help="经办人（与当前系统用户一并记入审计日志）")] = None,
) -> None:
    """Versions a batch dated before the version they follow without a change of residence (written
    before the merge stopped doing so) rewrote the person's area and type meanwhile: report them, and
    with --apply give each the date the merge gives now and rebuild the statistics, in one transaction
    (run it while no pipeline runs)."""
    from base.db import session_scope
    from registry.history import dated_back, repair
    from registry.operator import operator_actor

    with session_scope() as session:
        found = dated_back(session)
    if not found:
        console.print("没有早于所接续版本、又未改变居住信息的版本，历史无需修复")
        return
    console.print(f"{found:,} 个人员版本早于其所接续的版本、又未改变居住信息，改写了期间的居住地和人口类型")
    if not apply:
        console.print("加 --apply 修复这些版本的日期并重建统计（一个事务，审计记录 db.history.repaired）")
        return

    def repaired(session: "Session") -> str:
        versions, events = repair(session=session, actor=operator_actor(actor))
        return f"已修复 {versions:,} 个人员版本、{events:,} 个变更事件的日期"

    _rebuild_statistics("修复人员版本日期并重建统计", first=repaired)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL, if one is running."""
    from base.embedded import stop_embedded
    from base.settings import database_settings

    stopped = stop_embedded(database_settings().embedded_dir)
    console.print("嵌入式数据库已停止" if stopped else "没有正在运行的嵌入式数据库")


@areas_app.command("load")
def areas_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="区划 CSV 文件")],
) -> None:
    """Load the area hierarchy; all rows or none, idempotent."""
    from base.db import session_scope
    from registry.areas import AreaFileError, load_areas

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
    from synth import generate_city

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
    workers: Annotated[
        int | None,
        typer.Option(help="工作进程数（默认取 POPEX_SERVE_WORKERS；建议每个分给本服务的 CPU 核一个）"),
    ] = None,
) -> None:
    """Serve the web app (every platform) until Ctrl-C."""
    import uvicorn

    from base.settings import worker_settings
    from collection.config import session_secret as collection_secret
    from decision.config import session_secret as decision_secret

    # Made (or read) once before the workers start: each of them signs sessions with the same keys.
    collection_secret()
    decision_secret()
    workers = workers or worker_settings().serve_workers
    uvicorn.run("popex.app:app", host=host, port=port, workers=workers, log_level="warning")


batch_app = typer.Typer(help="批次：放行被隔离的批次", no_args_is_help=True)
review_app = typer.Typer(help="待核查队列：接受、拒绝", no_args_is_help=True)
person_app = typer.Typer(help="人员：合并、拆分、撤销合并", no_args_is_help=True)
export_app = typer.Typer(help="导出", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
app.add_typer(review_app, name="review")
app.add_typer(person_app, name="person")
app.add_typer(export_app, name="export")
stats_app = typer.Typer(help="决策统计：计入已发布的批次、从头重建", no_args_is_help=True)
app.add_typer(stats_app, name="stats")
app.add_typer(departments_app, name="departments")


def _print_ingested(result: "Ingested") -> None:
    from sqlalchemy import select

    from base.db import session_scope
    from registry.models import Batch

    with session_scope() as session:
        batch = session.scalars(select(Batch).where(Batch.id == result.batch_id)).one()
        held = batch.state in (BatchState.QUARANTINED, BatchState.REJECTED)
        # A quiet day's header-only file has the bytes of an earlier day's: it joins that batch.
        name = result.file_name
        if name != batch.file_name:
            name += f"（内容与 {batch.file_name} 相同，记入同一批次）"
        console.print(
            f"批次 {batch.id} {name} 状态 {batch_state_label(batch.state, batch.failed_step)}："
            f"接收 {batch.rows_received}，"
            # a held batch's rows passed their own checks but nothing entered the register
            + (f"行校验通过 {batch.rows_accepted}（整批未入库）" if held else f"通过 {batch.rows_accepted}")
            + f"，拒收 {batch.rows_rejected}，待核查 {batch.rows_review}"
        )
        if result.duplicate:  # say what this run did, not what the first one did
            done = "、".join(step.label for step in result.steps)
            console.print(
                f"相同文件此前已接收（批次 {batch.id}）；"
                + (f"本次完成了：{done}" if done else "没有剩余的工作，未重复处理")
            )
        if batch.error:
            err.print(f"[red]{batch.error}[/red]")
        for check in (batch.gate_result or {}).get("failed", []):
            err.print(f"[yellow]批次闸门未通过：{check['message']}[/yellow]")  # the message names the column


class _FileLines:
    """A line per file on the progress bar: the rows read, then the step it is in; its clock stops
    when the file is done with."""

    def __init__(self, bar: "Progress") -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def _task(self, name: str) -> TaskID:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(f"{name} 读取校验", total=None)
        return self.tasks[name]

    def rows(self, name: str) -> Callable[[int], None]:
        return partial(self.bar.advance, self._task(name))

    def step(self, name: str, step: BatchStep | BatchState | None) -> None:
        task = self._task(name)
        if step is None:
            done = max(int(next(t.completed for t in self.bar.tasks if t.id == task)), 1)
            self.bar.update(task, description=f"{name} 处理完毕", total=done, completed=done)
        else:
            self.bar.update(task, description=f"{name} {step.label}")


@app.command()
def ingest(
    source: Annotated[str | None, typer.Argument(help="数据来源，如 gaj_hj；省略时按文件名识别")] = None,
    file: Annotated[str | None, typer.Argument(help="数据文件：本地路径或 s3://… 等地址")] = None,
    directory: Annotated[
        str | None, typer.Option("--dir", help="落地目录：本地目录或 s3://桶/前缀 等地址")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="文件名不含日期时的数据日期 YYYY-MM-DD")] = None,
) -> None:
    """Ingest one file (or every new file of a landing folder, in date order) through the whole pipeline.
    A file or folder is a local path or a URI (s3://bucket/prefix, as POPEX_LANDING_DIR may be)."""
    from base import storage
    from base.db import session_factory
    from exchange.exceptions import FeedFileError
    from exchange.flows import ingest_files, landing_files
    from registry.batches import Interrupted

    if file is None and source is not None and (Path(source).is_file() or "://" in source):
        file, source = source, None  # `popex ingest FILE`
    if directory is not None:
        folder = storage.location(directory)
        if isinstance(folder, Path) and not folder.is_dir():
            err.print(f"[red]落地目录 {directory} 不存在[/red]")
            raise typer.Exit(2)
        paths = landing_files(folder)
        if not paths:
            console.print(f"落地目录 {directory} 中没有按标准命名的文件，无事可做")
            return
    elif file is not None:
        paths = [storage.location(file)]
        if not storage.exists(paths[0]) or (isinstance(paths[0], Path) and not paths[0].is_file()):
            err.print(f"[red]文件 {file} 不存在[/red]")
            raise typer.Exit(2)
    else:
        err.print("[red]请指定文件（popex ingest SOURCE FILE）或落地目录（--dir）[/red]")
        raise typer.Exit(2)
    factory = session_factory()
    day = date.fromisoformat(as_of) if as_of else None
    outcomes: list[Ingested | FeedFileError] = []
    with progress_bar() as bar:
        lines = _FileLines(bar)
        try:  # as the daily DAG takes a day's files (exchange.flows.ingest_files)
            outcomes = ingest_files(
                factory, paths, source=source, as_of=day, progress=lines.rows, stepping=lines.step
            )
        except Interrupted as exc:  # the database went away mid-step: the later files wait for it too
            err.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(1) from None
    failed = 0
    for where, outcome in zip(paths, outcomes, strict=True):
        if isinstance(outcome, FeedFileError):
            err.print(f"[red]{storage.name(where)}：[{outcome.code}] {outcome.message}[/red]")
            failed += 1
            continue
        _print_ingested(outcome)
        failed += outcome.state in (BatchState.REJECTED, BatchState.QUARANTINED, BatchState.FAILED)
    if failed:
        raise typer.Exit(1)


@app.command()
def receipt(
    batch: Annotated[str, typer.Argument(help="批次号或接收的文件名")],
    fmt: Annotated[str, typer.Option("--format", help="csv 或 summary")] = "csv",
) -> None:
    """Print a batch's receipt (回执): a summary, or one CSV line per row."""
    import csv
    import sys

    from base.db import session_scope
    from exchange.service import build_receipt, find_batch, receipt_lines

    with session_scope() as session:
        found = find_batch(session=session, ref=batch)
        if found is None:
            err.print(f"[red]找不到批次 {batch}[/red]")
            raise typer.Exit(1)
        result = build_receipt(session=session, batch_id=found.id, rows=False)
        if fmt == "csv":  # line by line as read: a city's first snapshot has millions
            csv.writer(sys.stdout).writerows(receipt_lines(session=session, receipt=result))
            return
    console.print(
        f"批次 {result.batch_id} {result.file_name}（{result.source}）状态 {BatchState(result.state).label}："
        f"接收 {result.received}，"
        f"通过 {result.accepted}，拒收 {result.rejected}，待核查 {result.review}"
    )


@stats_app.command("refresh")
def stats_refresh() -> None:
    """Take every published batch not yet counted into the decision statistics (one transaction each)."""
    from base.db import session_factory

    factory = session_factory()
    counted, failed = _count_waiting(factory, "计入统计")
    if not counted and not failed:
        console.print("没有待计入统计的批次，统计已是最新")
        return
    console.print(f"已将 {counted} 个批次计入统计")
    _say_failed(failed)


@stats_app.command("rebuild")
def stats_rebuild() -> None:
    """Recount every statistic from the person versions, then mark the published batches counted."""
    _rebuild_statistics("从人员版本重新计算全部统计")


def _rebuild_statistics(label: str, first: Callable[["Session"], str] | None = None) -> None:
    """Recount every statistic (after `first`, in the same transaction; what it did is said first),
    then mark the published batches counted."""
    from base.db import session_factory, transaction
    from decision.service import rebuild

    factory = session_factory()
    with progress_bar() as bar:
        task = bar.add_task(label, total=1)
        with transaction(factory) as session:
            done = first(session) if first is not None else None
            result = rebuild(session=session)
        bar.advance(task)
    if done:
        console.print(done)
    console.print(
        f"统计已重建：{result.persons} 人，写入 {result.rows_changed} 个统计格，用时 {result.seconds:.1f} 秒"
        f"（{result.epoch} 至 {result.horizon}）"
    )
    counted, failed = _count_waiting(factory, "标记已发布批次为已计入统计")
    if counted:
        console.print(f"{counted} 个已发布批次已包含在重建的统计中，标记为已计入统计")
    _say_failed(failed)


def _count_waiting(factory: "SessionFactory", what: str) -> tuple[int, list[int]]:
    """The statistics step on every batch waiting for it, with a progress bar: (counted, failed ids)."""
    from exchange.flows import run_step, waiting_for

    waiting = waiting_for(factory, BatchStep.STATISTICS)
    failed = []
    with progress_bar() as bar:
        task = bar.add_task(what, total=len(waiting))
        for batch_id in waiting:
            if run_step(factory, BatchStep.STATISTICS, batch_id) == BatchState.FAILED:
                failed.append(batch_id)
            bar.advance(task)
    return len(waiting) - len(failed), failed


def _say_failed(failed: list[int]) -> None:
    if failed:
        err.print(
            f"[red]批次 {', '.join(map(str, failed))} 计入统计失败，原因见批次的错误信息；可重新运行[/red]"
        )
        raise typer.Exit(1)


@export_app.command("persons")
def export_persons(
    purpose: Annotated[
        str, typer.Option(help="导出用途（记入审计日志，至少 4 个文字或数字），如 人口普查比对")
    ],
    fmt: Annotated[str, typer.Option("--format", help="csv")] = "csv",
    out: Annotated[Path | None, typer.Option(help="输出文件（仅所有者可读写；默认标准输出）")] = None,
    actor: Annotated[str | None, typer.Option(help="经办人（与当前系统用户一并记入审计日志）")] = None,
) -> None:
    """Write the golden records as CSV (unmasked: an audited operator export, in each person's record)."""
    import sys

    from base.db import session_scope
    from registry.export import private_file, write_persons_csv
    from registry.operator import purpose_problem

    if fmt != "csv":
        err.print("[red]目前只支持 --format csv[/red]")
        raise typer.Exit(2)
    problem = purpose_problem(purpose)
    if problem:
        err.print(f"[red]--purpose：{problem}[/red]")
        raise typer.Exit(2)
    with session_scope() as session:
        if out is None:
            count = write_persons_csv(
                session=session, stream=sys.stdout, purpose=purpose, stated_actor=actor, destination="stdout"
            )
        else:
            with private_file(out) as fh:
                count = write_persons_csv(
                    session=session,
                    stream=fh,
                    purpose=purpose,
                    stated_actor=actor,
                    destination=str(out.resolve()),
                )
    err.print(f"已导出 {count} 人（已记入审计日志及每人的访问记录）")


@batch_app.command("release")
def batch_release(
    batch_id: Annotated[int, typer.Argument(help="批次号")],
    note: Annotated[str, typer.Option(help="放行理由")],
    actor: Annotated[str, typer.Option(help="操作人")] = "operator",
) -> None:
    """Release a quarantined batch and run the rest of its pipeline."""
    from base.db import session_factory, transaction
    from exchange.flows import process_batch
    from exchange.gate import release_batch

    factory = session_factory()
    try:
        with transaction(factory) as session:
            release_batch(session=session, batch_id=batch_id, actor=actor, note=note)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"批次 {batch_id} 已放行，处理结果：{BatchState(process_batch(factory, batch_id)).label}")


@review_app.command("list")
def review_list(limit: Annotated[int, typer.Option(help="最多显示条数")] = 20) -> None:
    """Open review items, oldest first."""
    from rich.table import Table
    from sqlalchemy import text

    from base.db import session_scope

    table = Table("事项", "类型", "批次", "行", "候选人员", "得分", "创建时间")
    with session_scope() as session:
        rows = session.execute(
            text(
                "SELECT i.id, i.kind, i.batch_id, r.row_no, p.person_no, i.score, i.created_at FROM review_item i "
                "JOIN source_record r ON r.id = i.source_record_id LEFT JOIN person p ON p.id = i.candidate_person_id "
                "WHERE i.state = 'open' ORDER BY i.created_at, i.id LIMIT :n"
            ),
            {"n": limit},
        ).all()
    for item_id, kind, *rest in rows:
        table.add_row(str(item_id), ReviewKind(kind).label, *(str(v) if v is not None else "" for v in rest))
    console.print(table)
    if rows:
        console.print("逐项对照：popex review show 事项号 --actor 姓名")


COMPARISON_LABELS = {
    "name": "姓名",
    "birth_date": "出生日期",
    "sex": "性别",
    "id_no": "证件号码",
    "id_kind": "证件类别",
    "community": "社区",
    "phone": "电话",
}
LEVEL_LABELS = {
    "exact": "相同",
    "same": "相同",
    "same_sound": "同音",
    "similar": "相近",
    "day_month_swapped": "月日颠倒",
    "one_part_differs": "年月日之一不同",
    "one_or_two_edits": "差一两位",
    "different": "不同",
    "same_kind": "同类",
    "resident_and_other": "居民身份证与境外证件",
    "ok": "一致",
}


# The compared fields whose values are codes, with their vocabulary (review show says them in words).
CODED_FIELDS: dict[str, Callable[[str], Labelled]] = {
    "性别": Sex,
    "人口类型": PopulationType,
    "证件类型": IdType,
}


def _in_words(field: str, value: str | None) -> str:
    """A compared field's value as the clerk reads it: a code in words, anything else as it is."""
    vocabulary = CODED_FIELDS.get(field)
    return label_of(vocabulary, value) if vocabulary else value or ""


def _weighed(name: str, value: object) -> str:
    """One comparison of a review item: [level, weight in bits] from the match model, or a bare level
    (an ID-number conflict: the number agrees, the name or birth date does not)."""
    level, weight = (value[0], value[1]) if isinstance(value, list) else (value, None)
    said = f"{COMPARISON_LABELS.get(name, name)} {LEVEL_LABELS.get(str(level), str(level))}"
    return said if weight is None else f"{said}（{weight:+.1f} 比特）"


@review_app.command("show")
def review_show(
    item: int,
    actor: Annotated[str, typer.Option(help="查看人（记入审计日志）")],
    unmasked: Annotated[bool, typer.Option(help="证件号码、电话显示明文（记入审计日志）")] = False,
) -> None:
    """The record beside the proposed person, field by field, and how the match model weighed them."""
    from rich.table import Table

    from base.db import session_scope
    from registry import review

    try:
        with session_scope() as session:
            shown = review.compare_item(
                session=session, item_id=item, actor=operator_actor(actor), unmasked=unmasked
            )
    except review.ReviewError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    score = "" if shown.score is None else f"，得分 {shown.score:.1f}"
    console.print(f"待核查事项 {shown.item_id}：{shown.kind}（{ReviewState(shown.state).label}{score}）")
    console.print(f"来源：{shown.batch} 第 {shown.row_no} 行；候选人员 {shown.person_no or '无'}")
    table = Table("字段", "源记录", "候选人员", "")
    for label, mine, theirs, same in shown.fields:
        agree = "" if same is None else ("=" if same else "≠")
        table.add_row(label, _in_words(label, mine), _in_words(label, theirs), agree)
    console.print(table)
    if shown.levels:
        console.print("比对：" + "；".join(_weighed(name, value) for name, value in shown.levels.items()))
    console.print(
        f"决定：popex review accept {item} --actor {actor}  或  popex review reject {item} --actor {actor}"
    )


def _review_op(op: str, *, actor: str, **kwargs: object) -> None:
    """A clerk's decision, recorded under the OS user with the stated --actor beside it. It changes
    persons and their numbers, so it waits for the identity lock like a batch's resolve → publish."""
    from base.db import session_factory, session_scope
    from exchange.flows import identity_lock
    from registry import review

    try:
        with identity_lock(session_factory()), session_scope() as session:
            person = getattr(review, op)(session=session, actor=operator_actor(actor), **kwargs)
            console.print(f"完成：人员编号 {person.person_no}")
    except review.ReviewError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@review_app.command("accept")
def review_accept(item: int, actor: Annotated[str, typer.Option()], note: str | None = None) -> None:
    """Same person: link the record to the proposed person."""
    _review_op("accept", item_id=item, actor=actor, note=note)


@review_app.command("reject")
def review_reject(item: int, actor: Annotated[str, typer.Option()], note: str | None = None) -> None:
    """Not the same person: a new person, never proposed again."""
    _review_op("reject", item_id=item, actor=actor, note=note)


@person_app.command("merge")
def person_merge(
    survivor: str, retired: str, actor: Annotated[str, typer.Option()], note: str | None = None
) -> None:
    """Merge RETIRED into SURVIVOR (the retired number redirects)."""
    _review_op("merge", survivor_no=survivor, retired_no=retired, actor=actor, note=note)


@person_app.command("unmerge")
def person_unmerge(retired: str, actor: Annotated[str, typer.Option()], note: str | None = None) -> None:
    """Undo a merge."""
    _review_op("unmerge", retired_no=retired, actor=actor, note=note)


@person_app.command("split")
def person_split(
    person: str, records: Annotated[list[int], typer.Argument()], actor: Annotated[str, typer.Option()]
) -> None:
    """Move some source records of PERSON to a new person."""
    _review_op("split", person_no=person, record_ids=records, actor=actor)


@app.command()
def demo(
    persons: Annotated[int, typer.Option(help="合成城市人口数")] = 3000,
    days: Annotated[int, typer.Option(help="日增量天数（默认 6：共 7 个交换日）")] = 6,
    seed: Annotated[int, typer.Option(help="随机种子")] = 7,
    serve: Annotated[bool, typer.Option(help="完成后启动网页")] = True,
) -> None:
    """The main job: database, synthetic city, daily pipelines, summary, then the web app on :8000."""
    from popex.demo import run_demo

    run_demo(persons=persons, days=days, seed=seed, start=None, serve=serve)


@db_app.command("check")
def db_check() -> None:
    """Referential and accounting checks of the bulk tables (they carry no foreign keys), and warnings
    about PostgreSQL settings below what bulk loads want (docs/OPERATIONS.md; they do not fail the check)."""
    from base.db import session_scope
    from registry.consistency import check_consistency
    from registry.server_settings import warnings

    with session_scope() as session:
        found = check_consistency(session=session)
        advice = warnings(session=session)
    for name, count in found.items():
        console.print(f"{'[green]通过[/green]' if count == 0 else f'[red]{count} 行不符[/red]'}  {name}")
    for line in advice:
        console.print(f"[yellow]设置建议[/yellow]  {line}")
    if any(found.values()):
        raise typer.Exit(1)


def run() -> None:
    """The `popex` command: the app; an unreachable or unmigrated database is one line, not a traceback."""
    from rich.markup import escape
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from registry.batches import connection_lost

    try:
        app()
    except ProgrammingError as exc:
        code = getattr(exc.orig, "pgcode", None)
        if code == "42501":  # insufficient_privilege: PostgreSQL's words name the object, not the data
            diag = getattr(exc.orig, "diag", None)
            hint = getattr(diag, "message_hint", None)
            primary = getattr(diag, "message_primary", None) or "permission denied"
            err.print(f"[red]数据库权限不足[/red]：{escape(primary)}" + (f"\n{escape(hint)}" if hint else ""))
            raise SystemExit(2) from None
        if code != "42P01":  # undefined_table: any other is a bug, shown whole
            raise
        err.print("[red]数据库尚未建表[/red]：请先运行 popex db upgrade（popex demo 会自动完成）。")
        raise SystemExit(2) from None
    except OperationalError as exc:
        if connection_lost(exc):  # it was there when the command started
            err.print(
                "[red]与数据库的连接中断[/red]，命令未完成。数据库恢复后重新运行同一命令即从中断处继续"
                "（已完成的步骤不会重复）。"
            )
            raise SystemExit(2) from None
        if getattr(exc.orig, "pgcode", None) is not None:  # the server answered: not a connection problem
            raise
        reason = str(exc.orig or exc).strip().splitlines()[0]
        err.print(
            f"[red]无法连接数据库[/red]：{escape(reason)}\n"
            "请检查 POPEX_DATABASE_URL；不设置时使用内置的 PostgreSQL（数据在 var/pg）。"
        )
        raise SystemExit(2) from None
