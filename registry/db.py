"""The one database: engine, sessions and the declarative base with stable constraint names."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from popex.settings import database_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every mapped table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url() -> str:
    """POPEX_DATABASE_URL, or the embedded PostgreSQL started on demand."""
    settings = database_settings()
    if settings.database_url:
        return settings.database_url
    from registry.embedded import embedded_url

    return embedded_url(settings.embedded_dir)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine.

    Statement parameters are left out of SQLAlchemy's error messages and logs (`hide_parameters`):
    they are ID numbers and names, and an error's message ends up in logs (Airflow's task logs too).
    """
    return create_engine(
        database_url(), pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
