"""How many persons are live and how many of them hold no resident ID number: resolve's priors.

Counting them scans `person` and `person_identifier`, which a daily file of 200 rows cannot afford at a
city's size (0.6 s at 1,000,000 persons, for every file with records to score). `person_tally` keeps the
two counts exact as the tables change (triggers, migration 0017_person_tally); they are read in the
reader's snapshot, so within a transaction they include its own changes, as a count would.
"""

from sqlalchemy import Connection, text

# The counts as of now, for `popex db check` (registry.consistency) and tests.
COUNT_SQL = (
    "SELECT count(*) AS active, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM person_identifier x"
    " WHERE x.person_id = p.id AND x.id_type = 'RID')) AS without_rid FROM person p WHERE p.status <> 'retired'"
)


def live_persons(conn: Connection) -> tuple[int, int]:
    """(live persons, live persons holding no RID number). With no tally row (the table emptied by
    hand) it is counted afresh once, and kept from then on."""
    row = conn.execute(text("SELECT active, without_rid FROM person_tally WHERE id = 1")).one_or_none()
    if row is None:
        conn.execute(text("SELECT person_tally_recount()"))
        row = conn.execute(text("SELECT active, without_rid FROM person_tally WHERE id = 1")).one()
    return int(row.active), int(row.without_rid)
