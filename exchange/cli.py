"""`popex departments`: push keys for member departments."""

import hashlib
import secrets
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

departments_app = typer.Typer(help="成员单位：推送密钥", no_args_is_help=True)
console = Console()


def new_push_key(*, session: Session, department: str, label: str | None = None) -> str:
    """Create a push key for a department; returns the key (only its hash is stored)."""
    from exchange.models import PushCredential
    from registry.audit import record_audit
    from registry.feeds import sync_feeds
    from registry.models import Department

    sync_feeds(session=session)
    if session.get(Department, department) is None:
        raise ValueError(f"未知的部门代码 {department}")
    key = "pk_" + secrets.token_urlsafe(32)
    session.add(
        PushCredential(
            department_code=department, key_hash=hashlib.sha256(key.encode()).hexdigest(), label=label
        )
    )
    record_audit(
        session=session,
        actor="admin",
        action="push_key.create",
        object_type="department",
        object_id=department,
    )
    session.flush()
    return key


@departments_app.command("key")
def create_key(department: str, label: Annotated[str | None, typer.Option(help="备注")] = None) -> None:
    """Create a push key for DEPARTMENT (gaj, wjw, rsj …); it is shown once."""
    from base.db import session_scope

    try:
        with session_scope() as session:
            key = new_push_key(session=session, department=department, label=label)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"部门 {department} 的推送密钥（只显示这一次，请妥善保存）：\n{key}")


@departments_app.command("revoke")
def revoke_keys(department: str) -> None:
    """Revoke every push key of DEPARTMENT."""
    from base.db import session_scope
    from exchange.models import PushCredential

    with session_scope() as session:
        done = (
            session.connection()
            .execute(
                update(PushCredential)
                .where(PushCredential.department_code == department, PushCredential.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            .rowcount
        )
    console.print(f"已吊销 {done} 个密钥")
