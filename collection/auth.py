"""Officers' credentials: argon2 password hashes, signed expiring session cookies, login throttling."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from base.lockout import minutes_locked
from base.sessions import sign, unsign
from collection.config import collection_settings, session_secret
from collection.models import LoginFailure, Officer
from registry.audit import record_audit

COOKIE = "popex_collection"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class LoginThrottled(Exception):
    """Too many failed logins for this account from this address; minutes: until the next attempt counts."""

    def __init__(self, minutes: int) -> None:
        super().__init__(minutes)
        self.minutes = minutes


def _locked_for(session: Session, *, officer_no: str, ip: str) -> int:
    """Minutes until the account may be tried from the address again (0: not locked): the later of the
    account's lock from the address and the address's own."""
    settings = collection_settings()
    window = timedelta(minutes=settings.failure_window_minutes)
    from_address = LoginFailure.ip == ip
    return max(
        minutes_locked(
            session,
            at=LoginFailure.at,
            where=from_address & (LoginFailure.officer_no == officer_no),
            allowed=settings.max_failures,
            window=window,
        ),
        minutes_locked(
            session,
            at=LoginFailure.at,
            where=from_address,
            allowed=settings.max_address_failures,
            window=window,
        ),
    )


def login(*, session: Session, officer_no: str, password: str, ip: str) -> Officer | None:
    """The officer when the credentials are right; None (and a failure counted) when not.

    Raises LoginThrottled after max_failures failures of the account from the address in the window, or
    max_address_failures from the address over every officer number (a script trying made-up numbers),
    without checking the password. A lock is audited once, by the failure that sets it
    (collection.login.throttled, with its scope), not on every refused attempt after it: a script
    hammering a locked account or address cannot flood the audit chain.
    """
    settings = collection_settings()
    window_start = func.now() - timedelta(minutes=settings.failure_window_minutes)
    actor = f"officer:{officer_no}"
    minutes = _locked_for(session, officer_no=officer_no, ip=ip)
    if minutes:
        raise LoginThrottled(minutes)
    officer = session.scalar(select(Officer).where(Officer.officer_no == officer_no))
    if officer is None or not officer.active or not verify_password(officer.password_hash, password):
        # The address's failures that no longer count go: the table keeps at most a window's worth.
        session.execute(delete(LoginFailure).where(LoginFailure.ip == ip, LoginFailure.at <= window_start))
        session.add(LoginFailure(officer_no=officer_no[:64], ip=ip[:64]))
        record_audit(session=session, actor=actor, action="collection.login.failed", detail={"ip": ip})
        session.flush()
        # This failure locks the account from the address, or the address for every account.
        recent = (LoginFailure.ip == ip, LoginFailure.at > window_start)
        failures, from_address = session.execute(
            select(func.count().filter(LoginFailure.officer_no == officer_no), func.count()).where(*recent)
        ).one()
        scope = "address" if from_address >= settings.max_address_failures else None
        if failures >= settings.max_failures:
            scope = scope or "account"
        if scope:
            record_audit(
                session=session,
                actor=actor,
                action="collection.login.throttled",
                detail={
                    "ip": ip,
                    "minutes": _locked_for(session, officer_no=officer_no, ip=ip),
                    "scope": scope,
                },
            )
        return None
    if _hasher.check_needs_rehash(officer.password_hash):
        officer.password_hash = hash_password(password)
    record_audit(session=session, actor=actor, action="collection.login", detail={"ip": ip})
    return officer


@dataclass(frozen=True)
class SessionData:
    """What the signed cookie carries: who, their CSRF token, and which password they logged in with."""

    officer_id: int
    csrf: str
    password_version: float


SALT = "popex.collection.session"


def password_version(officer: Officer) -> float:
    """Changes when the password is reset, which ends every session opened with the old one."""
    return officer.password_changed_at.timestamp()


def issue_session(officer: Officer) -> tuple[str, SessionData]:
    """A new signed cookie value (with a fresh CSRF token) for the officer."""
    data = SessionData(officer.id, secrets.token_urlsafe(24), password_version(officer))
    payload = [data.officer_id, data.csrf, data.password_version]
    return sign(payload, secret=session_secret(), salt=SALT), data


def read_session(cookie: str | None) -> SessionData | None:
    """The session in a cookie; None when missing, forged or older than session_minutes."""
    payload = unsign(
        cookie, secret=session_secret(), salt=SALT, max_age_seconds=collection_settings().session_minutes * 60
    )
    if not (isinstance(payload, list) and len(payload) == 3):
        return None
    officer_id, csrf, version = payload
    try:
        return SessionData(int(officer_id), str(csrf), float(version))
    except (ValueError, TypeError):
        return None


def csrf_ok(data: SessionData, token: str | None) -> bool:
    """The token sent with a form or request equals the session's (constant-time comparison)."""
    return bool(token) and secrets.compare_digest(data.csrf, token or "")
