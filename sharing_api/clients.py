"""API clients: keys, policies, and their administration (the CLI's units of work)."""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.feeds import sync_feeds
from registry.models import Department
from sharing_api.audit import AccessEntry, append_access
from sharing_api.exceptions import ErrorCode, SharingError
from sharing_api.models import ApiClient
from sharing_api.policy import Policy

KEY_PREFIX = "pxk_"


def hash_key(key: str) -> str:
    """SHA-256 of a key, hex.

    A fast hash is enough here, and argon2 would be wrong: a key is 256 random bits, not a password,
    so nothing can be guessed from its hash and salting or stretching adds nothing; while a
    deliberately slow hash on every request (tens of milliseconds) would cost the service its target.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new key: a recognisable prefix (for secret scanners) and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ClientContext:
    """The authenticated client of a request."""

    id: int
    code: str
    name: str
    policy: Policy


def authenticate(*, session: Session, key: str) -> ClientContext:
    """The client a key belongs to, or CREDENTIAL_INVALID: an expired key, or a disabled client's, is
    refused exactly like an unknown one (same code, same message, one query either way), so that a
    key found somewhere cannot be confirmed as having been one."""
    row = session.execute(
        select(
            ApiClient.id,
            ApiClient.code,
            ApiClient.name,
            ApiClient.status,
            ApiClient.policy,
            func.coalesce(ApiClient.key_expires_at <= func.now(), False).label("expired"),
        ).where(ApiClient.key_hash == hash_key(key))
    ).one_or_none()
    if row is None or row.expired or row.status != "active":
        raise SharingError(ErrorCode.CREDENTIAL_INVALID)
    return ClientContext(row.id, row.code, row.name, Policy.model_validate(row.policy))


class ClientCache:
    """Clients recently authenticated by this process, by key hash (refusals too)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ClientContext | SharingError]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str, *, ttl: float) -> ClientContext | SharingError | None:
        """The remembered answer for a key if younger than ttl seconds, else None."""
        hit = self._entries.get(hash_key(key))
        return hit[1] if hit is not None and time.monotonic() - hit[0] < ttl else None

    def load(self, *, session: Session, key: str) -> ClientContext | SharingError:
        """Authenticate against the database and remember the answer."""
        try:
            answer: ClientContext | SharingError = authenticate(session=session, key=key)
        except SharingError as exc:
            answer = exc
        with self._lock:
            if len(self._entries) > 10_000:  # random unknown keys must not grow it without bound
                self._entries.clear()
            self._entries[hash_key(key)] = (time.monotonic(), answer)
        return answer

    def clear(self) -> None:
        """Forget every client."""
        with self._lock:
            self._entries.clear()


class ClientNotFound(LookupError):
    """No client has this code."""


class ClientRefused(ValueError):
    """A client that cannot be registered as asked; the message says why, in Chinese."""


def _admin_audit(session: Session, *, code: str, operator: str, operation: str, **extra: object) -> None:
    append_access(
        session,
        [
            AccessEntry(
                client=code,
                end_user=operator,
                purpose="administration",
                operation=operation,
                outcome="ok",
                extra=dict(extra),
            )
        ],
    )


def _get(session: Session, code: str) -> ApiClient:
    client = session.scalar(select(ApiClient).where(ApiClient.code == code))
    if client is None:
        raise ClientNotFound(code)
    return client


def _expiry(key_days: int | None) -> Any:
    return None if key_days is None else func.now() + timedelta(days=key_days)


def create_client(
    *,
    session: Session,
    code: str,
    name: str,
    policy: Policy,
    department_code: str | None = None,
    key_days: int | None = 365,
    operator: str,
) -> tuple[ApiClient, str]:
    """Register a client; returns it and its key (shown once: only the hash is kept)."""
    if session.scalar(select(ApiClient.id).where(ApiClient.code == code)) is not None:
        raise ClientRefused(f"接入单位代码 {code} 已被使用（换发密钥：popex clients rotate {code}）")
    if department_code is not None:
        sync_feeds(session=session)  # the member departments are those of the feed specs
        rows = session.execute(select(Department.code, Department.name).order_by(Department.code))
        known = {department: title for department, title in rows}
        if department_code not in known:
            listed = "、".join(f"{c}（{n}）" for c, n in known.items())
            raise ClientRefused(f"成员单位代码 {department_code} 不存在；成员单位有：{listed}")
    key = new_key()
    client = ApiClient(
        code=code,
        name=name,
        department_code=department_code,
        key_hash=hash_key(key),
        key_expires_at=_expiry(key_days),
        status="active",
        policy=policy.model_dump(mode="json"),
    )
    session.add(client)
    session.flush()
    _admin_audit(session, code=code, operator=operator, operation="client_create", policy=client.policy)
    return client, key


def rotate_key(*, session: Session, code: str, key_days: int | None = 365, operator: str) -> str:
    """Replace a client's key; the old one stops working at once. Returns the new key."""
    client = _get(session, code)
    key = new_key()
    client.key_hash = hash_key(key)
    client.key_expires_at = _expiry(key_days)
    client.key_rotated_at = func.now()
    session.flush()
    _admin_audit(session, code=code, operator=operator, operation="client_rotate_key")
    return key


def set_status(*, session: Session, code: str, active: bool, operator: str) -> None:
    """Disable (or re-enable) a client."""
    client = _get(session, code)
    client.status = "active" if active else "disabled"
    session.flush()
    _admin_audit(
        session, code=code, operator=operator, operation="client_enable" if active else "client_disable"
    )


def set_policy(*, session: Session, code: str, policy: Policy, operator: str) -> None:
    """Replace a client's policy."""
    client = _get(session, code)
    client.policy = policy.model_dump(mode="json")
    session.flush()
    _admin_audit(session, code=code, operator=operator, operation="client_policy", policy=client.policy)


def list_clients(*, session: Session) -> list[ApiClient]:
    """Every client, by code."""
    return list(session.scalars(select(ApiClient).order_by(ApiClient.code)))
