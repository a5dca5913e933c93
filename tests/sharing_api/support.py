"""Test data and policies for the sharing API tests."""

import itertools
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.models import AuditLog, ChangeEvent, Person, PersonVersion
from sharing_api.clients import hash_key
from sharing_api.models import ApiClient
from sharing_api.policy import Operation, PersonField, Policy
from tests.factories import make_person

_numbers = itertools.count(1)

PURPOSE = "social_security"
HOME = "330102"  # the district every test client may see
AWAY = "330106001001"  # a community outside it


def policy(**changes: Any) -> Policy:
    """Every operation, every field (masked), registered and floating persons in HOME, a high rate."""
    data: dict[str, Any] = {
        "operations": [o.value for o in Operation],
        "purposes": [PURPOSE],
        "fields": [f.value for f in PersonField],
        "unmasked": [],
        "population_types": ["registered", "floating"],
        "areas": [HOME],
        "rate_limit": {"per_second": 1000, "burst": 1000},
        "verifiable": ["id_no", "name", "birth_date"],
    }
    data.update(changes)
    return Policy.model_validate(data)


def person(session: Session, **fields: Any) -> Person:
    """A person in HOME with an ID number and a phone, unless told otherwise."""
    defaults: dict[str, Any] = {
        "id_type": "RID",
        "id_no": f"33010219900307{next(_numbers):04d}",
        "phone": "13812345678",
        "address": "清波街道1号",
    }
    defaults.update(fields)
    return make_person(session, **defaults)


def birth_date_iso(p: Person) -> str:
    """A person's birth date as a request body gives it (every test person has one)."""
    assert p.birth_date is not None
    return p.birth_date.isoformat()


def event(session: Session, who: Person, event_type: str, **fields: Any) -> ChangeEvent:
    """A change event of a person, recorded as the merge step would."""
    version = PersonVersion(
        person_id=who.id, valid_from=date(2026, 11, 20), changed=[event_type], status=who.status
    )
    session.add(version)
    session.flush()
    values: dict[str, Any] = {
        "person_id": who.id,
        "event_type": event_type,
        "event_date": date(2026, 11, 20),
        "community_code": who.community_code,
        "version_id": version.id,
        "payload": {},
    }
    values.update(fields)
    row = ChangeEvent(**values)
    session.add(row)
    session.flush()
    return row


def audit_rows(session: Session, after: int = 0) -> list[AuditLog]:
    """The sharing service's access records written after an id (client administration left out)."""
    rows = session.scalars(
        select(AuditLog).where(AuditLog.id > after, AuditLog.action.like("sharing.%")).order_by(AuditLog.id)
    )
    return [r for r in rows if r.detail["purpose"] != "administration"]


def last_audit_id(session: Session) -> int:
    """The newest audit id (0 when there is none)."""
    return session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log")) or 0


def client_code(session: Session, headers: dict[str, str]) -> str:
    """The code of the client whose key the headers carry."""
    code = session.scalar(select(ApiClient.code).where(ApiClient.key_hash == hash_key(headers["X-API-Key"])))
    assert code is not None
    return code


def reset_server_backends() -> None:
    """Forget this process's sharing engines, backends, settings and cached clients (before and after a
    test serves the app under its own settings)."""
    from base.settings import database_settings
    from sharing_api.config import sharing_settings
    from sharing_api.dependencies import _server_backends, api_engine, client_cache, rate_limiter, read_engine

    if _server_backends.cache_info().currsize:
        backends = _server_backends()
        for grouped in (backends.reads, backends.audit):
            connection = getattr(grouped, "_connection", None)
            if connection is not None:
                connection.close()
    _server_backends.cache_clear()
    for cached in (read_engine, api_engine):
        if cached.cache_info().currsize:
            cached().dispose()
        cached.cache_clear()
    for cached_settings in (database_settings, sharing_settings, rate_limiter):
        cached_settings.cache_clear()
    client_cache.clear()
