"""Source trust per golden attribute, from the feed specs (1 = most trusted)."""

from sqlalchemy import Connection, text

from schemas.feed_spec import LOWEST_RANK, load_feed_specs

# The rank of a source that provides an attribute without a trust rank for it: after every stated rank.
UNRANKED = LOWEST_RANK + 1


def trust_rows() -> list[dict[str, object]]:
    """(source, attribute, rank) for every rank in every feed spec."""
    return [
        {"source": spec.source, "attribute": attribute, "rank": rank}
        for spec in load_feed_specs().values()
        for attribute, rank in spec.trust.items()
    ]


def load_trust_table(conn: Connection) -> None:
    """A temporary table `trust(source, attribute, rank)` for the SQL of resolve and merge."""
    conn.execute(text("DROP TABLE IF EXISTS trust"))
    conn.execute(text("CREATE TEMP TABLE trust (source text, attribute text, rank int) ON COMMIT DROP"))
    conn.execute(text("INSERT INTO trust VALUES (:source, :attribute, :rank)"), trust_rows())
