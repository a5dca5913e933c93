"""Secondary indexes built after an initial load (base.bulk): dropped only when it pays and the table is
free, rebuilt exactly as they were, and restored by a rollback."""

import time

import pytest
from sqlalchemy import Connection, Engine, text

from base import bulk

INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'bulk_t' ORDER BY indexname"


@pytest.fixture
def table(connection: Connection, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A table with a primary key, a unique constraint, a unique index and three secondary indexes
    (one partial, one on an expression); its indexes' definitions."""
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 10)
    for ddl in (
        "CREATE TABLE bulk_t (id int PRIMARY KEY, code text UNIQUE, a int, b text, c text)",
        "CREATE UNIQUE INDEX bulk_t_c_unique ON bulk_t (c)",
        "CREATE INDEX bulk_t_a ON bulk_t (a)",
        "CREATE INDEX bulk_t_b_partial ON bulk_t (b) WHERE a > 5",
        "CREATE INDEX bulk_t_b_head ON bulk_t (substr(b, 1, 2), a)",
    ):
        connection.execute(text(ddl))
    return dict(connection.execute(text(INDEXES)).all())


def _fill(conn: Connection, first: int, n: int) -> None:
    conn.execute(
        text(
            "INSERT INTO bulk_t SELECT i, 'k' || i, i % 10, 'b' || (i % 7), 'c' || i"
            " FROM generate_series(:f, :f + :n - 1) AS i"
        ),
        {"f": first, "n": n},
    )


def test_an_initial_load_has_no_secondary_indexes_and_gets_them_back(connection, table) -> None:
    with bulk.indexes_deferred(connection, ["bulk_t"], adding=50) as deferred:
        assert deferred == ["bulk_t"]
        during = dict(connection.execute(text(INDEXES)).all())
        assert sorted(during) == ["bulk_t_c_unique", "bulk_t_code_key", "bulk_t_pkey"]  # these still refuse
        _fill(connection, 1, 50)
    assert dict(connection.execute(text(INDEXES)).all()) == table
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    assert connection.scalar(text("SELECT count(*) FROM bulk_t WHERE a = 3")) == 5


def test_indexes_are_kept_when_the_load_is_small_or_the_table_is_not_empty(connection, table) -> None:
    with bulk.indexes_deferred(connection, ["bulk_t"], adding=9) as deferred:  # under the minimum
        assert deferred == [] and dict(connection.execute(text(INDEXES)).all()) == table
    _fill(connection, 1, 30)
    with bulk.indexes_deferred(connection, ["bulk_t"], adding=30) as deferred:  # holds as many as it adds
        assert deferred == [] and dict(connection.execute(text(INDEXES)).all()) == table
    with bulk.indexes_deferred(connection, ["bulk_t"], adding=31) as deferred:
        assert deferred == ["bulk_t"]


def test_a_failed_load_rolls_the_indexes_back(connection, table) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        connection.begin_nested(),
        bulk.indexes_deferred(connection, ["bulk_t"], adding=50),
    ):
        _fill(connection, 1, 50)
        raise ZeroDivisionError
    assert dict(connection.execute(text(INDEXES)).all()) == table
    assert connection.scalar(text("SELECT count(*) FROM bulk_t")) == 0


def test_a_table_in_use_keeps_its_indexes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader in an open transaction holds the table: the load waits LOCK_WAIT, then goes on with the
    indexes maintained as usual."""
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 10)
    monkeypatch.setattr(bulk, "LOCK_WAIT", "300ms")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bulk_busy (id int PRIMARY KEY, a int)"))
        conn.execute(text("CREATE INDEX bulk_busy_a ON bulk_busy (a)"))
    try:
        with engine.connect() as reader, engine.connect() as loader:
            reader.begin()
            reader.execute(text("SELECT count(*) FROM bulk_busy"))
            with loader.begin():
                started = time.monotonic()
                with bulk.indexes_deferred(loader, ["bulk_busy"], adding=50) as deferred:
                    assert deferred == []
                    loader.execute(text("INSERT INTO bulk_busy SELECT i, i FROM generate_series(1, 50) i"))
                assert time.monotonic() - started >= 0.3
                assert loader.scalar(text("SELECT current_setting('lock_timeout')")) == "0"
            reader.rollback()
            assert reader.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = 'bulk_busy_a'")) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE bulk_busy"))
