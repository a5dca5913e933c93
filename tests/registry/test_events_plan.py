"""A batch's events are written in one pass whatever change_event's statistics say.

The previous event of each person used to be read per row inside the INSERT into change_event. On a
new partition (statistics: 0 rows) the planner scanned the partition for it, and every row the INSERT
had already added was scanned again for the next row: a 65,000-person first snapshot took 244 s in
publish. The previous events are now read before the INSERT (registry/events.py, last_seen)."""

from typing import Any

from sqlalchemy import Connection, text

from registry import events


class _Explaining:
    """A connection that runs every statement except the INSERT into change_event, which it explains."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.plan = conn, ""

    def execute(self, statement: Any, params: dict[str, object] | None = None) -> Any:
        sql = str(statement)
        if sql.lstrip().startswith("INSERT INTO change_event"):
            self.plan = "\n".join(self.conn.execute(text("EXPLAIN " + sql), params or {}).scalars())
            return self.conn.execute(text("SELECT 0"))
        return self.conn.execute(statement, params or {})

    def scalar(self, statement: Any, params: dict[str, object] | None = None) -> Any:
        return self.conn.scalar(statement, params or {})


def test_the_events_insert_reads_no_change_event_per_row(connection: Connection) -> None:
    # The state of a fresh database, or of a year's partition on its first day: analysed, empty.
    connection.execute(text("ANALYZE change_event"))
    explaining = _Explaining(connection)
    events._rule_events(explaining, lambda a: f"{a}.batch_id = :b", {"b": 1})  # type: ignore[arg-type]
    plan = explaining.plan
    assert plan.startswith("Insert on change_event")
    per_row = plan.split("SubPlan", 1)[1] if "SubPlan" in plan else ""
    assert "change_event" not in per_row, plan
    assert "change_event" not in plan.split("\n", 1)[1], plan  # nor anywhere in the INSERT's reading
