"""person_tally: the live persons and those holding no resident ID, kept by triggers, equal a count after
any sequence of the statements that change them (bulk and single, in any order)."""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from registry import tally
from registry.tally import COUNT_SQL

BASE = 9_100_000_000  # persons of this test: ids far above any other test's
PERSONS = st.integers(0, 5)
STATUSES = st.sampled_from(["active", "dead", "left", "retired"])
NUMBERS = st.integers(0, 7)
TYPES = st.sampled_from(["RID", "RID", "PASSPORT"])

OPERATIONS = st.one_of(
    st.tuples(st.just("add persons"), st.lists(st.tuples(PERSONS, STATUSES), min_size=1, max_size=4)),
    st.tuples(st.just("remove persons"), st.lists(PERSONS, min_size=1, max_size=3)),
    st.tuples(st.just("set status"), st.lists(PERSONS, min_size=1, max_size=3), STATUSES),
    st.tuples(st.just("add numbers"), st.lists(st.tuples(TYPES, NUMBERS, PERSONS), min_size=1, max_size=4)),
    st.tuples(st.just("remove numbers"), st.lists(NUMBERS, min_size=1, max_size=3)),
    st.tuples(st.just("move numbers"), st.lists(NUMBERS, min_size=1, max_size=3), PERSONS),
    st.tuples(st.just("retype numbers"), st.lists(NUMBERS, min_size=1, max_size=3), TYPES),
    st.tuples(st.just("truncate numbers")),
)


def apply(conn: Connection, op: tuple[Any, ...]) -> None:
    """One statement (a bulk one where the operation names several rows)."""
    kind = op[0]
    if kind == "add persons":
        rows = {BASE + p: s for p, s in op[1]}
        values = ", ".join(f"({pid}, 'T{pid}', '{status}', '{{}}')" for pid, status in rows.items())
        sql = f"INSERT INTO person (id, person_no, status, provenance) VALUES {values} ON CONFLICT (id) DO NOTHING"
        conn.execute(text(sql))
    elif kind == "remove persons":
        conn.execute(text("DELETE FROM person WHERE id = ANY(:p)"), {"p": [BASE + p for p in op[1]]})
    elif kind == "set status":
        conn.execute(
            text("UPDATE person SET status = :s WHERE id = ANY(:p)"),
            {"p": [BASE + p for p in op[1]], "s": op[2]},
        )
    elif kind == "add numbers":
        rows = {(t, f"TALLY{n}"): BASE + p for t, n, p in op[1]}
        values = ", ".join(f"('{t}', '{no}', {pid})" for (t, no), pid in rows.items())
        sql = f"INSERT INTO person_identifier (id_type, id_no, person_id) VALUES {values} ON CONFLICT DO NOTHING"
        conn.execute(text(sql))
    elif kind == "remove numbers":
        conn.execute(
            text("DELETE FROM person_identifier WHERE id_no = ANY(:n)"), {"n": [f"TALLY{n}" for n in op[1]]}
        )
    elif kind == "move numbers":
        conn.execute(
            text("UPDATE person_identifier SET person_id = :p WHERE id_no = ANY(:n)"),
            {"n": [f"TALLY{n}" for n in op[1]], "p": BASE + op[2]},
        )
    elif kind == "retype numbers":
        conn.execute(
            text("UPDATE person_identifier SET id_type = :t WHERE id_no = ANY(:n)"),
            {"n": [f"TALLY{n}" for n in op[1]], "t": op[2]},
        )
    else:
        conn.execute(text("TRUNCATE person_identifier"))


def counted(conn: Connection) -> tuple[int, int]:
    row = conn.execute(text(COUNT_SQL)).one()
    return int(row.active), int(row.without_rid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=12))
def test_the_tally_equals_a_count_after_any_statements(connection: Connection, operations: list[Any]) -> None:
    with connection.begin_nested() as example:
        assert tally.live_persons(connection) == counted(connection)
        for op in operations:
            try:
                with connection.begin_nested():  # a statement the constraints refuse changes nothing
                    apply(connection, op)
            except IntegrityError:
                pass
            assert tally.live_persons(connection) == counted(connection), op
        example.rollback()


def test_a_lost_tally_row_is_counted_again(connection: Connection) -> None:
    apply(connection, ("add persons", [(0, "active"), (1, "retired"), (2, "dead")]))
    apply(connection, ("add numbers", [("RID", 0, 0)]))
    before = tally.live_persons(connection)
    connection.execute(text("DELETE FROM person_tally"))
    assert tally.live_persons(connection) == before == counted(connection)
    connection.execute(text("DELETE FROM person_tally"))
    apply(
        connection, ("set status", [1], "active")
    )  # a change with no row to add to: counted, itself included
    assert tally.live_persons(connection) == counted(connection)
    assert tally.live_persons(connection)[0] == before[0] + 1
