"""Referential checks of the bulk tables, which carry no foreign keys (see registry/models/person.py)."""

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.tally import COUNT_SQL
from schemas.canonical import BatchStep

# Batches past resolve (failed in a later step too): every accepted record of theirs is linked.
_RESOLVED = tuple(sorted(str(s) for s in BatchStep.RESOLVE.done_states))
_AFTER_RESOLVE = tuple(str(s) for s in BatchStep.RESOLVE.later)
# check name → SQL counting the rows that break it
CHECKS = {
    "source_record.batch_id → batch": "SELECT count(*) FROM source_record r WHERE NOT EXISTS "
    "(SELECT 1 FROM batch b WHERE b.id = r.batch_id)",
    "person_identifier.person_id → person": "SELECT count(*) FROM person_identifier x WHERE NOT EXISTS "
    "(SELECT 1 FROM person p WHERE p.id = x.person_id)",
    "link.source_record_id → source_record": "SELECT count(*) FROM link l WHERE NOT EXISTS "
    "(SELECT 1 FROM source_record r WHERE r.id = l.source_record_id)",
    "link.person_id → person": "SELECT count(*) FROM link l WHERE NOT EXISTS "
    "(SELECT 1 FROM person p WHERE p.id = l.person_id)",
    "link.batch_id → batch": "SELECT count(*) FROM link l WHERE NOT EXISTS (SELECT 1 FROM batch b WHERE b.id = l.batch_id)",
    # The lineage counts a batch's records by their links' batch (decision.service.LINEAGE_SQL).
    "link.batch_id ≠ its record's batch": "SELECT count(*) FROM link l JOIN source_record r "
    "ON r.id = l.source_record_id WHERE r.batch_id <> l.batch_id",
    "person_version.person_id → person": "SELECT count(*) FROM person_version v WHERE NOT EXISTS "
    "(SELECT 1 FROM person p WHERE p.id = v.person_id)",
    "change_event.version_id → person_version": "SELECT count(*) FROM change_event e WHERE NOT EXISTS "
    "(SELECT 1 FROM person_version v WHERE v.id = e.version_id)",
    "accepted record without link": "SELECT count(*) FROM source_record r WHERE r.status = 'accepted' "
    "AND NOT EXISTS (SELECT 1 FROM link l WHERE l.source_record_id = r.id) "
    "AND EXISTS (SELECT 1 FROM batch b WHERE b.id = r.batch_id AND "
    f"(b.state IN {_RESOLVED!r} OR b.failed_step IN {_AFTER_RESOLVE!r}))",
    "number held by two live persons": "SELECT count(*) FROM (SELECT 1 FROM person WHERE status <> 'retired' "
    "AND id_no IS NOT NULL GROUP BY id_type, id_no HAVING count(*) > 1) d",
    "person's number without its identifier row": "SELECT count(*) FROM person p WHERE p.status <> 'retired' "
    "AND p.id_no IS NOT NULL AND NOT EXISTS (SELECT 1 FROM person_identifier x WHERE x.id_type = p.id_type "
    "AND x.id_no = p.id_no AND x.person_id = p.id)",
    "link to a retired person": "SELECT count(*) FROM link l JOIN person p ON p.id = l.person_id "
    "WHERE p.status = 'retired'",
    # Partitioned tables' keys include their partition column (migrations 0012, 0013): a key repeated across periods.
    "person_version id twice": "SELECT count(*) FROM (SELECT 1 FROM person_version GROUP BY id HAVING count(*) > 1) d",
    "change_event id twice": "SELECT count(*) FROM (SELECT 1 FROM change_event GROUP BY id HAVING count(*) > 1) d",
    "source_record id twice": "SELECT count(*) FROM (SELECT 1 FROM source_record GROUP BY id HAVING count(*) > 1) d",
    "batch row number twice": "SELECT count(*) FROM (SELECT 1 FROM source_record GROUP BY batch_id, row_no "
    "HAVING count(*) > 1) d",
    "review_item.source_record_id → source_record": "SELECT count(*) FROM review_item v WHERE NOT EXISTS "
    "(SELECT 1 FROM source_record r WHERE r.id = v.source_record_id)",
    "audit_log id twice": "SELECT count(*) FROM (SELECT 1 FROM audit_log GROUP BY id HAVING count(*) > 1) d",
    "change event of one type twice for a version": "SELECT count(*) FROM (SELECT 1 FROM change_event "
    "GROUP BY version_id, event_type HAVING count(*) > 1) d",
    "batch accounting": "SELECT count(*) FROM batch WHERE rows_received <> rows_accepted + rows_rejected + rows_review",
    # Kept by triggers (registry/tally.py): how many of its two counts differ from a count.
    "person tally": "SELECT (t.active IS DISTINCT FROM c.active)::int + (t.without_rid IS DISTINCT FROM c.without_rid)::int"
    f" FROM ({COUNT_SQL}) c LEFT JOIN person_tally t ON t.id = 1",
}


def check_consistency(*, session: Session) -> dict[str, int]:
    """Rows breaking each check (all zero in a consistent database)."""
    return {name: int(session.execute(text(sql)).scalar_one()) for name, sql in CHECKS.items()}
