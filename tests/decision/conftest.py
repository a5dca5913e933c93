"""A small city for the decision tests: two districts, four streets, eight communities, and helpers that
write batches of person versions the way the merge step does."""

import itertools
import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.models import Area, Batch, Person, PersonVersion
from tests.factories import make_batch, make_person

DISTRICTS = {"330102": "上城区", "330106": "西湖区"}
STREETS = {"001": "一街道", "002": "二街道"}
COMMUNITIES = {"001": "甲社区", "002": "乙社区"}
BASE_TIME = datetime(2026, 1, 1, 8, 0)
_tick = itertools.count(1)


def add_areas(session: Session) -> list[str]:
    """The area hierarchy; returns the eight community codes."""
    communities = []
    for d, d_name in DISTRICTS.items():
        session.add(Area(code=d, name=d_name, level="district"))
        session.flush()
        for s, s_name in STREETS.items():
            session.add(Area(code=d + s, name=d_name[:2] + s_name, level="street", parent_code=d))
            session.flush()
            for c, c_name in COMMUNITIES.items():
                code = d + s + c
                session.add(
                    Area(
                        code=code, name=d_name[:2] + s_name[:1] + c_name, level="community", parent_code=d + s
                    )
                )
                communities.append(code)
    session.flush()
    return communities


def recorded_now() -> datetime:
    """A record time later than every earlier one (all of a test runs in one transaction, where now() stands)."""
    return BASE_TIME + timedelta(minutes=next(_tick))


def add_person(session: Session, *, valid_from: date, batch: Batch | None = None, **fields: Any) -> Person:
    """A golden record and its first version (written by batch, when given)."""
    person = make_person(session, valid_from=valid_from, **fields)
    session.execute(
        text("UPDATE person_version SET batch_id = :b, recorded_at = :r WHERE person_id = :p"),
        {"b": batch.id if batch else None, "r": recorded_now(), "p": person.id},
    )
    return person


def change(
    session: Session, person: Person, *, batch: Batch, valid_from: date, **changes: Any
) -> PersonVersion:
    """A new whole-row version of the person written by batch, and the golden record updated."""
    latest = session.scalars(
        select(PersonVersion)
        .where(PersonVersion.person_id == person.id)
        .order_by(PersonVersion.recorded_at.desc(), PersonVersion.id.desc())
    ).first()
    assert latest is not None
    columns = [
        c.key for c in PersonVersion.__table__.columns if c.key not in ("id", "recorded_at", "batch_id")
    ]
    fields = {k: getattr(latest, k) for k in columns}
    fields.update(changes, valid_from=valid_from, changed=sorted(changes) or ["none"])
    version = PersonVersion(**fields, batch_id=batch.id, recorded_at=recorded_now())
    session.add(version)
    for key, value in changes.items():
        if hasattr(person, key):
            setattr(person, key, value)
    session.flush()
    return version


@pytest.fixture
def communities(session: Session) -> list[str]:
    """The eight communities of the test city."""
    return add_areas(session)


def random_population(session: Session, communities: list[str], n: int, seed: int) -> list[Person]:
    """n people of every type, sex and age, some with their ID number giving their province."""
    rnd = random.Random(seed)
    people = []
    for i in range(n):
        ptype = rnd.choice(["registered", "registered", "floating", "foreign"])
        birth = date(1925, 1, 1) + timedelta(days=rnd.randrange(0, 36500))
        if i % 17 == 0:
            birth = date(2000, 2, 29)
        province = rnd.choice(["11", "41", "51", "99"])
        id_no = f"{province}0102{birth:%Y%m%d}{i % 1000:03d}{rnd.choice('0123456789X')}"
        people.append(
            add_person(
                session,
                valid_from=date(2025, 1, 1) + timedelta(days=rnd.randrange(0, 200)),
                population_type=ptype,
                sex=rnd.choice(["1", "2", "1", "2", None]),
                birth_date=None if i % 23 == 0 else birth,
                community_code=rnd.choice([*communities, None]) if i % 31 == 0 else rnd.choice(communities),
                id_no=id_no,
                id_type="居民身份证",
                name=f"测试{i}",
            )
        )
    return people


def random_batch(
    session: Session, people: list[Person], communities: list[str], *, day: date, seed: int
) -> Batch:
    """A batch of version changes: moves, deaths, departures, type changes, backdated corrections, births."""
    rnd = random.Random(seed)
    batch = make_batch(session, source=rnd.choice(["gaj_hj", "gaj_ld", "wjw_cs"]), as_of=day)
    for person in rnd.sample(people, k=len(people) // 5):
        kind = rnd.choice(["move", "move", "dead", "left", "type", "backdated", "phone", "return"])
        when = day - timedelta(days=rnd.randrange(0, 40))
        if kind == "move":
            change(session, person, batch=batch, valid_from=when, community_code=rnd.choice(communities))
        elif kind == "dead":
            change(session, person, batch=batch, valid_from=when, status="dead", death_date=when)
        elif kind == "left":
            change(session, person, batch=batch, valid_from=when, status="left")
        elif kind == "type":
            change(session, person, batch=batch, valid_from=when, population_type="registered")
        elif kind == "backdated":
            change(
                session,
                person,
                batch=batch,
                valid_from=when - timedelta(days=400),
                sex=rnd.choice(["1", "2"]),
            )
        elif kind == "phone":
            change(session, person, batch=batch, valid_from=when, phone=f"138{rnd.randrange(10**8):08d}")
        else:
            change(session, person, batch=batch, valid_from=when, status="active")
    for i in range(3):
        born = day - timedelta(days=rnd.randrange(0, 30))
        people.append(
            add_person(
                session,
                batch=batch,
                valid_from=born,
                birth_date=born,
                sex=rnd.choice(["1", "2"]),
                community_code=rnd.choice(communities),
                name=f"新生{seed}-{i}",
            )
        )
    session.flush()
    return batch
