"""Publish change events: what the versions a batch wrote mean for the departments subscribed."""

from sqlalchemy import text
from sqlalchemy.orm import Session

# Each event type and the condition on (v = the new version, o = the version before it, NULL for a new person).
EVENT_RULES = {
    "person_created": "o.id IS NULL",
    "born": "o.id IS NULL AND v.birth_date > v.valid_from - 366",
    "died": "v.status = 'dead' AND o.status IS DISTINCT FROM 'dead'",
    "left_city": "v.status = 'left' AND o.status = 'active'",
    "returned": "v.status = 'active' AND o.status = 'left'",
    "moved": "o.id IS NOT NULL AND v.community_code IS DISTINCT FROM o.community_code AND v.status = 'active'",
    "married": "v.marital_status = 'married' AND o.marital_status IS DISTINCT FROM 'married'",
    "divorced": "v.marital_status = 'divorced' AND o.marital_status IS DISTINCT FROM 'divorced'",
    "attribute_changed": "o.id IS NOT NULL AND v.changed ?| array['name', 'id_no', 'sex', 'birth_date', 'address',"
    " 'phone', 'ethnicity', 'population_type']",
}


def publish_batch(*, session: Session, batch_id: int) -> int:
    """Write the change events of the batch's versions; running it again adds nothing."""
    union = " UNION ALL ".join(
        f"SELECT '{name}' AS event_type WHERE {cond}" for name, cond in EVENT_RULES.items()
    )
    inserted = (
        session.connection()
        .execute(
            text(
                f"""
            INSERT INTO change_event (person_id, event_type, event_date, community_code, batch_id, version_id, payload)
            SELECT v.person_id, e.event_type, coalesce(CASE WHEN e.event_type = 'died' THEN v.death_date END,
                                                       v.valid_from),
                   v.community_code, v.batch_id, v.id,
                   jsonb_build_object('person_no', p.person_no, 'changed', v.changed, 'status', v.status,
                                      'community_code', v.community_code,
                                      'previous_community_code', o.community_code)
            FROM person_version v
            JOIN person p ON p.id = v.person_id
            LEFT JOIN LATERAL (SELECT * FROM person_version x WHERE x.person_id = v.person_id AND x.id < v.id
                               ORDER BY x.id DESC LIMIT 1) o ON true
            CROSS JOIN LATERAL ({union}) e
            WHERE v.batch_id = :b
            ON CONFLICT (version_id, event_type) DO NOTHING
            """
            ),
            {"b": batch_id},
        )
        .rowcount
    )
    session.execute(
        text("UPDATE batch SET state = 'published', updated_at = now() WHERE id = :b"), {"b": batch_id}
    )
    return inserted
