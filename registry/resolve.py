"""Resolve a batch: link every accepted source record to exactly one person, set-wise.

1. Known document number (deterministic): the record joins the person holding it — unless name or birth
   date contradict that person, then a clerk reviews it (never a silent merge).
2. A valid number never seen before: first compared with the persons who have no number of that type
   yet (a newborn known from the birth certificate, an elderly resident registered without an ID),
   otherwise a new person is created for it.
3. No usable number (none, invalid, typo): candidates from blocking keys, scored (registry.linkage),
   then linked, sent to review, or left for step 4.
4. What is left becomes new persons, one per group of records that agree on their key within the batch.
Person numbers come from a sequence and are never reused; a retried step starts from a rolled-back
transaction, so it gives the same links.
"""

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from base.bulk import indexes_deferred
from registry import batches, linkage, tally
from registry.trust import UNRANKED, load_trust_table
from schemas.canonical import BatchState

PERSON_FIELDS = ("name", "name_pinyin", "sex", "birth_date", "id_type", "id_no", "community_code", "phone")


@dataclass
class ResolveResult:
    """What resolving one batch did."""

    batch_id: int
    records: int = 0
    linked_by_id: int = 0
    id_conflicts: int = 0
    linked_by_score: int = 0
    review: int = 0
    new_persons: int = 0
    linked_to_new: int = 0
    m_source: str = "default"
    indexes_built_after: list[str] = field(default_factory=list)  # tables loaded without their indexes


def _pending(conn: Connection, batch_id: int) -> int:
    conn.execute(text("DROP TABLE IF EXISTS pending"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE pending ON COMMIT DROP AS
            SELECT r.id, r.source, r.id_type, r.id_no, r.id_valid, r.name, r.name_pinyin, r.sex, r.birth_date,
                   r.community_code, r.phone, r.area_key, r.population_type, r.ethnicity, r.address,
                   r.residence_status, r.event, coalesce(r.event_date, b.as_of_date) AS observed,
                   r.community_code IS NOT NULL AS own_community, r.population_type IS NOT NULL AS own_type
            FROM source_record r JOIN batch b ON b.id = r.batch_id
            WHERE r.batch_id = :b AND r.status = 'accepted'
              AND NOT EXISTS (SELECT 1 FROM link l WHERE l.source_record_id = r.id)
            """
        ),
        {"b": batch_id},
    )
    conn.execute(text("CREATE INDEX ON pending (id)"))
    # A birth certificate names no community and no population type: the newborn lives in the mother's
    # household and counts as she does (floating with a floating mother) until their own registration
    # says otherwise; the community lets the household registration's birth entry (with the new ID
    # number) find the newborn days later.
    conn.execute(
        text(
            """
            UPDATE pending pe SET community_code = coalesce(pe.community_code, m.community_code),
                   area_key = CASE WHEN pe.community_code IS NULL THEN m.area_key ELSE pe.area_key END,
                   population_type = coalesce(pe.population_type, m.population_type)
            FROM source_record r, person_identifier pi, person m
            WHERE r.id = pe.id AND (pe.community_code IS NULL OR pe.population_type IS NULL)
              AND r.mother_id_no IS NOT NULL
              AND pi.id_type = 'RID' AND pi.id_no = r.mother_id_no AND m.id = pi.person_id
            """
        )
    )
    conn.execute(text("ANALYZE pending"))
    return int(conn.execute(text("SELECT count(*) FROM pending")).scalar_one())


def _link_known_ids(conn: Connection, batch_id: int) -> tuple[int, int]:
    """Step 1: records whose valid number a person already holds."""
    conn.execute(text("DROP TABLE IF EXISTS det"))
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE det ON COMMIT DROP AS
            SELECT pe.id AS rid, pe.area_key, pi.person_id,
                   NOT (pe.name IS NULL OR p.name IS NULL OR pe.name = p.name OR pe.name_pinyin = p.name_pinyin
                        OR levenshtein(pe.name_pinyin, p.name_pinyin) <= 2
                        OR coalesce(t.rank, {UNRANKED}) = 1) AS name_conflict,
                   coalesce(pe.birth_date <> p.birth_date, false) AS birth_conflict
            FROM pending pe
            JOIN person_identifier pi ON pi.id_type = pe.id_type AND pi.id_no = pe.id_no
            JOIN person p ON p.id = pi.person_id
            LEFT JOIN trust t ON t.source = pe.source AND t.attribute = 'name'
            WHERE pe.id_valid
            """
        )
    )
    linked = conn.execute(
        text(
            """
            INSERT INTO link (source_record_id, person_id, batch_id, area_key, rule, levels, method)
            SELECT rid, person_id, :b, area_key, 'id_exact', '{"id_no": ["exact", null]}', 'auto'
            FROM det WHERE NOT name_conflict AND NOT birth_conflict
            """
        ),
        {"b": batch_id},
    ).rowcount
    conflicts = conn.execute(
        text(
            """
            INSERT INTO review_item (kind, source_record_id, candidate_person_id, batch_id, levels, state)
            SELECT 'id_conflict', rid, person_id, :b,
                   jsonb_build_object('id_no', 'exact', 'name', CASE WHEN name_conflict THEN 'different' ELSE 'ok' END,
                                      'birth_date', CASE WHEN birth_conflict THEN 'different' ELSE 'ok' END),
                   'open'
            FROM det WHERE name_conflict OR birth_conflict
            """
        ),
        {"b": batch_id},
    ).rowcount
    conn.execute(text("DELETE FROM pending WHERE id IN (SELECT rid FROM det)"))
    return linked, conflicts


# From this many probe records on, the candidates are found by hashing both sides once per rule. The
# planner chose nested loops over person's indexes for any probe size; for the community rule that
# reads every person born on the record's birth date (about 160 of them at 7.5 M persons): a
# floating-population snapshot of 2.6 M new numbers ran over 10 minutes there, 87 s hashed (BENCHMARKS.md).
# A daily file's probe of hundreds keeps the nested loops, which are right for it.
HASH_PROBE_ROWS = 50_000


def _candidates(conn: Connection, *, only_without_id: bool, probe_rows: int) -> list[dict[str, Any]]:
    """Pairs (probe record, person) from every blocking rule (one SELECT each), with both sides' fields."""
    extra = (
        " AND NOT EXISTS (SELECT 1 FROM person_identifier x WHERE x.person_id = p.id AND x.id_type = pr.id_type)"
        if only_without_id
        else ""
    )
    # A rule on the name also finds, for a new number, a person of that name holding a number of its
    # type: when the two numbers are a digit or two apart (a typo that kept a valid check digit),
    # _score_probe sends the pair to a clerk.
    union = " UNION ".join(
        f"SELECT pr.id AS rid, p.id AS pid FROM probe pr JOIN person p ON {rule.sql('p', 'pr')}"
        f" WHERE p.status <> 'retired'{'' if rule.on_name else extra}"
        for rule in linkage.BLOCKING_RULES
    )
    cols = ", ".join([f"pr.{f} AS r_{f}" for f in PERSON_FIELDS] + [f"p.{f} AS p_{f}" for f in PERSON_FIELDS])
    query = text(
        f"SELECT c.rid, c.pid, pr.area_key AS r_area_key, {cols} "
        f"FROM ({union}) c JOIN probe pr ON pr.id = c.rid JOIN person p ON p.id = c.pid"
    )
    with hash_joins(conn, probe_rows >= HASH_PROBE_ROWS):
        return [dict(r._mapping) for r in conn.execute(query)]


@contextmanager
def hash_joins(conn: Connection, on: bool = True) -> Iterator[None]:
    """Within the block (when `on`), the transaction's statements are planned without nested loops."""
    if not on:
        yield
        return
    previous = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar_one()
    conn.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    try:
        yield
    finally:
        conn.execute(text("SELECT set_config('enable_nestloop', :v, true)"), {"v": previous})


def _model(
    conn: Connection, pairs: list[dict[str, Any]], m: dict[str, dict[str, float]], *, only_without_id: bool
) -> linkage.Model:
    population, without_rid = tally.live_persons(conn)
    # A new number is only compared with persons holding no number yet: they are the population it
    # could belong to, so they set the prior.
    candidates = without_rid if only_without_id else population
    # The candidates' spellings too: 安娜·金 and 安娜金 are one name, and their persons add up.
    names = sorted({p[f"{side}_name"] for p in pairs for side in "rp" if p[f"{side}_name"]})
    freq: dict[str, float] = {}
    if names and population:
        rows = conn.execute(
            text("SELECT name, count(*) FROM person WHERE name = ANY(:n) GROUP BY name"), {"n": names}
        )
        freq = linkage.name_frequencies(((name, n) for name, n in rows), population)
    # Each probe record has at most one true match among the candidates: prior odds 1 : candidates.
    prior = -math.log2(max(candidates, 2))
    return linkage.Model(m=m, log2_prior_odds=prior, name_freq=freq, population=population)


def _score_probe(
    conn: Connection, batch_id: int, m: dict[str, dict[str, float]], *, only_without_id: bool, probe_rows: int
) -> tuple[int, int]:
    """Score the probe table's candidates; write links and review items; remove them from pending."""
    pairs = _candidates(conn, only_without_id=only_without_id, probe_rows=probe_rows)
    if not pairs:
        return 0, 0
    model = _model(conn, pairs, m, only_without_id=only_without_id)
    # A new passport's (or other non-RID document's) number is compared with the persons holding no
    # number of its type: nearly everyone, residents with their ID cards included, so its prior is the
    # population's. With the RID pool's (a few hundred persons without an ID card) a foreigner born the
    # day a resident of their community was born scored a review on birth date and community alone.
    everyone = replace(model, log2_prior_odds=-math.log2(max(model.population, 2)))
    ranked: dict[int, list[tuple[float, int, dict[str, Any]]]] = {}
    holds_another: set[tuple[int, int]] = set()
    for pair in pairs:
        # A new number against a person who holds another of its type: a candidate only when the two
        # differ in a digit or two (a typo either side kept valid by its check digit) and the name is
        # the same (twins' numbers differ in a digit or two as well; so may those of two people whose
        # names only sound alike, 王小明 and 王晓明, born days apart), compared with everyone who holds
        # one, and never linked without a clerk (which number is right?).
        holds = only_without_id and pair["p_id_type"] == pair["r_id_type"] and pair["p_id_no"] is not None
        if holds and not linkage.numbers_close(pair):
            continue
        prior = model if pair["r_id_type"] in ("RID", None) and not holds else everyone
        bits, explained = linkage.score(pair, prior)
        if holds:
            if explained.get("name", [None])[0] != "exact":
                continue
            holds_another.add((pair["rid"], pair["pid"]))
        ranked.setdefault(pair["rid"], []).append((bits, pair["pid"], explained))
    decided: dict[int, dict[str, Any]] = {}
    for rid, options in ranked.items():
        options.sort(key=lambda o: (-o[0], o[1]))
        bits, pid, explained = options[0]
        decision = linkage.decide(
            bits, options[1][0] if len(options) > 1 else None, explained.get("name", [None])[0]
        )
        if decision == "link" and (rid, pid) in holds_another:
            decision = "review"
        if decision != "new":
            decided[rid] = {
                "rid": rid,
                "pid": pid,
                "score": round(bits, 3),
                "decision": decision,
                "levels": json.dumps(explained, ensure_ascii=False),
            }
    if only_without_id:
        # A person without a number takes at most one new number (twins share a birth date and a
        # surname), and a number goes to at most one person: the batch's other records of that number
        # stay pending and join its holder in the second pass of step 1.
        number = {p["rid"]: (p["r_id_type"], p["r_id_no"]) for p in pairs}
        best: dict[object, dict[str, Any]] = {}
        for row in sorted(decided.values(), key=lambda r: (-r["score"], r["rid"])):
            if row["decision"] == "link":
                for key in (row["pid"], number[row["rid"]]):
                    best.setdefault(key, row)
        decided = {
            r["rid"]: r
            for r in decided.values()
            if r["decision"] == "review" or best[r["pid"]] is r is best[number[r["rid"]]]
        }
    if not decided:
        return 0, 0
    conn.execute(text("DROP TABLE IF EXISTS decided"))
    conn.execute(
        text(
            "CREATE TEMP TABLE decided (rid bigint, pid bigint, score float8, decision text, levels jsonb) "
            "ON COMMIT DROP"
        )
    )
    conn.execute(
        text("INSERT INTO decided VALUES (:rid, :pid, :score, :decision, CAST(:levels AS jsonb))"),
        list(decided.values()),
    )
    linked = conn.execute(
        text(
            "INSERT INTO link (source_record_id, person_id, batch_id, area_key, rule, score, levels, method) "
            "SELECT d.rid, d.pid, :b, pe.area_key, 'score', d.score, d.levels, 'auto' "
            "FROM decided d JOIN pending pe ON pe.id = d.rid WHERE d.decision = 'link'"
        ),
        {"b": batch_id},
    ).rowcount
    if only_without_id:
        conn.execute(
            text(
                "INSERT INTO person_identifier (id_type, id_no, person_id) "
                "SELECT pe.id_type, pe.id_no, d.pid FROM decided d JOIN pending pe ON pe.id = d.rid "
                "WHERE d.decision = 'link'"
            )
        )
    review = conn.execute(
        text(
            "INSERT INTO review_item (kind, source_record_id, candidate_person_id, batch_id, score, levels, state) "
            "SELECT 'probable_match', rid, pid, :b, score, levels, 'open' FROM decided WHERE decision = 'review'"
        ),
        {"b": batch_id},
    ).rowcount
    conn.execute(text("DELETE FROM pending WHERE id IN (SELECT rid FROM decided)"))
    return linked, review


def _make_probe(conn: Connection, where: str) -> int:
    conn.execute(text("DROP TABLE IF EXISTS probe"))
    conn.execute(text(f"CREATE TEMP TABLE probe ON COMMIT DROP AS SELECT * FROM pending WHERE {where}"))
    conn.execute(text("ANALYZE probe"))
    return int(conn.execute(text("SELECT count(*) FROM probe")).scalar_one())


def _create_persons(conn: Connection, batch_id: int) -> tuple[int, int, list[str]]:
    """Step 4: one new person per group of the remaining records.

    The person starts with the golden record its first record gives (the same rules as registry.merge),
    so that merging a snapshot of new persons rewrites no row: only groups of several records change.
    An initial load (more new records than the tables hold) builds the tables' secondary indexes after
    its rows (base.bulk); also returns the tables whose indexes were built so.
    """
    conn.execute(text("DROP TABLE IF EXISTS grouped, newp"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE grouped ON COMMIT DROP AS
            SELECT id AS rid, area_key,
                   CASE WHEN id_valid THEN 'I|' || id_type || '|' || id_no
                        WHEN name_pinyin IS NOT NULL AND birth_date IS NOT NULL
                            THEN 'N|' || name_pinyin || '|' || birth_date || '|' || coalesce(sex, '')
                        ELSE 'R|' || id END AS grp
            FROM pending
            """
        )
    )
    conn.execute(
        text(
            """
            CREATE TEMP TABLE newp ON COMMIT DROP AS
            SELECT g.grp, nextval('person_id_seq') AS pid, nextval('person_no_seq') AS no, pe.*
            FROM (SELECT grp, min(rid) AS rid FROM grouped GROUP BY grp) g
            JOIN pending pe ON pe.id = g.rid
            ORDER BY g.rid
            """
        )
    )
    adding = int(conn.execute(text("SELECT count(*) FROM grouped")).scalar_one())
    with indexes_deferred(conn, ("person", "person_identifier", "link"), adding) as deferred:
        created, linked = _insert_persons(conn, batch_id)
    return created, linked, deferred


def _insert_persons(conn: Connection, batch_id: int) -> tuple[int, int]:
    """The new persons of `newp`, their numbers and the links of `grouped`'s records to them."""
    created = conn.execute(
        text(
            """
            INSERT INTO person (id, person_no, area_key, status, id_type, id_no, name, name_pinyin, sex, birth_date,
                                community_code, phone, population_type, ethnicity, address, death_date,
                                marital_status, provenance)
            SELECT pid, 'P' || lpad(no::text, 11, '0'), area_key,
                   CASE residence_status WHEN 'dead' THEN 'dead' WHEN 'left' THEN 'left' ELSE 'active' END,
                   CASE WHEN id_valid THEN id_type END, CASE WHEN id_valid THEN id_no END,
                   name, name_pinyin, sex, birth_date, community_code, phone, population_type, ethnicity, address,
                   CASE WHEN residence_status = 'dead' THEN observed END,
                   CASE event WHEN 'marry' THEN 'married' WHEN 'divorce' THEN 'divorced' END,
                   jsonb_strip_nulls(jsonb_build_object(
                       'name', CASE WHEN name IS NOT NULL THEN id END,
                       'id_no', CASE WHEN id_valid THEN id END,
                       'sex', CASE WHEN sex IS NOT NULL THEN id END,
                       'ethnicity', CASE WHEN ethnicity IS NOT NULL THEN id END,
                       'birth_date', CASE WHEN birth_date IS NOT NULL THEN id END,
                       'phone', CASE WHEN phone IS NOT NULL THEN id END,
                       'address', CASE WHEN address IS NOT NULL THEN id END,
                       'community_code', CASE WHEN own_community THEN id END,
                       'population_type', CASE WHEN own_type THEN id END))
            FROM newp
            """
        )
    ).rowcount
    conn.execute(
        text(
            "INSERT INTO person_identifier (id_type, id_no, person_id) "
            "SELECT id_type, id_no, pid FROM newp WHERE id_valid"
        )
    )
    linked = conn.execute(
        text(
            """
            INSERT INTO link (source_record_id, person_id, batch_id, area_key, rule, levels, method)
            SELECT g.rid, n.pid, :b, g.area_key, 'new_person', NULL, 'auto'
            FROM grouped g JOIN newp n ON n.grp = g.grp
            """
        ),
        {"b": batch_id},
    ).rowcount
    return created, linked


def _learn_m(conn: Connection, batch_id: int) -> tuple[dict[str, dict[str, float]], str]:
    """m from this batch's ID-decided links, else the newest stored estimate, else the defaults."""
    cols = ", ".join([f"r.{f} AS r_{f}" for f in PERSON_FIELDS] + [f"p.{f} AS p_{f}" for f in PERSON_FIELDS])
    rows = conn.execute(
        text(
            f"SELECT {cols} FROM link l JOIN source_record r ON r.id = l.source_record_id "
            f"JOIN person p ON p.id = l.person_id WHERE l.batch_id = :b AND l.rule = 'id_exact' LIMIT 20000"
        ),
        {"b": batch_id},
    )
    estimated = linkage.estimate_m(dict(r._mapping) for r in rows)
    if estimated is not None:
        return estimated, "this_batch"
    stored = conn.execute(
        text(
            "SELECT resolution -> 'model' -> 'm' FROM batch WHERE resolution -> 'model' ->> 'm_source' = 'this_batch' "
            "ORDER BY id DESC LIMIT 1"
        )
    ).scalar()
    if stored:  # a comparison added since that batch takes its defaults
        return {**linkage.default_m(), **stored}, "earlier_batch"
    return linkage.default_m(), "default"


def resolve_batch(*, session: Session, batch_id: int) -> ResolveResult:
    """Link every accepted, unlinked record of the batch; idempotent (linked records are skipped)."""
    conn = session.connection()
    load_trust_table(conn)
    result = ResolveResult(batch_id)
    result.records = _pending(conn, batch_id)
    result.linked_by_id, result.id_conflicts = _link_known_ids(conn, batch_id)
    m, result.m_source = _learn_m(conn, batch_id)
    if probe_rows := _make_probe(conn, "id_valid"):
        linked, review = _score_probe(conn, batch_id, m, only_without_id=True, probe_rows=probe_rows)
        result.linked_by_score += linked
        result.review += review
        if linked:  # numbers step 2 just gave to persons: the batch's other records of them join them
            linked, conflicts = _link_known_ids(conn, batch_id)
            result.linked_by_id += linked
            result.id_conflicts += conflicts
    # New numbers still pending get their persons now, so that step 3 can find them too.
    if probe_rows := _make_probe(conn, "NOT id_valid"):
        linked, review = _score_probe(conn, batch_id, m, only_without_id=False, probe_rows=probe_rows)
        result.linked_by_score += linked
        result.review += review
    result.new_persons, result.linked_to_new, result.indexes_built_after = _create_persons(conn, batch_id)
    conn.execute(
        text(
            """
            UPDATE source_record r SET status = 'review',
                   reasons = r.reasons || CASE WHEN i.kind = 'id_conflict' THEN '["ID_CONFLICT"]'::jsonb
                                               ELSE '["PROBABLE_MATCH"]'::jsonb END
            FROM review_item i
            WHERE i.source_record_id = r.id AND i.batch_id = :b AND i.state = 'open' AND r.status = 'accepted'
            """
        ),
        {"b": batch_id},
    )
    model = {"m": m, "m_source": result.m_source}
    conn.execute(
        text("UPDATE batch SET resolution = CAST(:res AS jsonb) WHERE id = :b"),
        {"b": batch_id, "res": json.dumps({**asdict(result), "model": model})},
    )
    batches.advance(session, batch_id, to=BatchState.RESOLVED, expect=BatchState.GATED)
    update_counts(session=session, batch_id=batch_id)
    return result


def update_counts(*, session: Session, batch_id: int) -> None:
    """Row accounting of a batch from its records: received = accepted + rejected + review."""
    session.execute(
        text(
            """
            UPDATE batch b SET rows_received = c.received, rows_accepted = c.accepted,
                               rows_rejected = c.rejected, rows_review = c.review
            FROM (SELECT count(*) AS received,
                         count(*) FILTER (WHERE status = 'accepted') AS accepted,
                         count(*) FILTER (WHERE status = 'rejected') AS rejected,
                         count(*) FILTER (WHERE status = 'review') AS review
                  FROM source_record WHERE batch_id = :b) c
            WHERE b.id = :b
            """
        ),
        {"b": batch_id},
    )
