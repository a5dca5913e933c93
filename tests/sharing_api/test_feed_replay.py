"""A subscriber's copy stays exact (issue 16.3): random moves, population-type changes, deaths, merges,
splits and unmerges; a client that took the baseline and replayed the change feed holds exactly what
lookups return for its scope (real pipeline, real PostgreSQL, the HTTP API)."""

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from exchange import flows
from registry import events, review
from registry.models import Link, Person
from registry.normalise.ids import check_char
from schemas.canonical import BatchState
from tests.factories import make_batch
from tests.feedfiles import hj, write_feed

SEEN = "330102001001"  # the client's one community
AWAY = "330102001002"  # the same street's other community: outside the client's scope
PERSONS = 4
API = "/api/v1"
_ids = itertools.count(1)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.integers(0, PERSONS - 1), st.sampled_from([SEEN, AWAY])),
        st.tuples(st.just("type"), st.integers(0, PERSONS - 1), st.sampled_from(["registered", "floating"])),
        st.tuples(st.just("die"), st.integers(0, PERSONS - 1), st.none()),
        st.tuples(st.just("merge"), st.integers(0, PERSONS - 1), st.integers(0, PERSONS - 1)),
        st.tuples(st.just("split"), st.integers(0, PERSONS - 1), st.none()),
        st.tuples(st.just("unmerge"), st.integers(0, PERSONS - 1), st.none()),
        st.tuples(st.just("subscribe"), st.none(), st.none()),  # a second subscriber joins here
    ),
    max_size=8,
)


def _birth(n: int) -> date:
    return date(1940, 1, 1) + timedelta(days=53 * n)  # far apart: no person is a near match of another


def _id_no(n: int) -> str:
    first17 = f"330102{_birth(n):%Y%m%d}001"  # odd: male
    return first17 + check_char(first17)


def _people(session: Session, factory: Any, tmp_path: Path) -> list[str]:
    """PERSONS new persons through the pipeline, each with two records (two days' files): splittable."""
    ns = [next(_ids) for _ in range(PERSONS)]
    folder = tmp_path / f"feed{ns[0]}"
    folder.mkdir()
    first = date(2026, 1, 1) + timedelta(days=ns[0] // PERSONS * 2)  # each example its own days (past ones)
    for day, moved in ((first, False), (first + timedelta(days=1), True)):  # half moved away on day two
        rows = [
            hj(f"K{n}", _id_no(n), f"测试{n}", "男", str(_birth(n)), community=AWAY if moved and n % 2 else SEEN,
               when=str(day))
            for n in ns
        ]  # fmt: skip
        done = flows.ingest_file(factory, write_feed(folder, "gaj_hj", day, rows))
        assert done.state == "completed", done
    numbers = sorted(
        session.scalars(select(Person.person_no).where(Person.id_no.in_([_id_no(n) for n in ns])))
    )
    assert len(numbers) == PERSONS, numbers
    return numbers


def _as_batch(session: Session, person_no: str, **changes: Any) -> None:
    """What the merge step writes for a batch that changes a person, then the batch's publish step."""
    person = session.scalar(select(Person).where(Person.person_no == person_no))
    if person is None or person.status == "retired":
        return
    batch = make_batch(session, "sim_changes", state=BatchState.MERGED.value)  # not a gaj_hj day
    changed = [k for k, v in changes.items() if getattr(person, k) != v]
    for key, value in changes.items():
        setattr(person, key, value)
    session.flush()
    session.execute(
        text(
            "INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, status, id_no, name, sex,"
            " birth_date, death_date, community_code, population_type, address, phone, ethnicity, marital_status)"
            " SELECT id, area_key, current_date, :b, CAST(:changed AS jsonb), status, id_no, name, sex, birth_date,"
            " death_date, community_code, population_type, address, phone, ethnicity, marital_status"
            " FROM person WHERE id = :p"
        ),
        {"b": batch.id, "changed": json.dumps(changed), "p": person.id},
    )
    events.publish_batch(session=session, batch_id=batch.id)


def _apply(session: Session, numbers: list[str], op: tuple[str, Any, Any]) -> None:
    kind, a, b = op
    try:
        if kind == "move":
            _as_batch(session, numbers[a], community_code=b)
        elif kind == "type":
            _as_batch(session, numbers[a], population_type=b)
        elif kind == "die":
            _as_batch(session, numbers[a], status="dead", death_date=date(2026, 11, 20))
        elif kind == "merge":
            review.merge(session=session, survivor_no=numbers[a], retired_no=numbers[b], actor="t")
        elif kind == "split":
            person = session.scalar(select(Person).where(Person.person_no == numbers[a]))
            assert person is not None
            records = sorted(
                session.scalars(select(Link.source_record_id).where(Link.person_id == person.id))
            )
            review.split(session=session, person_no=numbers[a], record_ids=records[-1:], actor="t")
        elif kind == "unmerge":
            review.unmerge(session=session, retired_no=numbers[a], actor="t")
    except review.ReviewError:
        pass  # a clerk's operation refused (a retired person, a single record): nothing changed


# Not the person's fields: the number, and what a lookup or an event says beside them.
ASIDE = ("person_no", "merged_from", "changed", "survivor", "split_from", "unmerged_from")


def _record(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ASIDE}


class Subscriber:
    """A department's copy: the baseline, then every page of the feed applied in order."""

    def __init__(self, http: TestClient, headers: dict[str, str]) -> None:
        self.http, self.headers, self.copy = http, headers, {}
        after, cursor = 0, None
        while True:
            page = http.get(f"{API}/baseline", params={"after": after}, headers=headers).json()
            cursor = page["change_cursor"] if cursor is None else cursor
            self.copy.update({p["person_no"]: _record(p) for p in page["items"]})
            if not page["has_more"]:
                break
            after = page["next_cursor"]
        self.cursor: int = cursor

    def catch_up(self) -> None:
        while True:
            feed = self.http.get(f"{API}/changes", params={"since": self.cursor}, headers=self.headers).json()
            for e in feed["items"]:
                if e["event_type"] in ("left_scope", "merged"):
                    self.copy.pop(e["person_no"], None)
                else:
                    self.copy[e["person_no"]] = _record(e["payload"])
            self.cursor = feed["next_cursor"]
            if not feed["has_more"]:
                return


def _lookups(session: Session, http: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What the client's lookups return, for every live number in the registry."""
    found = {}
    for number in session.scalars(select(Person.person_no).where(Person.status != "retired")):
        answer = http.get(f"{API}/persons/{number}", headers=headers)
        assert answer.status_code in (200, 404), answer.text
        if answer.status_code == 200:
            found[number] = _record(answer.json())
    return found


@settings(
    max_examples=15,
    phases=[
        Phase.explicit,
        Phase.reuse,
        Phase.generate,
    ],  # a failure is shown as found: shrinking takes minutes
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
def test_a_subscriber_replaying_the_feed_holds_what_lookups_return(
    session: Session, factory, areas, http: TestClient, new_client, tmp_path: Path, steps
) -> None:
    headers = new_client(areas=[SEEN], population_types=["registered"])
    numbers = _people(session, factory, tmp_path)
    subscribers = [Subscriber(http, headers)]
    for step in steps:
        if step[0] == "subscribe":
            subscribers.append(Subscriber(http, headers))
        else:
            _apply(session, numbers, step)
    expected = _lookups(session, http, headers)
    for subscriber in subscribers:
        subscriber.catch_up()
        assert subscriber.copy == expected, steps


def test_event_writers_commit_one_after_another(own_db: str) -> None:
    """A clerk's events wait for a batch's publish to commit (and the other way): ids commit in order,
    so a subscriber's cursor never passes an event that commits later."""
    engine = create_engine(own_db)
    try:
        with Session(engine) as first, Session(engine) as second:
            events.publish_clerk_change(session=first, since_version=0, persons=[])  # holds the lock
            second.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                events.publish_clerk_change(session=second, since_version=0, persons=[])
            second.rollback()
            first.commit()
            second.execute(text("SET lock_timeout = '200ms'"))
            events.publish_clerk_change(session=second, since_version=0, persons=[])
            second.commit()
    finally:
        engine.dispose()
