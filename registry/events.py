"""Publish change events: what the versions a batch or a clerk's operation wrote mean for subscribers.

Every event carries what a subscriber needs to keep an exact copy without asking again:
- `record`'s fields at the top of the payload: the person as it stands when the event is written
  (the fields the sharing service can show, status included);
- `scope`: `before` and `after`, each `[population_type, community_code]` or null (not visible to
  anyone: retired, or not yet a person). `before` is what the person's previous event said it was
  after (so a subscriber's last word on the person), else its previous version; the sharing service
  decides from the two whether a client sees the person arrive, change or leave (sharing_api/feed.py);
- `lead`: true on one event per person and moment (a version can mean several events: one arrival
  or departure is served, not one per event);
- `related` (merges, splits, unmerges): the other person's number and scope.

Batches publish in their publish step (`publish_batch`); a clerk's merge, split, unmerge, accept and
reject publish as they commit (`publish_clerk_change`), with their own event types.
"""

from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base import clock
from base.bulk import indexes_deferred
from base.db import without_jit
from registry import batches, partitions
from schemas.canonical import BatchState

# Each event type and the condition on (v = the new version, o = the version before it, NULL for a new person).
EVENT_RULES = {
    "person_created": "o.id IS NULL",
    "born": "o.id IS NULL AND v.birth_date > v.valid_from - 366",
    "died": "v.status = 'dead' AND o.status IS DISTINCT FROM 'dead'",  # also a person first known dead
    "left_city": "v.status = 'left' AND o.status = 'active'",  # o.status is NULL for a new person
    "returned": "v.status = 'active' AND o.status = 'left'",
    "moved": "o.id IS NOT NULL AND v.community_code IS DISTINCT FROM o.community_code AND v.status = 'active'",
    "married": "o.id IS NOT NULL AND v.marital_status = 'married' AND o.marital_status IS DISTINCT FROM 'married'",
    "divorced": "o.id IS NOT NULL AND v.marital_status = 'divorced'"
    " AND o.marital_status IS DISTINCT FROM 'divorced'",
    "attribute_changed": "o.id IS NOT NULL AND v.changed ?| array['name', 'id_no', 'sex', 'birth_date', 'address',"
    " 'phone', 'ethnicity', 'population_type']",
}
# Any other change to what a subscriber sees (a death date corrected, a move while away, a widowing)
# is an attribute change too: no change to a shown field goes without an event.
EVENT_RULES["attribute_changed"] = (
    f"{EVENT_RULES['attribute_changed']} OR (o.id IS NOT NULL"
    " AND v.changed ?| array['status', 'death_date', 'community_code', 'marital_status']"
    f" AND NOT coalesce({' OR '.join(f'({c})' for n, c in EVENT_RULES.items() if n != 'attribute_changed')}, false))"
)


# What a subscriber may be shown of a person: every field the sharing service can grant.
RECORD_FIELDS = (
    "status", "name", "sex", "ethnicity", "birth_date", "death_date", "id_type", "id_no", "phone", "address",
    "community_code", "population_type", "marital_status",
)  # fmt: skip
# Events a clerk's operation writes (not derived from a batch's versions).
CLERK_EVENTS = ("merged", "split", "unmerged")


def _record(p: str) -> str:
    fields = ", ".join(f"'{f}', {p}.{f}" for f in RECORD_FIELDS)
    return f"jsonb_build_object('person_no', {p}.person_no, {fields})"


def _scope(p: str) -> str:
    """A person's (or version's) scope keys as JSON, null when retired."""
    return (
        f"CASE WHEN {p}.id IS NULL OR {p}.status = 'retired' THEN 'null'::jsonb "
        f"ELSE jsonb_build_array({p}.population_type, {p}.community_code) END"
    )


# Writers of events take this lock until they commit, so events commit in id order: a reader that has
# seen id N has seen every event below it (two writers at once, a batch's publish and a clerk's merge,
# could otherwise commit a lower id after a subscriber's cursor passed it, and it would never be served).
WRITERS_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('popex.change_event'))")


# What the person's previous event said it became (SQL NULL when it has none yet).
LAST_SEEN = (
    "(SELECT e.payload -> 'scope' -> 'after' FROM change_event e"
    " WHERE e.person_id = p.id AND e.payload ? 'scope' ORDER BY e.id DESC LIMIT 1)"
)


def _rule_events(conn: Connection, select_versions: Callable[[str], str], params: dict[str, object]) -> int:
    """Insert the rule events of the versions `select_versions(alias)` picks; returns how many.

    What each person's previous event said it became is read first, in one pass, into a temporary
    table (the same events the INSERT's snapshot would see): read per row inside the INSERT, a plan
    that scans change_event (an empty or just-created partition, whose statistics say 0 rows) scanned
    every row the INSERT had already added, once per row — a 65,000-person first snapshot took 244 s
    in publish instead of seconds.

    The versions' subquery is kept from being pulled up into the INSERT (OFFSET 0): pulled up, its
    payload was built for every event, two for most new persons (2.6-3.0 s for that snapshot's INSERT
    against 3.1-3.4 s, BENCHMARKS.md)."""
    types = ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for name, cond in EVENT_RULES.items())
    created = select_versions("x")
    # The version recorded before each (none for a person's first, which is not looked for): read newest
    # first, it is found in the latest partition holding one, however many years of versions lie before.
    before = partitions.newest(
        conn,
        "person_version",
        alias="u",
        where="NOT v.changed @> '[\"created\"]' AND u.person_id = v.person_id"
        " AND (u.recorded_at, u.id) < (v.recorded_at, v.id)",
        columns=("id", "status", "community_code", "marital_status", "population_type"),
    )
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.last_seen"))
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE last_seen ON COMMIT DROP AS
            SELECT DISTINCT ON (e.person_id) e.person_id, e.payload -> 'scope' -> 'after' AS after
            FROM change_event e
            WHERE e.person_id IN (SELECT x.person_id FROM person_version x WHERE {created}) AND e.payload ? 'scope'
            ORDER BY e.person_id, e.id DESC
            """
        ),
        params,
    )
    conn.execute(text("CREATE UNIQUE INDEX ON pg_temp.last_seen (person_id)"))
    conn.execute(text("ANALYZE pg_temp.last_seen"))
    seen = "(SELECT ls.after FROM pg_temp.last_seen ls WHERE ls.person_id = p.id)"
    with without_jit(conn):  # a look-up per version (base.db.without_jit)
        inserted = conn.execute(
            text(
                f"""
                INSERT INTO change_event (person_id, event_type, event_date, community_code, batch_id, version_id, payload)
                SELECT person_id, t.event_type, CASE WHEN t.event_type = 'died' THEN coalesce(death_date, valid_from)
                                                     ELSE valid_from END,
                       community_code, batch_id, id, payload || jsonb_build_object('lead', t.n = 1)
                FROM (SELECT v.person_id, v.death_date, v.valid_from, v.community_code, v.batch_id, v.id,
                             array_remove(ARRAY[{types}], NULL) AS types,
                             {_record("p")}
                             || jsonb_build_object('changed', v.changed, 'previous_community_code', o.community_code,
                                                   'scope', jsonb_build_object('before', coalesce({seen}, {_scope("o")}),
                                                                               'after', {_scope("p")})) AS payload
                      FROM person_version v
                      JOIN person p ON p.id = v.person_id
                      LEFT JOIN LATERAL {before} o ON TRUE
                      WHERE {select_versions("v")}
                      OFFSET 0) e  -- a fence: each version's payload built once, not once per event
                CROSS JOIN LATERAL unnest(e.types) WITH ORDINALITY AS t(event_type, n)
                """
            ),
            params,
        ).rowcount
    return int(inserted)


def publish_batch(*, session: Session, batch_id: int) -> int:
    """Write the change events of the batch's versions, once: a batch that has events is left alone.

    A first version (a new person) has no version before it and none is looked for, which keeps a
    snapshot of new persons to one pass over its versions; for the others the version recorded before
    (by recorded_at, then id: the writers of versions take the identity lock before their transaction
    begins, so the two orders agree) is read newest first (registry.partitions.newest). The window over
    all of a person's versions it replaces grew with the years: publishing a 45,000-person extract took
    9.2-11.3 s after ten yearly partitions, 4.6-6.3 s with this year's alone; now 3.9-4.3 s after ten.
    """
    conn = session.connection()
    conn.execute(WRITERS_LOCK)
    if conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM change_event WHERE batch_id = :b)"), {"b": batch_id}
    ).scalar():
        return 0
    versions = conn.execute(text("SELECT count(*) FROM person_version WHERE batch_id = :b"), {"b": batch_id})
    with indexes_deferred(conn, ("change_event",), int(versions.scalar_one())):  # an initial load: base.bulk
        # A dated-back change's restated stretches (registry.merge) carry history, not news.
        inserted = _rule_events(
            conn, lambda a: f"{a}.batch_id = :b AND NOT {a}.changed @> '[\"restated\"]'", {"b": batch_id}
        )
    batches.advance(session, batch_id, to=BatchState.PUBLISHED, expect=BatchState.MERGED)
    return inserted


def version_mark(session: Session) -> int:
    """The newest version id now: a clerk's operation publishes the versions it writes after it."""
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM person_version")) or 0)


def publish_clerk_change(
    *,
    session: Session,
    since_version: int,
    persons: list[int],
    special: dict[int, tuple[str, str, int]] | None = None,
) -> int:
    """Write the events of a clerk's operation on `persons`, in its transaction; returns how many.

    `special` maps a person to (event type, role, related person): the retired number of a merge
    (merged, survivor), the new person of a split (split, split_from), the restored number of an
    unmerge (unmerged, unmerged_from); that person gets that one event, the others the rule events
    of the versions the operation wrote (after `since_version`).
    """
    conn = session.connection()
    conn.execute(WRITERS_LOCK)
    special = special or {}
    own = list(special)
    inserted = _rule_events(
        conn,
        lambda a: (
            f"{a}.batch_id IS NULL AND {a}.id > :since AND {a}.person_id = ANY(:persons)"
            f" AND NOT {a}.person_id = ANY(:own)"
        ),
        {"since": since_version, "persons": persons, "own": own},
    )
    # Before the operation: the last event's word, else the newest version written before it.
    before = (
        f"coalesce({LAST_SEEN}, (SELECT {_scope('b')} FROM person_version b WHERE b.person_id = p.id"
        " AND b.id <= :since ORDER BY b.id DESC LIMIT 1), 'null'::jsonb)"
    )
    for person_id, (event_type, role, related) in special.items():
        inserted += conn.execute(
            text(
                f"""
                INSERT INTO change_event (person_id, event_type, event_date, community_code, batch_id, version_id,
                                          payload)
                SELECT p.id, :type, coalesce(last.valid_from, CAST(:today AS date)), p.community_code, NULL, last.id,
                       {_record("p")}
                       || jsonb_build_object('changed', '[]'::jsonb, 'lead', true,
                                             'scope', jsonb_build_object('before', {before}, 'after', {_scope("p")}),
                                             'related', jsonb_build_object('role', :role, 'person_no', r.person_no,
                                                                           'scope', {_scope("r")}))
                FROM person p JOIN person r ON r.id = :r
                LEFT JOIN LATERAL (SELECT v.id, v.valid_from FROM person_version v WHERE v.person_id = p.id
                                   ORDER BY v.id DESC LIMIT 1) last ON true
                WHERE p.id = :p
                """
            ),
            {
                "type": event_type,
                "role": role,
                "p": person_id,
                "r": related,
                "since": since_version,
                "today": clock.today(),
            },
        ).rowcount
    return inserted
