"""`popex officers`: the administrators' commands for community information officers' accounts."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

officers_app = typer.Typer(help="社区信息员账号：新增、列出、停用、重置密码、解除锁定", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

Password = Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="密码")]


def _check(password: str) -> None:
    if len(password) < 10:
        err.print("[red]密码至少 10 位[/red]")
        raise typer.Exit(1)


@officers_app.command("add")
def add(
    officer_no: Annotated[str, typer.Argument(help="信息员工号")],
    name: Annotated[str, typer.Argument(help="姓名")],
    community: Annotated[str, typer.Argument(help="所属社区代码（12位）")],
    password: Password,
) -> None:
    """Add an officer of one community."""
    from base.db import session_scope
    from collection import service

    _check(password)
    try:
        with session_scope() as session:
            service.add_officer(
                session=session, officer_no=officer_no, name=name, community_code=community, password=password
            )
    except service.NotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"已新增信息员 {officer_no}（社区 {community}）")


@officers_app.command("list")
def list_(community: Annotated[str | None, typer.Option(help="只列出此社区")] = None) -> None:
    """List officers."""
    from base.db import session_scope
    from collection import service

    table = Table("工号", "姓名", "社区代码", "状态", "创建时间")
    with session_scope() as session:
        for o in service.list_officers(session=session, community_code=community):
            table.add_row(
                o.officer_no,
                o.name,
                o.community_code,
                "启用" if o.active else "停用",
                f"{o.created_at:%Y-%m-%d}",
            )
    console.print(table)


@officers_app.command("disable")
def disable(officer_no: Annotated[str, typer.Argument(help="信息员工号")]) -> None:
    """Disable an officer (their sessions end at once)."""
    from base.db import session_scope
    from collection import service

    try:
        with session_scope() as session:
            service.disable_officer(session=session, officer_no=officer_no)
    except service.NotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"已停用信息员 {officer_no}")


@officers_app.command("reset-password")
def reset(officer_no: Annotated[str, typer.Argument(help="信息员工号")], password: Password) -> None:
    """Set a new password (and enable the account); old sessions end."""
    from base.db import session_scope
    from collection import service

    _check(password)
    try:
        with session_scope() as session:
            service.reset_password(session=session, officer_no=officer_no, password=password)
    except service.NotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"已重置信息员 {officer_no} 的密码（账号已启用，登录失败锁定已解除）")


@officers_app.command("unlock")
def unlock(officer_no: Annotated[str, typer.Argument(help="信息员工号")]) -> None:
    """Lift a login lockout (failed logins forgotten) without changing the password."""
    from base.db import session_scope
    from collection import service

    try:
        with session_scope() as session:
            count = service.unlock_officer(session=session, officer_no=officer_no)
    except service.NotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"已解除信息员 {officer_no} 的登录锁定（清除 {count} 次失败记录），现在即可登录")
