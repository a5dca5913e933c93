"""`popex clients …` (API clients and their policies) and `popex audit …` (the hash-chained log)."""

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

clients_app = typer.Typer(help="信息共享服务的接入单位：密钥与授权策略", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志：校验哈希链、查询个人被访问记录", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

Operator = Annotated[str | None, typer.Option(help="操作人员（记入审计日志），缺省为当前系统用户")]
KeyDays = Annotated[int, typer.Option(help="密钥有效天数；0 为永不过期")]


def _policy(file: Path | None, options: dict[str, Any]) -> Any:
    """The policy from a YAML/JSON file, with any options given on the command line replacing its keys."""
    import yaml
    from pydantic import ValidationError

    from sharing_api.policy import Policy

    data: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        data = loaded.get("policy", loaded) if isinstance(loaded, dict) else {}
    data.update({k: v for k, v in options.items() if v})
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err.print(f"[red]授权策略不合法：[/red]\n{exc}")
        raise typer.Exit(2) from exc


def _show_key(code: str, key: str) -> None:
    console.print(f"接入单位 {code} 的 API 密钥（只显示这一次，请立即安全转交）：")
    console.print(key, markup=False, highlight=False)


@clients_app.command("create")
def create(
    code: Annotated[str, typer.Argument(help="接入单位代码，如 rs_sbj")],
    name: Annotated[str, typer.Option(help="名称，如 人社局社保中心")],
    policy: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="授权策略文件（YAML 或 JSON）")
    ] = None,
    department: Annotated[str | None, typer.Option(help="所属成员单位代码")] = None,
    operation: Annotated[list[str] | None, typer.Option(help="可用接口（可重复）")] = None,
    purpose: Annotated[list[str] | None, typer.Option(help="可申明的用途（可重复）")] = None,
    field: Annotated[list[str] | None, typer.Option(help="可读字段（可重复）")] = None,
    unmasked: Annotated[list[str] | None, typer.Option(help="明文返回的字段：id_no、phone")] = None,
    population_type: Annotated[list[str] | None, typer.Option(help="可见人口类型（可重复）")] = None,
    area: Annotated[list[str] | None, typer.Option(help="可见区划代码（可重复），* 为全市")] = None,
    rate: Annotated[float | None, typer.Option(help="每秒请求数")] = None,
    burst: Annotated[int | None, typer.Option(help="突发请求数")] = None,
    key_days: KeyDays = 365,
    operator: Operator = None,
) -> None:
    """Register a client with its policy (from a file, from options, or both) and print its key once."""
    from base.db import session_scope
    from sharing_api.clients import ClientRefused, create_client

    options: dict[str, Any] = {
        "operations": operation,
        "purposes": purpose,
        "fields": field,
        "unmasked": unmasked,
        "population_types": population_type,
        "areas": area,
        "rate_limit": {"per_second": rate, "burst": burst} if rate and burst else None,
    }
    checked = _policy(policy, options)
    try:
        with session_scope() as session:
            _, key = create_client(
                session=session,
                code=code,
                name=name,
                policy=checked,
                department_code=department,
                key_days=key_days or None,
                operator=operator or getpass.getuser(),
            )
    except ClientRefused as exc:
        err.print(f"[red]未登记：[/red]{exc}")
        raise typer.Exit(2) from exc
    _show_key(code, key)


@clients_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """Every client with its status, key expiry and policy."""
    from base.db import session_scope
    from sharing_api.clients import list_clients

    with session_scope() as session:
        clients = list_clients(session=session)
        rows: list[dict[str, Any]] = [
            {
                "code": c.code,
                "name": c.name,
                "department": c.department_code,
                "status": c.status,
                "key_expires_at": c.key_expires_at.isoformat(timespec="seconds")
                if c.key_expires_at
                else None,
                "policy": c.policy,
            }
            for c in clients
        ]
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("代码", "名称", "状态", "密钥到期", "接口", "用途", "区域", "频率")
    for r in rows:
        p = r["policy"]
        table.add_row(
            r["code"],
            r["name"],
            r["status"],
            r["key_expires_at"] or "永不",
            ", ".join(p["operations"]),
            ", ".join(p["purposes"]),
            ", ".join(p["areas"]),
            f"{p['rate_limit']['per_second']}/s",
        )
    console.print(table)


def _admin(action: str, code: str, **kwargs: Any) -> Any:
    """Run one client administration function, turning an unknown code into a clear error."""
    from base.db import session_scope
    from sharing_api import clients

    kwargs["operator"] = kwargs["operator"] or getpass.getuser()
    try:
        with session_scope() as session:
            return getattr(clients, action)(session=session, code=code, **kwargs)
    except clients.ClientNotFound as exc:
        err.print(f"[red]没有代码为 {code} 的接入单位[/red]")
        raise typer.Exit(1) from exc


@clients_app.command("rotate")
def rotate(
    code: Annotated[str, typer.Argument(help="接入单位代码")],
    key_days: KeyDays = 365,
    operator: Operator = None,
) -> None:
    """Issue a new key; the old one stops working at once."""
    key = _admin("rotate_key", code, key_days=key_days or None, operator=operator)
    _show_key(code, key)


@clients_app.command("disable")
def disable(code: Annotated[str, typer.Argument(help="接入单位代码")], operator: Operator = None) -> None:
    """Stop a client: every request with its key is refused."""
    _admin("set_status", code, active=False, operator=operator)
    console.print(f"接入单位 {code} 已停用")


@clients_app.command("enable")
def enable(code: Annotated[str, typer.Argument(help="接入单位代码")], operator: Operator = None) -> None:
    """Re-enable a disabled client."""
    _admin("set_status", code, active=True, operator=operator)
    console.print(f"接入单位 {code} 已启用")


@clients_app.command("policy")
def policy(
    code: Annotated[str, typer.Argument(help="接入单位代码")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="授权策略文件（YAML 或 JSON）")],
    operator: Operator = None,
) -> None:
    """Replace a client's policy."""
    _admin("set_policy", code, policy=_policy(file, {}), operator=operator)
    console.print(f"接入单位 {code} 的授权策略已更新")


@audit_app.command("verify")
def verify(
    anchor: Annotated[bool, typer.Option(help="校验通过后签一个新锚点（需配置锚点密钥）")] = True,
) -> None:
    """Verify the hash chain and check it against the signed anchors; exit 1 and say what is wrong."""
    from base.db import session_scope
    from base.progress import progress_bar
    from registry.anchors import AnchorSettings, verify_log, write_anchor

    settings = AnchorSettings()
    with session_scope() as session, progress_bar() as bar:
        task = bar.add_task("校验审计日志（按记录 id）", total=None)

        def report(done: int, last: int) -> None:
            bar.update(task, completed=done, total=last)

        verdict = verify_log(session=session, settings=settings, progress=report)
        key = settings.key()
        signed = (
            write_anchor(session=session, settings=settings, key=key)
            if verdict.ok and anchor and key
            else None
        )
    if not verdict.ok:
        err.print(f"[red]审计日志校验失败（已读 {verdict.check.rows} 条）：[/red]")
        for problem in verdict.problems:
            err.print(f"[red]- {problem}[/red]")
        raise typer.Exit(1)
    console.print(
        f"审计日志校验通过：共 {verdict.check.rows} 条记录，哈希链完整，与 {verdict.anchors} 个锚点相符"
    )
    if verdict.start is not None:
        console.print(
            f"其中前 {verdict.start.count} 条（至记录 id={verdict.start.id}）已按保留期限分离归档，"
            f"从签名的起点续验；{verdict.archived} 个锚点在已分离的月份，按起点核对"
        )
    for point in verdict.restores:
        console.print(
            f"数据库曾从备份恢复：签于 {point.signed_at}，审计日志恢复到记录 id={point.id}（共 {point.count} 条）"
        )
    if verdict.lost:
        console.print(f"{verdict.lost} 个锚点所记的记录随恢复丢失，未核对")
    if verdict.unanchored:
        err.print(
            "[yellow]未配置锚点密钥（POPEX_AUDIT_ANCHOR_KEY 或 _KEY_FILE）：无法发现截短、清空或重新链接[/yellow]"
        )
    if signed is not None:
        console.print(f"已签新锚点：记录 id={signed.id}，共 {signed.count} 条")


@audit_app.command("anchor")
def anchor_() -> None:
    """Sign the chain's head and append it to the anchors file (run at intervals, e.g. every 10 minutes)."""
    from base.db import session_scope
    from registry.anchors import AnchorRefused, AnchorSettings, write_anchor

    settings = AnchorSettings()
    key = settings.key()
    if key is None:
        err.print("[red]未配置锚点密钥：请设置 POPEX_AUDIT_ANCHOR_KEY 或 POPEX_AUDIT_ANCHOR_KEY_FILE[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            signed = write_anchor(session=session, settings=settings, key=key)
    except AnchorRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if signed is None:
        console.print("审计日志为空：没有可签的锚点")
        return
    console.print(f"已签锚点：记录 id={signed.id}，共 {signed.count} 条，写入 {settings.path}")


@audit_app.command("restored")
def restored(
    note: Annotated[
        str, typer.Option(help="恢复说明（记入审计日志），如 故障 2026-12-06 从 02:00 的备份恢复")
    ],
    actor: Annotated[str | None, typer.Option(help="经办人（与当前系统用户一并记入审计日志）")] = None,
) -> None:
    """After restoring the database from a backup, before starting the platform: sign the log's head as
    the point it was restored to. The anchors signed since the backup are then reported as lost in this
    restore, not as a shortened log, and anchoring goes on (docs/OPERATIONS.md, Backup and restore)."""
    from base.db import session_scope
    from registry.anchors import AnchorSettings, RestoreRefused, record_restore
    from registry.operator import operator_actor

    settings = AnchorSettings()
    try:
        with session_scope() as session:
            point, lost = record_restore(
                session=session, settings=settings, actor=operator_actor(actor), note=note
            )
    except RestoreRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"已签恢复记录：审计日志恢复到记录 id={point.id}（共 {point.count} 条）；"
        f"此前 {lost} 个锚点所记的记录随恢复丢失，不再核对。写入 {settings.restore_path}"
    )


@audit_app.command("history")
def history(
    person_no: Annotated[str, typer.Argument(help="统一人口编号")],
    purpose: Annotated[str, typer.Option(help="查询用途（记入审计日志），如 答复居民查询申请 2026-118 号")],
    actor: Annotated[str | None, typer.Option(help="经办人（与当前系统用户一并记入审计日志）")] = None,
    limit: Annotated[int, typer.Option(help="最多显示条数")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """A person's whole access record (every client, exports, review views, these look-ups), newest
    first; the look-up is itself audited, with the OS user and the purpose."""
    from base.db import session_scope
    from sharing_api.service import person_record

    try:
        with session_scope() as session:
            rows = person_record(
                session=session, person_no=person_no, purpose=purpose, stated_actor=actor, limit=limit
            )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False))
        return
    table = Table("时间", "接入单位", "操作人员", "用途", "操作", "结果", "字段")
    for r in rows:
        at = r.at.isoformat(timespec="seconds")
        table.add_row(
            at, r.client or "（运营方）", r.who, r.purpose, r.action, r.outcome, ", ".join(r.fields)
        )
    console.print(table)
