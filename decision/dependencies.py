"""FastAPI dependencies of the decision platform."""

from collections.abc import Iterator

from sqlalchemy.orm import Session

from registry.db import session_scope


def get_session() -> Iterator[Session]:
    """A database session for one request (tests point it at their own database)."""
    with session_scope() as session:
        yield session
