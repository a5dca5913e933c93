"""Who may read decision statistics: planners with an API key, and anyone for the levels an operator opened."""

import hashlib
import secrets

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision.indicators import LEVEL_OF_LENGTH
from registry.audit import record_audit
from schemas.canonical import AreaLevel

LEVELS = tuple(level.value for level in AreaLevel)  # their words: AreaLevel.label


def level_of(area_code: str) -> str:
    """The level of an area by the length of its code ('' is the city)."""
    return LEVEL_OF_LENGTH.get(len(area_code), "community")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def add_planner(*, session: Session, name: str, actor: str) -> str:
    """A new planner; returns their API key (shown once: only its SHA-256 is stored)."""
    key = "pk_" + secrets.token_urlsafe(24)
    session.execute(
        text("INSERT INTO decision.planner (name, key_sha256) VALUES (:n, :k)"),
        {"n": name, "k": _digest(key)},
    )
    record_audit(session=session, actor=actor, action="decision.planner.added", detail={"name": name})
    return key


def planner_for_key(session: Session, key: str | None) -> str | None:
    """The name of the active planner holding this key, else None."""
    if not key:
        return None
    name = session.scalar(
        text("SELECT name FROM decision.planner WHERE key_sha256 = :k AND active"), {"k": _digest(key)}
    )
    return str(name) if name is not None else None


def open_levels(session: Session) -> set[str]:
    """The levels whose statistics anyone may read."""
    return set(session.scalars(text("SELECT level FROM decision.open_level")))


def set_open(*, session: Session, level: str, opened: bool, actor: str) -> None:
    """Open a level to everyone, or close it again (audited)."""
    if level not in LEVELS:
        raise ValueError(f"层级须为 {', '.join(LEVELS)} 之一")
    if opened:
        session.execute(
            text(
                "INSERT INTO decision.open_level (level, opened_by) VALUES (:l, :a) ON CONFLICT (level) DO NOTHING"
            ),
            {"l": level, "a": actor},
        )
    else:
        session.execute(text("DELETE FROM decision.open_level WHERE level = :l"), {"l": level})
    record_audit(
        session=session,
        actor=actor,
        action="decision.level.opened" if opened else "decision.level.closed",
        detail={"level": level},
    )
