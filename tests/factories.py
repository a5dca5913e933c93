"""Factories for test data in the one database (small, readable, explicit)."""

import itertools
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.models import Area, Batch, Department, Feed, Person, PersonIdentifier, PersonVersion

_counter = itertools.count(1)


def make_areas(session: Session) -> list[str]:
    """A district with one street and two communities; returns the community codes."""
    session.add(Area(code="330102", name="上城区", level="district"))
    session.flush()
    session.add(Area(code="330102001", name="清波街道", level="street", parent_code="330102"))
    session.flush()
    session.add_all(
        [
            Area(code="330102001001", name="清波社区", level="community", parent_code="330102001"),
            Area(code="330102001002", name="柳翠社区", level="community", parent_code="330102001"),
        ]
    )
    session.flush()
    return ["330102001001", "330102001002"]


def make_batch(
    session: Session, source: str = "gaj_hj", as_of: date = date(2026, 11, 1), **fields: Any
) -> Batch:
    """A received batch of a feed (department and feed rows created when missing)."""
    dept = source.split("_")[0]
    if session.get(Department, dept) is None:
        session.add(Department(code=dept, name=dept))
        session.flush()
    if session.get(Feed, source) is None:
        session.add(Feed(source=source, department_code=dept, title=source))
        session.flush()
    n = next(_counter)
    batch = Batch(
        source=source,
        file_name=f"{source}_{as_of:%Y%m%d}_{n}.csv",
        sha256=f"{n:064x}",
        size_bytes=0,
        archive_path="/dev/null",
        as_of_date=as_of,
        **fields,
    )
    session.add(batch)
    session.flush()
    return batch


def make_person(session: Session, *, valid_from: date = date(2026, 11, 1), **fields: Any) -> Person:
    """A golden record with its first version and, when it has an ID number, its identifier."""
    defaults: dict[str, Any] = {
        "name": "王小明",
        "name_pinyin": "wangxiaoming",
        "sex": "1",
        "birth_date": date(1990, 3, 7),
        "status": "active",
        "population_type": "registered",
        "community_code": "330102001001",
    }
    defaults.update(fields)
    number = session.scalar(text("SELECT nextval('person_no_seq')"))
    person = Person(
        person_no=f"P{number:011d}", area_key=(defaults["community_code"] or "")[:6] or None, **defaults
    )
    session.add(person)
    session.flush()
    if person.id_no:
        session.add(
            PersonIdentifier(id_type=person.id_type or "RID", id_no=person.id_no, person_id=person.id)
        )
    version_fields = {
        c.key: getattr(person, c.key) for c in PersonVersion.__table__.columns if hasattr(Person, c.key)
    }
    version_fields.pop("id")
    session.add(
        PersonVersion(person_id=person.id, valid_from=valid_from, changed=["created"], **version_fields)
    )
    session.flush()
    return person


def stage_audit_clock(session: Session, sql: str) -> None:
    """Replace the audit chain's clock (migration 0014) inside the test's transaction: rolled back with it,
    seen by no other connection. now() cannot be moved; the clock the chain reads can."""
    session.execute(
        text(
            f"CREATE OR REPLACE FUNCTION audit_log_clock() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$ {sql} $$"
        )
    )
