"""The lineage's residents, found newest first over the years of partitions, are those one statement
over the whole history finds (decision.service.lineage, registry.partitions.newest_first)."""

import math
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

from decision import service
from registry.partitions import ensure_partitions
from tests.conftest import migrated_database
from tests.decision.conftest import random_population
from tests.factories import make_batch, make_person

# The residents as one statement over every version of every year finds them (the lineage before it
# walked the partitions): the version in force is the one recorded last of those dated by then.
PLAIN_SQL = """
CREATE TEMP TABLE _decision_lineage ON COMMIT DROP AS
WITH cur AS (
    SELECT DISTINCT ON (v.person_id) v.person_id, v.batch_id, v.status, v.community_code,
           v.population_type, v.sex, v.birth_date
    FROM person_version v
    WHERE v.valid_from <= :as_of
    ORDER BY v.person_id, v.recorded_at DESC, v.id DESC
)
SELECT person_id, batch_id FROM cur
WHERE status = 'active' AND coalesce(community_code, '') LIKE :prefix
  AND (CAST(:ptype AS text) IS NULL OR population_type = :ptype)
  AND (CAST(:sex AS text) IS NULL OR sex = :sex)
  AND (CAST(:age_from AS integer) IS NULL OR decision.age_years(birth_date, :as_of) >= :age_from)
  AND (CAST(:age_to AS integer) IS NULL OR decision.age_years(birth_date, :as_of) <= :age_to)
"""

# Records by batch as they were counted before a link's batch was trusted to be its record's.
PLAIN_RECORDS_SQL = """
WITH records AS (
    SELECT sr.batch_id, count(*) AS records
    FROM _decision_lineage p JOIN link l ON l.person_id = p.person_id
    JOIN source_record sr ON sr.id = l.source_record_id
    GROUP BY sr.batch_id
),
versions AS (
    SELECT batch_id, count(*) AS versions FROM _decision_lineage WHERE batch_id IS NOT NULL GROUP BY batch_id
)
SELECT coalesce(f.department_code, ''), coalesce(d.name, ''), b.source, coalesce(f.title, b.source),
       b.id, b.file_name, b.as_of_date, coalesce(r.records, 0), coalesce(v.versions, 0)
FROM records r FULL JOIN versions v USING (batch_id)
JOIN batch b ON b.id = coalesce(r.batch_id, v.batch_id)
LEFT JOIN feed f ON f.source = b.source
LEFT JOIN department d ON d.code = f.department_code
WHERE b.as_of_date <= :as_of
ORDER BY 1, 3, b.as_of_date, b.id
"""

VERSION_SQL = """
INSERT INTO person_version (person_id, valid_from, recorded_at, batch_id, changed, status, community_code,
                            population_type, sex, birth_date)
VALUES (:p, :valid_from, :at, :b, '["moved"]', :status, :community, :ptype, :sex, :birth)
"""

FILTERS: list[dict[str, Any]] = [
    {},
    {"population_type": "floating"},
    {"sex": "2"},
    {"age_from": 60},
    {"age_from": 6, "age_to": 14},
]


def plain(session: Session, area: str, as_of: date, **filters: Any) -> tuple[int, list[Any]]:
    session.execute(
        text(PLAIN_SQL),
        {
            "as_of": as_of,
            "prefix": f"{area}%",
            "ptype": filters.get("population_type"),
            "sex": filters.get("sex"),
            "age_from": filters.get("age_from"),
            "age_to": filters.get("age_to"),
        },
    )
    population = session.scalar(text("SELECT count(*) FROM _decision_lineage")) or 0
    rows = [service.LineageRow(*r) for r in session.execute(text(PLAIN_RECORDS_SQL), {"as_of": as_of})]
    session.execute(text("DROP TABLE _decision_lineage"))
    return population, rows


class Statements:
    """The statements a connection runs while listened to."""

    def __init__(self, session: Session) -> None:
        self.conn = session.connection()
        self.seen: list[str] = []

    def _record(self, *args: Any) -> None:
        self.seen.append(args[2])

    def __enter__(self) -> "Statements":
        event.listen(self.conn, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.conn, "before_cursor_execute", self._record)


def _times(year: int, rnd: random.Random, n: int) -> Iterator[datetime]:
    for _ in range(n):
        yield datetime(year, 1, 1) + timedelta(minutes=rnd.randrange(0, 525_000))


@pytest.mark.parametrize(
    ("count_from", "walked_as_the_city"),
    [(0, math.inf), (service.READ_RATHER_THAN_COUNT, service.WALKED_AS_THE_CITY), (0, 0.0)],
    ids=["candidates-counted", "as-configured", "everyone-counted"],
)
def test_the_residents_found_newest_first_are_those_of_the_whole_history(
    session: Session,
    communities: list[str],
    count_from: int,
    walked_as_the_city: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Persons with versions over yearly partitions, in the default partition after the last year,
    before the first and in a gap between two, dated back and forth, moving between communities and
    out of the city: for every area level, date and filter, the lineage equals one statement over every
    version. A person's later versions decide whatever their area; and when the first stretch holds a
    version of everyone, the older years are not read. Both with everyone counted whenever the walk
    could end (count_from 0) and as a city runs it, where this test's few rows are read rather than
    counted; every area through its candidates (the persons with a version there), every area walked as
    the city is (everyone), and as the estimates decide."""
    monkeypatch.setattr(service, "READ_RATHER_THAN_COUNT", count_from)
    monkeypatch.setattr(service, "WALKED_AS_THE_CITY", walked_as_the_city)
    year = session.execute(text("SELECT extract(year FROM localtimestamp)::int")).scalar_one()
    rnd = random.Random(20261207)
    people = random_population(session, communities, 150, seed=11)
    batches = [
        make_batch(session, source=s, as_of=date(year - k, 6, 1)).id
        for k, s in enumerate(("gaj_hj", "gaj_ld", "rsj_cb"))
    ]
    for n, person in enumerate(people):  # their departments' records, linked
        for batch in rnd.sample(batches, rnd.randrange(0, 3)):
            record = session.execute(
                text(
                    "INSERT INTO source_record (batch_id, row_no, source, raw, status, reasons, id_valid, extra)"
                    " SELECT :b, :n, source, '{}', 'accepted', '[]', false, '{}' FROM batch WHERE id = :b RETURNING id"
                ),
                {"b": batch, "n": n},
            ).scalar_one()
            session.execute(
                text(
                    "INSERT INTO link (source_record_id, person_id, batch_id, rule, method)"
                    " VALUES (:r, :p, :b, 'id', 'auto')"
                ),
                {"r": record, "p": person.id, "b": batch},
            )

    def versions(years: list[int]) -> None:
        for person in people:
            for at in _times(rnd.choice(years), rnd, rnd.randrange(0, 3)):
                session.execute(
                    text(VERSION_SQL),
                    {
                        "p": person.id,
                        "valid_from": date(year - 4, 1, 1) + timedelta(days=rnd.randrange(0, 6 * 365)),
                        "at": at,
                        "b": rnd.choice([*batches, None]),
                        "status": rnd.choice(["active", "active", "active", "dead", "left"]),
                        "community": rnd.choice([*communities, None]),
                        "ptype": rnd.choice(["registered", "floating", "foreign", None]),
                        "sex": rnd.choice(["1", "2", None]),
                        "birth": rnd.choice([None, date(1950, 5, 5), date(2015, 1, 31), date(1990, 9, 9)]),
                    },
                )

    versions([year - 4, year - 3, year - 1, year])
    ensure_partitions(session, through=date(year + 1, 1, 1))  # the years with rows; none for year - 2
    versions([year - 6, year - 2, year + 6])  # before the first, in the gap, after the last: default
    in_default = session.scalars(
        text("SELECT DISTINCT extract(year FROM recorded_at)::int FROM person_version_default")
    ).all()
    assert sorted(in_default) == [year - 6, year - 2, year + 6]

    areas = ["", communities[0][:6], communities[0][:9], communities[0], communities[5]]
    compared, through_candidates = 0, set()
    for as_of in (date(year - 3, 6, 1), date(year - 1, 12, 31), date(year, 11, 1), date(year + 1, 3, 1)):
        for area in areas:
            for filters in FILTERS:
                expected = plain(session, area, as_of, **filters)
                with Statements(session) as statements:
                    found = service.lineage(session=session, area=area, as_of=as_of, **filters)
                assert found == expected, (area, as_of, filters)
                compared += expected[0]
                candidates_read = "v.person_id IN (SELECT c.person_id FROM"
                if any(candidates_read in s for s in statements.seen):
                    through_candidates.add(area)
    if walked_as_the_city == 0.0:  # every area walked as the city is
        assert through_candidates == set()
    elif walked_as_the_city == math.inf:  # every area through its candidates, the city never
        assert through_candidates == set(areas[1:])
    assert compared > 1000  # residents counted over the comparisons, not empty areas
    assert session.scalar(text("SELECT count(*) FROM link")) > 100

    # Everyone gets a version this year, dated by the lineage's date: the first stretch finds them all.
    session.execute(
        text(
            "INSERT INTO person_version (person_id, valid_from, recorded_at, changed, status, community_code)"
            " SELECT id, :d, localtimestamp, '[\"moved\"]', 'active', :c FROM person"
        ),
        {"d": date(year, 1, 2), "c": communities[3]},
    )
    as_of = date(year, 6, 1)
    with Statements(session) as statements:
        population, _ = service.lineage(session=session, area="", as_of=as_of)
    assert population == plain(session, "", as_of)[0] > 100
    walked = [s for s in statements.seen if s.startswith("\nINSERT INTO _decision_in_force")]
    assert bool(walked) == (count_from > 0)  # few rows left: read rather than counted
    as_of = date(year - 3, 6, 1)  # before most versions' dates: the older years hold what is in force
    with Statements(session) as statements:
        population, _ = service.lineage(session=session, area="", as_of=as_of)
    assert population == plain(session, "", as_of)[0] > 0
    assert [s for s in statements.seen if "INSERT INTO _decision_in_force" in s]  # the older years walked


def test_a_person_committed_during_the_walk_does_not_end_it_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """A city of three persons: two with this year's versions, one whose only version is older. Just
    before the lineage reads this year, a fourth person is committed by another connection. Had the
    walk counted everyone before reading (three), finding three this year would end it, and the person
    of the older years would be missed; counting after, it goes on and finds them all."""
    monkeypatch.setattr(service, "READ_RATHER_THAN_COUNT", 0)  # counted whenever the walk could end
    with migrated_database("popex_lineage") as url:
        engine = create_engine(url)
        try:
            with Session(engine) as session:
                year = session.execute(text("SELECT extract(year FROM localtimestamp)::int")).scalar_one()
                for _ in range(2):
                    make_person(session, valid_from=date(year - 2, 1, 1))
                older = make_person(session, valid_from=date(year - 2, 1, 1))
                session.execute(
                    text("UPDATE person_version SET recorded_at = :at WHERE person_id = :p"),
                    {"at": datetime(year - 1, 3, 1), "p": older.id},
                )
                ensure_partitions(session, through=date(year + 1, 1, 1))
                session.commit()

            def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if statement.startswith("\nCREATE TEMP TABLE _decision_in_force"):
                    with Session(engine) as other:
                        make_person(other, valid_from=date(year - 2, 1, 1))
                        other.commit()

            with Session(engine) as session:
                event.listen(session.connection(), "before_cursor_execute", meanwhile)
                population, _ = service.lineage(session=session, area="", as_of=date(year, 1, 1))
                assert population == 4
                assert population == plain(session, "", date(year, 1, 1))[0]
        finally:
            engine.dispose()
