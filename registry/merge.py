"""Golden records: survivorship per attribute, provenance, and a new version for every change.

A person's golden record is a function of all the accepted source records linked to it, so merging is
order-independent and a re-run changes nothing. Per attribute the winner is the record with the best
trust rank for it (feed specs, 1 = most trusted), then the newest observation (event date, else the
batch's as-of date), then the newest record. Status is special: death is final whatever its source;
otherwise the newest residence status wins. Each winner is found with one max() over a sortable key
(rank · date · record id · value), which PostgreSQL computes in a single hash aggregate. The key's
parts have fixed widths, so that comparing keys as text compares rank, then date, then record.
"""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base import clock
from base.bulk import indexes_deferred
from base.db import without_jit
from registry import batches, partitions
from registry.trust import UNRANKED, trust_rows
from schemas.canonical import BatchState

# golden attribute → the source_record expression that provides it
ATTRIBUTES = {
    "name": "r.name",
    # Only a number the person holds: a record whose number a clerk left with somebody else does not count.
    "id_no": "CASE WHEN pi.person_id = l.person_id THEN r.id_type || '|' || r.id_no END",
    "sex": "r.sex",
    "ethnicity": "r.ethnicity",
    "birth_date": "r.birth_date::text",
    "phone": "r.phone",
    "address": "r.address",
    "community_code": "r.community_code",
    "population_type": "r.population_type",
}
OBSERVED_WIDTH = 8 + 12  # observation date YYYYMMDD + record id, zero-padded
RANK_WIDTH = len(str(UNRANKED))  # UNRANKED - rank, zero-padded: the best rank sorts highest
KEY_PREFIX = RANK_WIDTH + OBSERVED_WIDTH  # of an attribute's key, before its value
VERSIONED = (
    "status",
    "id_no",
    "name",
    "sex",
    "birth_date",
    "death_date",
    "community_code",
    "population_type",
    "address",
    "phone",
    "ethnicity",
    "marital_status",
)


# What a person's history of residence is made of (the statistics count these): a change of any of
# them keeps the date its records give it, even before the person's latest version (a late-reported move).
RESIDENCE = ("status", "death_date", "community_code", "population_type", "sex", "birth_date", "id_no")


# A change of residence dated back before the person's latest version (a move reported late) is a whole
# row recorded last, so from its date it would stand for everything known since: a later change of
# population type, a later phone number, a death. The old history's stretches in force after its date are
# therefore recorded again, each with what the batch changed and the rest as it was, in date order after
# the new version (the version recorded last wins a date): the new version stays the change a subscriber
# is told of (registry.events skips the restated ones) and the stretches carry the history. Only when the
# old history has more than one stretch after the date: otherwise the new version already says it all.
RESTATE_SQL = """
INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, {cols})
WITH nv AS (
    SELECT v.* FROM diff d JOIN person_version v ON v.person_id = d.person_id AND v.batch_id = :b
    WHERE NOT d.is_new AND d.changed && CAST(:residence AS text[])
),
seg AS (
    -- The versions recorded before, each with the first date a version recorded after it takes over.
    SELECT o.*, min(o.valid_from) OVER (PARTITION BY o.person_id ORDER BY o.recorded_at DESC, o.id DESC
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ends
    FROM person_version o
    WHERE o.person_id IN (SELECT person_id FROM nv) AND o.batch_id IS DISTINCT FROM :b
),
stretch AS (
    SELECT s.*, nv.valid_from AS back_to, nv.changed AS nv_changed, {nv_cols},
           count(*) FILTER (WHERE s.ends IS NOT NULL) OVER (PARTITION BY s.person_id) AS before_last,
           row_number() OVER (PARTITION BY s.person_id ORDER BY s.valid_from) AS k
    FROM seg s JOIN nv ON nv.person_id = s.person_id
    WHERE (s.ends IS NULL OR s.ends > s.valid_from) AND (s.ends IS NULL OR s.ends > nv.valid_from)
)
SELECT person_id, area_key, CASE WHEN k = 1 THEN back_to ELSE valid_from END, :b, '["restated"]', {restated}
FROM stretch WHERE before_last > 0
ORDER BY person_id, k
"""


def _restated() -> str:
    """Each versioned column of a restated stretch: the batch's value where it changed it, else the stretch's."""
    return ", ".join(f"CASE WHEN nv_changed ? '{c}' THEN n_{c} ELSE {c} END" for c in VERSIONED)


@dataclass
class MergeResult:
    """What merging one batch (or a set of persons) did."""

    persons: int = 0
    changed: int = 0
    created: int = 0


def _rank_key(attribute: str) -> str:
    """SQL text of a record's trust rank for the attribute as the key's first part (UNRANKED - rank)."""

    def key(rank: int) -> str:
        return f"'{UNRANKED - rank:0{RANK_WIDTH}d}'"

    ranks = {str(r["source"]): int(str(r["rank"])) for r in trust_rows() if r["attribute"] == attribute}
    whens = " ".join(f"WHEN '{source}' THEN {key(rank)}" for source, rank in sorted(ranks.items()))
    return f"(CASE r.source {whens} ELSE {key(UNRANKED)} END)" if whens else key(UNRANKED)


def _golden_sql() -> str:
    obs = "to_char(coalesce(r.event_date, b.as_of_date), 'YYYYMMDD') || lpad(r.id::text, 12, '0')"
    keys = [
        f"max(CASE WHEN {expr} IS NOT NULL THEN {_rank_key(attr)} || {obs} || {expr} END "
        f'COLLATE "C") AS k_{attr}'
        for attr, expr in ATTRIBUTES.items()
    ]
    keys.append(
        "max(CASE r.residence_status WHEN 'dead' THEN '1' WHEN 'left' THEN '0' WHEN 'present' THEN '0' END"
        f" || {obs} || CASE r.residence_status WHEN 'dead' THEN 'dead' WHEN 'left' THEN 'left'"
        " ELSE 'active' END COLLATE \"C\") AS k_status"
    )
    keys.append(
        f"max(CASE WHEN r.event IN ('marry', 'divorce') THEN {obs} || r.event END COLLATE \"C\") AS k_marital"
    )
    keys.append(
        "min(coalesce(r.event_date, b.as_of_date)) FILTER (WHERE r.residence_status = 'dead') AS death_date"
    )
    # valid_from of a new version: the newest observation among this batch's records (when it changed).
    keys.append("max(coalesce(r.event_date, b.as_of_date)) FILTER (WHERE l.batch_id = :b) AS batch_observed")
    return (
        "SELECT l.person_id, " + ", ".join(keys) + " FROM touched t JOIN link l ON l.person_id = t.person_id "
        "JOIN source_record r ON r.id = l.source_record_id JOIN batch b ON b.id = r.batch_id "
        "LEFT JOIN person_identifier pi ON r.id_valid AND pi.id_type = r.id_type AND pi.id_no = r.id_no "
        "WHERE r.status = 'accepted' GROUP BY l.person_id"
    )


def _value(attr: str) -> str:
    return f"substr(g.k_{attr}, {KEY_PREFIX + 1})"


def _source(attr: str) -> str:
    return f"substr(g.k_{attr}, {RANK_WIDTH + 8 + 1}, 12)::bigint"  # the record id, after rank and date


def _merge_touched(conn: Connection, *, batch_id: int | None, valid_from: date | None) -> MergeResult:
    """Recompute the golden records of the persons in temp table `touched`; version what changed."""
    conn.execute(text("DROP TABLE IF EXISTS golden, diff"))
    conn.execute(text(f"CREATE TEMP TABLE golden ON COMMIT DROP AS {_golden_sql()}"), {"b": batch_id})
    conn.execute(text("ANALYZE golden"))
    new_values = {
        "name": _value("name"),
        "id_type": f"split_part({_value('id_no')}, '|', 1)",
        "id_no": f"split_part({_value('id_no')}, '|', 2)",
        "sex": _value("sex"),
        "ethnicity": _value("ethnicity"),
        "birth_date": f"{_value('birth_date')}::date",
        "phone": _value("phone"),
        "address": _value("address"),
        # No current record may state where a newborn lives (the birth certificate does not): a
        # community once known is kept rather than erased.
        "community_code": f"coalesce({_value('community_code')}, p.community_code)",
        # Likewise a population type (a newborn's, taken from the mother) is kept until a record states one.
        "population_type": f"coalesce({_value('population_type')}, p.population_type)",
        "status": f"coalesce(substr(g.k_status, {1 + OBSERVED_WIDTH + 1}), 'active')",  # death flag, observed
        "death_date": "CASE WHEN g.k_status LIKE '1%' THEN g.death_date END",
        "marital_status": f"CASE substr(g.k_marital, {OBSERVED_WIDTH + 1}) WHEN 'marry' THEN 'married'"
        " WHEN 'divorce' THEN 'divorced' END",
    }
    provenance = ", ".join(
        f"'{attr}', CASE WHEN g.k_{attr} IS NOT NULL THEN {_source(attr)} END" for attr in ATTRIBUTES
    )
    select_new = ", ".join(f"{expr} AS {col}" for col, expr in new_values.items())
    changed = ", ".join(f"CASE WHEN p.{c} IS DISTINCT FROM n.{c} THEN '{c}' END" for c in VERSIONED)
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE diff ON COMMIT DROP AS
            SELECT n.*, p.status AS old_status, g.batch_observed,
                   array_remove(ARRAY[{changed}], NULL) AS changed,
                   NOT EXISTS (SELECT 1 FROM person_version v WHERE v.person_id = n.person_id) AS is_new
            FROM (SELECT g.person_id, {select_new}, jsonb_strip_nulls(jsonb_build_object({provenance})) AS provenance
                  FROM golden g JOIN person p ON p.id = g.person_id) n
            JOIN person p ON p.id = n.person_id
            JOIN golden g ON g.person_id = n.person_id
            """
        )
    )
    conn.execute(text("DELETE FROM diff WHERE cardinality(changed) = 0 AND NOT is_new"))
    sets = ", ".join(f"{c} = d.{c}" for c in new_values)
    conn.execute(
        text(
            f"UPDATE person p SET {sets}, name_pinyin = r.name_pinyin, provenance = d.provenance, "
            "area_key = coalesce(p.area_key, substr(d.community_code, 1, 6)), updated_at = now() "
            "FROM diff d LEFT JOIN source_record r ON r.id = (d.provenance ->> 'name')::bigint "
            "WHERE p.id = d.person_id AND (cardinality(d.changed) > 0 OR p.provenance IS DISTINCT FROM d.provenance)"
        )
    )
    cols = ", ".join(VERSIONED)
    # A version is a whole row, in force from its date until a version recorded later takes over. A
    # change that leaves where and as what the person lives alone (a phone number, a name) therefore
    # starts no earlier than the version it follows: dated back (social insurance reports the day its
    # record last changed), it would rewrite the person's area, type and status meanwhile with today's.
    # A clerk's decision (no batch) is dated by the day it is taken, as the versions it writes beside.
    observed = "coalesce(d.batch_observed, CAST(:valid_from AS date), CAST(:today AS date))"
    follows = partitions.newest(
        conn, "person_version", alias="v", where="v.person_id = d.person_id", columns=("valid_from",)
    )
    with without_jit(conn):  # a look-up per person (base.db.without_jit)
        _insert_versions(conn, cols, observed, follows, batch_id=batch_id, valid_from=valid_from)
    counts = conn.execute(
        text("SELECT (SELECT count(*) FROM golden), count(*), count(*) FILTER (WHERE is_new) FROM diff")
    ).one()
    return MergeResult(persons=counts[0], changed=counts[1], created=counts[2])


def _insert_versions(
    conn: Connection, cols: str, observed: str, follows: str, *, batch_id: int | None, valid_from: date | None
) -> None:
    """The new versions of the persons in `diff`, and the stretches a change dated back restates."""
    conn.execute(
        text(
            f"""
            INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, {cols})
            SELECT d.person_id, p.area_key,
                   CASE WHEN d.is_new OR d.changed && CAST(:residence AS text[]) OR CAST(:b AS bigint) IS NULL
                        THEN {observed}
                        ELSE greatest({observed}, {follows}) END,
                   :b, to_jsonb(CASE WHEN d.is_new THEN ARRAY['created'] ELSE d.changed END),
                   {", ".join(f"d.{c}" for c in VERSIONED)}
            FROM diff d JOIN person p ON p.id = d.person_id
            """
        ),
        {"b": batch_id, "valid_from": valid_from, "today": clock.today(), "residence": list(RESIDENCE)},
    )
    if batch_id is not None:  # a clerk's decision is dated the day it is taken: never before the latest
        conn.execute(
            text(
                RESTATE_SQL.format(
                    cols=cols, restated=_restated(), nv_cols=", ".join(f"nv.{c} AS n_{c}" for c in VERSIONED)
                )
            ),
            {"b": batch_id, "residence": list(RESIDENCE)},
        )


def merge_batch(*, session: Session, batch_id: int) -> MergeResult:
    """Merge the persons the batch's links touched.

    A person the batch created from a single record already holds that record's golden record
    (registry.resolve seeds it with the same rules), so it only gets its first version; the
    survivorship query runs for the others. In a snapshot of new persons that is nearly everyone.
    """
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS touched, seeded"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE seeded ON COMMIT DROP AS
            SELECT l.person_id FROM link l
            WHERE l.batch_id = :b AND l.rule = 'new_person'
              AND NOT EXISTS (SELECT 1 FROM link o WHERE o.person_id = l.person_id
                              AND o.source_record_id <> l.source_record_id)
            """
        ),
        {"b": batch_id},
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE touched ON COMMIT DROP AS SELECT DISTINCT person_id FROM link WHERE batch_id = :b "
            "EXCEPT SELECT person_id FROM seeded"
        ),
        {"b": batch_id},
    )
    conn.execute(text("ANALYZE touched"))
    result = _merge_touched(conn, batch_id=batch_id, valid_from=None)
    cols = ", ".join(VERSIONED)
    seeded = int(conn.execute(text("SELECT count(*) FROM seeded")).scalar_one())
    with indexes_deferred(conn, ("person_version",), seeded):  # an initial load: base.bulk
        created = conn.execute(
            text(
                f"""
                INSERT INTO person_version (person_id, area_key, valid_from, batch_id, changed, {cols})
                SELECT p.id, p.area_key, coalesce(r.event_date, b.as_of_date), :b, '["created"]',
                       {", ".join(f"p.{c}" for c in VERSIONED)}
                FROM seeded s JOIN person p ON p.id = s.person_id
                JOIN link l ON l.person_id = s.person_id JOIN source_record r ON r.id = l.source_record_id
                JOIN batch b ON b.id = r.batch_id
                """
            ),
            {"b": batch_id},
        ).rowcount
    result.persons += created
    result.changed += created
    result.created += created
    batches.advance(session, batch_id, to=BatchState.MERGED, expect=BatchState.RESOLVED)
    return result


def merge_persons(*, session: Session, person_ids: list[int], valid_from: date | None = None) -> MergeResult:
    """Recompute the golden records of the given persons (after a review decision)."""
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS touched"))
    conn.execute(text("CREATE TEMP TABLE touched (person_id bigint) ON COMMIT DROP"))
    conn.execute(text("INSERT INTO touched SELECT unnest(CAST(:ids AS bigint[]))"), {"ids": person_ids})
    return _merge_touched(conn, batch_id=None, valid_from=valid_from)
