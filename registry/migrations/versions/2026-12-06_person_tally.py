"""How many live persons there are, and how many of them hold no resident ID, kept as the tables change;
and an index on the name.

Resolve's scoring starts from the odds of a probe record being one given person: 1 against the live
persons (or, for a number never seen, against those holding no ID number yet), and it weighs an
agreeing name by how many persons bear it. Both were counted for every file with records to score:
two scans of `person` and one of `person_identifier`, about 0.7 s at 1,000,000 persons and growing with
the city (5 s expected at 7,500,000), for a daily file of 200 rows (BENCHMARKS.md). Now `person_tally`
holds the two counts, kept exact by triggers on every statement that changes them (written rows of a
statement, not a trigger per row, except the rare change of a person to or from retired), and the name's
persons are found through `ix_person_name`. `registry.tally` reads the counts; `popex db check` compares
them with a count.

Revision ID: 0017_person_tally
Revises: 0016_person_community_birth
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_person_tally"
down_revision: str | Sequence[str] | None = "0016_person_community_birth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Persons who hold no resident ID number (a live person's RID identifiers: at most one, but counted).
NO_RID = "NOT EXISTS (SELECT 1 FROM person_identifier x WHERE x.person_id = {p}.id AND x.id_type = 'RID')"
_NO_RID_P = NO_RID.format(p="p")
_NO_RID_NEW = NO_RID.format(p="NEW")
_NO_RID_QUOTED = NO_RID.format(p="n").replace("'", "''")  # inside a string literal of EXECUTE

FUNCTIONS = [
    f"""
    CREATE FUNCTION person_tally_recount() RETURNS void LANGUAGE sql AS $$
        INSERT INTO person_tally (id, active, without_rid)
        SELECT 1, count(*), count(*) FILTER (WHERE {_NO_RID_P})
        FROM person p WHERE p.status <> 'retired'
        ON CONFLICT (id) DO UPDATE SET active = excluded.active, without_rid = excluded.without_rid
    $$
    """,
    # Add to the counts; with no tally row (a table emptied by hand) count afresh, this change included.
    """
    CREATE FUNCTION person_tally_add(a bigint, w bigint) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF a = 0 AND w = 0 THEN
            RETURN;
        END IF;
        UPDATE person_tally SET active = active + a, without_rid = without_rid + w WHERE id = 1;
        IF NOT FOUND THEN
            PERFORM person_tally_recount();
        END IF;
    END $$
    """,
    # Statement triggers: the written rows are the statement's transition table, planned as it is
    # (EXECUTE: a bulk insert of millions hashes, a daily file's few rows use the indexes).
    f"""
    CREATE FUNCTION person_tally_persons() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        sign bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
        a bigint;
        w bigint;
    BEGIN
        EXECUTE format(
            'SELECT count(*), count(*) FILTER (WHERE {_NO_RID_QUOTED})'
            ' FROM %I n WHERE n.status <> ''retired''',
            CASE TG_OP WHEN 'INSERT' THEN 'added' ELSE 'removed' END
        ) INTO a, w;
        PERFORM person_tally_add(sign * a, sign * w);
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION person_tally_retired() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        sign bigint := CASE WHEN NEW.status = 'retired' THEN -1 ELSE 1 END;
    BEGIN
        PERFORM person_tally_add(sign, CASE WHEN {_NO_RID_NEW} THEN sign ELSE 0 END);
        RETURN NULL;
    END $$
    """,
    # A live person's RID rows before the statement: those now, less the statement's added, plus its
    # removed. Holding none now and some before (or the reverse) moves the person in (out of) the count.
    """
    CREATE FUNCTION person_tally_identifiers() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        moved text := CASE TG_OP
            WHEN 'INSERT' THEN 'SELECT person_id, 1 AS d FROM added WHERE id_type = ''RID'''
            WHEN 'DELETE' THEN 'SELECT person_id, -1 AS d FROM removed WHERE id_type = ''RID'''
            ELSE 'SELECT person_id, 1 AS d FROM added WHERE id_type = ''RID'''
                 ' UNION ALL SELECT person_id, -1 FROM removed WHERE id_type = ''RID''' END;
        w bigint;
    BEGIN
        EXECUTE format(
            'WITH m AS (SELECT person_id, sum(d) AS change FROM (%s) s GROUP BY person_id),'
            ' now AS (SELECT x.person_id, count(*) AS n FROM person_identifier x'
            '         WHERE x.id_type = ''RID'' AND x.person_id IN (SELECT person_id FROM m) GROUP BY x.person_id)'
            ' SELECT coalesce(sum((coalesce(now.n, 0) = 0)::int - (coalesce(now.n, 0) - m.change = 0)::int), 0)'
            ' FROM m JOIN person p ON p.id = m.person_id AND p.status <> ''retired'''
            ' LEFT JOIN now ON now.person_id = m.person_id',
            moved
        ) INTO w;
        PERFORM person_tally_add(0, w);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION person_tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM person_tally_recount();
        RETURN NULL;
    END $$
    """,
]

TRIGGERS = [
    "CREATE TRIGGER person_tally_added AFTER INSERT ON person REFERENCING NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_persons()",
    "CREATE TRIGGER person_tally_removed AFTER DELETE ON person REFERENCING OLD TABLE AS removed"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_persons()",
    # Only a change to or from retired moves a person in or out (a merge, an unmerge): a row trigger
    # that the bulk updates of the merge step, which never retire anyone, do not fire.
    "CREATE TRIGGER person_tally_retired AFTER UPDATE OF status ON person FOR EACH ROW"
    " WHEN ((OLD.status = 'retired') IS DISTINCT FROM (NEW.status = 'retired'))"
    " EXECUTE FUNCTION person_tally_retired()",
    "CREATE TRIGGER person_tally_truncated AFTER TRUNCATE ON person"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_truncated()",
    "CREATE TRIGGER person_tally_added AFTER INSERT ON person_identifier REFERENCING NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_identifiers()",
    "CREATE TRIGGER person_tally_removed AFTER DELETE ON person_identifier REFERENCING OLD TABLE AS removed"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_identifiers()",
    "CREATE TRIGGER person_tally_moved AFTER UPDATE ON person_identifier"
    " REFERENCING OLD TABLE AS removed NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_identifiers()",
    "CREATE TRIGGER person_tally_truncated AFTER TRUNCATE ON person_identifier"
    " FOR EACH STATEMENT EXECUTE FUNCTION person_tally_truncated()",
]


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE person_tally (
            id smallint DEFAULT 1 NOT NULL,
            active bigint NOT NULL,
            without_rid bigint NOT NULL,
            CONSTRAINT pk_person_tally PRIMARY KEY (id),
            CONSTRAINT ck_person_tally_one CHECK (id = 1)
        )
        """
    )
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute("LOCK TABLE person, person_identifier IN SHARE MODE")  # no change between count and triggers
    op.execute("SELECT person_tally_recount()")
    for statement in TRIGGERS:
        op.execute(statement)
    op.create_index("ix_person_name", "person", ["name"])


def downgrade() -> None:
    op.drop_index("ix_person_name", table_name="person")
    for table in ("person", "person_identifier"):
        for trigger in ("added", "removed", "retired", "moved", "truncated"):
            op.execute(f"DROP TRIGGER IF EXISTS person_tally_{trigger} ON {table}")
    for function in ("persons", "retired", "identifiers", "truncated"):
        op.execute(f"DROP FUNCTION person_tally_{function}()")
    op.execute("DROP FUNCTION person_tally_add(bigint, bigint)")
    op.execute("DROP FUNCTION person_tally_recount()")
    op.execute("DROP TABLE person_tally")
