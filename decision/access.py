"""Who may read decision statistics: planners with an API key (or a session their key opened), and anyone
for the levels an operator opened. An address that keeps presenting wrong keys is locked out for a while."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import DateTime, String, column, table, text
from sqlalchemy.orm import Session

from base.lockout import minutes_locked
from base.sessions import sign, unsign
from decision.config import decision_settings, session_secret
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


@dataclass(frozen=True)
class Planner:
    """An active planner."""

    id: int
    name: str


def planner_for_key(session: Session, key: str | None) -> Planner | None:
    """The active planner holding this key, else None."""
    if not key:
        return None
    row = session.execute(
        text("SELECT id, name FROM decision.planner WHERE key_sha256 = :k AND active"), {"k": _digest(key)}
    ).one_or_none()
    return Planner(row.id, row.name) if row is not None else None


def disable_planner(*, session: Session, name: str, actor: str) -> bool:
    """Deactivate a planner: their key and every session it opened stop working at the next request
    (audited). False when there is no such planner."""
    found = session.scalar(
        text("UPDATE decision.planner SET active = false WHERE name = :n RETURNING id"), {"n": name}
    )
    if found is None:
        return False
    record_audit(
        session=session,
        actor=actor,
        action="decision.planner.disabled",
        object_type="planner",
        object_id=str(found),
        detail={"name": name},
    )
    return True


# --- sessions: a signed, expiring cookie naming the planner (never the key) ------------------------

SESSION_SALT = "popex.decision.session"


def issue_session(planner: Planner) -> str:
    """The cookie value of a new session of the planner."""
    return sign([planner.id], secret=session_secret(), salt=SESSION_SALT)


def planner_for_session(session: Session, cookie: str | None) -> Planner | None:
    """The planner of a session cookie while it is unexpired and the planner still active, else None."""
    payload = unsign(
        cookie,
        secret=session_secret(),
        salt=SESSION_SALT,
        max_age_seconds=decision_settings().session_minutes * 60,
    )
    if not (isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], int)):
        return None
    row = session.execute(
        text("SELECT id, name FROM decision.planner WHERE id = :i AND active"), {"i": payload[0]}
    ).one_or_none()
    return Planner(row.id, row.name) if row is not None else None


def csrf_token(cookie: str) -> str:
    """The token a planner's forms carry: bound to the session cookie and the server's key, so a page of
    another site, which can read neither, cannot forge a form of this one (the session stays one id)."""
    return hmac.new(
        session_secret().encode(), f"{SESSION_SALT}.csrf:{cookie}".encode(), hashlib.sha256
    ).hexdigest()


def csrf_ok(cookie: str | None, token: str | None) -> bool:
    """The token sent with a form is the one of this session cookie (constant-time comparison)."""
    return bool(cookie) and bool(token) and secrets.compare_digest(csrf_token(cookie or ""), token or "")


# --- wrong keys: counted per client address, audited without the key ------------------------------


_FAILURE = table("login_failure", column("ip", String), column("at", DateTime), schema="decision")


class AddressLocked(Exception):
    """Too many wrong keys from this address in the window; minutes: until the next attempt counts."""

    def __init__(self, minutes: int) -> None:
        super().__init__(minutes)
        self.minutes = minutes


def _locked_for(session: Session, ip: str) -> int:
    """Minutes until the address may present a key again (0: not locked)."""
    settings = decision_settings()
    return minutes_locked(
        session,
        at=_FAILURE.c.at,
        where=_FAILURE.c.ip == ip,
        allowed=settings.max_failures,
        window=timedelta(minutes=settings.failure_window_minutes),
    )


def check_key(*, session: Session, key: str, ip: str, via: str) -> Planner | None:
    """The planner holding a key presented from an address (via: login or api), else None with the
    failure counted and audited (the address, never the key). Raises AddressLocked, without looking at
    the key, while the address is locked out: a guesser learns nothing from a locked address."""
    ip = ip[:64]
    minutes = _locked_for(session, ip)
    if minutes:
        raise AddressLocked(minutes)
    planner = planner_for_key(session, key)
    if planner is not None:
        return planner
    session.execute(
        text(
            "DELETE FROM decision.login_failure WHERE ip = :ip AND at <= now() - :window;"
            " INSERT INTO decision.login_failure (ip) VALUES (:ip)"
        ),  # the address's failures that no longer count go: at most max_failures rows per address
        {"ip": ip, "window": timedelta(minutes=decision_settings().failure_window_minutes)},
    )
    record_audit(
        session=session, actor=f"address:{ip}", action="decision.key.refused", detail={"ip": ip, "via": via}
    )
    minutes = _locked_for(session, ip)
    if minutes:  # this failure locked the address: audited once, not on every refused attempt after it
        record_audit(
            session=session,
            actor=f"address:{ip}",
            action="decision.key.locked",
            detail={"ip": ip, "via": via, "minutes": minutes},
        )
    return None


def log_in(*, session: Session, key: str, ip: str) -> Planner | None:
    """check_key for the login form, a successful login audited too."""
    planner = check_key(session=session, key=key, ip=ip, via="login")
    if planner is not None:
        record_audit(
            session=session,
            actor=f"planner:{planner.id}",
            action="decision.login",
            object_type="planner",
            object_id=str(planner.id),
            detail={"ip": ip[:64]},
        )
    return planner


def unlock_address(*, session: Session, ip: str, actor: str) -> int:
    """Forget the wrong keys counted for an address (audited); how many were forgotten."""
    count = session.execute(
        text(
            "WITH gone AS (DELETE FROM decision.login_failure WHERE ip = :ip RETURNING 1) SELECT count(*) FROM gone"
        ),
        {"ip": ip},
    ).scalar_one()
    record_audit(
        session=session, actor=actor, action="decision.address.unlocked", detail={"ip": ip, "failures": count}
    )
    return int(count)


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
