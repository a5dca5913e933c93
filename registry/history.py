"""Repair of the history written before 8cb3cb3: versions a batch dated back without a change of residence.

A version is a whole row, in force from its valid_from until a version recorded later takes over. Until
8cb3cb3 a batch's change that left residence alone (a phone number, a name) took its records' date even
when that was before the version it followed — social insurance dates a row by its record's last change —
and so rewrote the person's area, type and status from that date with the later ones (a 2022 phone number
after a 2024 move put the person in the new community from 2022). Since then the merge starts such a
version no earlier than the one it follows (registry.merge). `dated_back` finds the versions the old
code wrote otherwise and `repair` gives each the date the merge gives now: the latest valid_from since
the person's last version that stands on its own date (a first version, a change of residence, a clerk's
decision), itself included. Their change events get the same date. The statistics must be rebuilt after.
"""

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.merge import RESIDENCE

# Each version with the date the merge would give it now (`fixed`), in the person's recorded order.
FIXED_SQL = """
WITH ordered AS (
    SELECT v.id, v.recorded_at, v.person_id, v.valid_from,
           v.batch_id IS NULL OR v.changed ?| CAST(:own_date AS text[]) AS own_date,
           row_number() OVER (PARTITION BY v.person_id ORDER BY v.recorded_at, v.id) AS n
    FROM person_version v
),
grouped AS (
    SELECT *, count(*) FILTER (WHERE own_date) OVER (PARTITION BY person_id ORDER BY n) AS since
    FROM ordered
),
fixed AS (
    SELECT id, recorded_at, valid_from,
           max(valid_from) OVER (PARTITION BY person_id, since ORDER BY n) AS fixed
    FROM grouped
)
SELECT id, recorded_at, valid_from, fixed FROM fixed WHERE fixed > valid_from
"""


def dated_back(session: Session) -> int:
    """How many versions a batch dated before the version they follow without a change of residence."""
    found = session.scalar(text(f"SELECT count(*) FROM ({FIXED_SQL}) f"), {"own_date": _own_date()})
    return int(found or 0)


def repair(*, session: Session, actor: str) -> tuple[int, int]:
    """Give each such version (and its change events) the date the merge gives it now, audited
    (db.history.repaired); returns (versions, events) changed. Run `popex stats rebuild` after it."""
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS _history_fixed"))
    conn.execute(
        text(f"CREATE TEMP TABLE _history_fixed ON COMMIT DROP AS {FIXED_SQL}"), {"own_date": _own_date()}
    )
    versions = conn.execute(
        text(
            "UPDATE person_version v SET valid_from = f.fixed FROM _history_fixed f"
            " WHERE v.id = f.id AND v.recorded_at = f.recorded_at"
        )
    ).rowcount
    events = conn.execute(
        text(
            "UPDATE change_event e SET event_date = f.fixed FROM _history_fixed f"
            " WHERE e.version_id = f.id AND e.event_date = f.valid_from"
        )
    ).rowcount
    conn.execute(text("DROP TABLE _history_fixed"))
    record_audit(
        session=session,
        actor=actor,
        action="db.history.repaired",
        detail={"versions": versions, "events": events},
    )
    return versions, events


def _own_date() -> list[str]:
    """What a version keeps its own date for: being a person's first, a change of residence, or a stretch
    of history a change of residence dated back recorded again (registry.merge)."""
    return ["created", "restated", *RESIDENCE]
