"""`popex decision`: planners' API keys and the levels whose statistics anyone may read."""

import getpass
from typing import Annotated

import typer
from rich.console import Console

decision_app = typer.Typer(help="决策分析：规划人员密钥、公开层级", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
Level = Annotated[str, typer.Argument(help="层级：city、district、street 或 community")]


@decision_app.command("planner-add")
def planner_add(name: Annotated[str, typer.Argument(help="规划人员姓名或单位")]) -> None:
    """Add a planner and print their API key (shown only now)."""
    from base.db import session_scope
    from decision import access

    with session_scope() as session:
        key = access.add_planner(session=session, name=name, actor=f"cli:{getpass.getuser()}")
    console.print(f"已添加规划人员 {name}。API 密钥（仅显示这一次）：\n{key}")


def _set(level: str, opened: bool) -> None:
    from base.db import session_scope
    from decision import access

    try:
        with session_scope() as session:
            access.set_open(session=session, level=level, opened=opened, actor=f"cli:{getpass.getuser()}")
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"{level} 层级的统计数据已{'向所有人公开' if opened else '改为仅规划人员可看'}")


@decision_app.command("open")
def open_level(level: Level) -> None:
    """Let anyone read the statistics of a level (pages, API, exports)."""
    _set(level, True)


@decision_app.command("close")
def close_level(level: Level) -> None:
    """Make a level's statistics planners-only again."""
    _set(level, False)


@decision_app.command("planner-disable")
def planner_disable(name: Annotated[str, typer.Argument(help="规划人员姓名或单位")]) -> None:
    """Deactivate a planner: their key and every open session stop working at the next request."""
    from base.db import session_scope
    from decision import access

    with session_scope() as session:
        found = access.disable_planner(session=session, name=name, actor=f"cli:{getpass.getuser()}")
    if not found:
        err.print(f"[red]没有名为 {name} 的规划人员[/red]")
        raise typer.Exit(1)
    console.print(f"已停用规划人员 {name}：其密钥和已登录的会话立即失效")


@decision_app.command("unlock")
def unlock(address: Annotated[str, typer.Argument(help="被锁定的客户端地址")]) -> None:
    """Forget the wrong keys counted for an address, so it may log in or call the API at once."""
    from base.db import session_scope
    from decision import access

    with session_scope() as session:
        count = access.unlock_address(session=session, ip=address, actor=f"cli:{getpass.getuser()}")
    console.print(f"已解除 {address} 的锁定（清除 {count} 次失败记录）")
