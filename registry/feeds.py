"""Member departments and their feeds, kept in step with the feed specs in schemas/feeds/."""

from sqlalchemy import text
from sqlalchemy.orm import Session

from schemas.feed_spec import load_feed_specs


def sync_feeds(*, session: Session) -> int:
    """Upsert a department and a feed row per spec file; returns the number of feeds."""
    specs = load_feed_specs().values()
    session.execute(
        text(
            "INSERT INTO department (code, name) VALUES (:code, :name) ON CONFLICT (code) DO UPDATE SET name = excluded.name"
        ),
        [{"code": s.department.code, "name": s.department.name} for s in specs],
    )
    session.execute(
        text(
            "INSERT INTO feed (source, department_code, title) VALUES (:source, :dept, :title) "
            "ON CONFLICT (source) DO UPDATE SET department_code = excluded.department_code, title = excluded.title"
        ),
        [{"source": s.source, "dept": s.department.code, "title": s.title} for s in specs],
    )
    return len(specs)
