"""Publish change events: what the versions a batch wrote mean for the departments subscribed."""

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry import batches
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


def publish_batch(*, session: Session, batch_id: int) -> int:
    """Write the change events of the batch's versions, once: a batch that has events is left alone.

    A first version (a new person) has no version before it; only the others need the window that
    finds the previous version, which keeps a snapshot of new persons to one pass over its versions.
    """
    conn = session.connection()
    if conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM change_event WHERE batch_id = :b)"), {"b": batch_id}
    ).scalar():
        return 0
    types = ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for name, cond in EVENT_RULES.items())
    inserted = conn.execute(
        text(
            f"""
            INSERT INTO change_event (person_id, event_type, event_date, community_code, batch_id, version_id, payload)
            SELECT person_id, event_type, CASE WHEN event_type = 'died' THEN coalesce(death_date, valid_from)
                                               ELSE valid_from END,
                   community_code, batch_id, id, payload
            FROM (SELECT v.person_id, v.death_date, v.valid_from, v.community_code, v.batch_id, v.id,
                         unnest(array_remove(ARRAY[{types}], NULL)) AS event_type,
                         jsonb_build_object('person_no', p.person_no, 'changed', v.changed, 'status', v.status,
                                            'community_code', v.community_code,
                                            'previous_community_code', o.community_code) AS payload
                  FROM (SELECT x.*, NULL::bigint AS prev_id FROM person_version x
                        WHERE x.batch_id = :b AND x.changed @> '["created"]'
                        UNION ALL
                        SELECT * FROM (SELECT x.*, lag(x.id) OVER w AS prev_id FROM person_version x
                                       WHERE x.person_id IN (SELECT person_id FROM person_version
                                                             WHERE batch_id = :b AND NOT changed @> '["created"]')
                                       WINDOW w AS (PARTITION BY x.person_id ORDER BY x.id)) older
                        WHERE older.batch_id = :b AND NOT older.changed @> '["created"]') v
                  JOIN person p ON p.id = v.person_id
                  LEFT JOIN person_version o ON o.id = v.prev_id) e
            """
        ),
        {"b": batch_id},
    ).rowcount
    batches.advance(session, batch_id, to=BatchState.PUBLISHED, expect=BatchState.MERGED)
    return inserted
