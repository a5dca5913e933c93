"""The one unit of work: the engine, sessions that commit on success and roll back on error."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from base.settings import database_settings

SessionFactory = Callable[[], Session]

DRIVER = "postgresql+psycopg2"  # COPY goes through psycopg2's copy_expert


class DatabaseUrlError(ValueError):
    """A database URL popex cannot use."""


def normalise_url(url: str) -> str:
    """The URL with psycopg2 as its driver: a plain `postgresql://` (or `postgres://`) URL would
    make SQLAlchemy 2.1 pick psycopg 3, on which the bulk paths' COPY fails. Anything other than
    PostgreSQL is refused with a message saying what is expected."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"POPEX_DATABASE_URL 无法解析：{type(exc).__name__}") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"POPEX_DATABASE_URL 须为 PostgreSQL（如 {DRIVER}://user@host:5432/popex），"
            f"而不是 {parsed.get_backend_name()}"
        )
    if parsed.drivername not in (DRIVER, "postgresql", "postgres"):
        raise DatabaseUrlError(
            f"POPEX_DATABASE_URL 的驱动 {parsed.drivername} 不受支持：请用 {DRIVER}:// 或 postgresql://"
        )
    return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)


def database_url() -> str:
    """POPEX_DATABASE_URL (with the psycopg2 driver), or the embedded PostgreSQL started on demand."""
    settings = database_settings()
    if settings.database_url:
        return normalise_url(settings.database_url)
    from base.embedded import embedded_url

    return embedded_url(settings.embedded_dir)


def create_database(name: str, server: str | None = None) -> str:
    """A new, empty database `name` on the server (default: the configured one; one of that name is
    dropped first); its URL. For benchmarks and tests, which each use a name of their own: dropping is
    forced (WITH (FORCE)), so two runs sharing a name would break each other."""
    drop_database(name, server)
    admin = make_url(server or database_url())
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str, server: str | None = None) -> None:
    """Drop database `name` on the server (default: the configured one), its connections ended first."""
    engine = create_engine(make_url(server or database_url()), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextmanager
def throwaway_database(name: str, *, keep: bool = False, server: str | None = None) -> Iterator[str]:
    """A new database `name` for the duration (its URL), dropped afterwards unless `keep`."""
    url = create_database(name, server)
    try:
        yield url
    finally:
        if not keep:
            drop_database(name, server)


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
def session_factory() -> sessionmaker[Session]:
    """Sessions on the configured database (objects stay readable after commit)."""
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work on a session of `factory`: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def session_scope() -> AbstractContextManager[Session]:
    """A unit of work on the configured database."""
    return transaction(session_factory())


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one unit of work per request (tests override it with their own session)."""
    with session_scope() as session:
        yield session


@contextmanager
def without_jit(conn: Connection) -> Iterator[None]:
    """PostgreSQL's JIT off for the statements run inside (in this transaction), then back to what it
    was: for a statement planned as costly whose work is many small look-ups (one per person, over
    every partition of the history). JIT compiles such a plan first — hundreds of functions, inlined
    and optimised, more with every partition — and took longer than it saved each time it was
    measured: the statistics' persons of a 45,000-person extract after ten yearly partitions, 3.0 s
    with JIT and 0.5 s without (BENCHMARKS.md, 2026-12-07). The bulk statements of an initial load keep
    it: off for whole steps, the 100,000-person city's initial load took 8-11 % longer. After an error
    nothing is put back: the transaction's rollback undoes the setting."""
    before = conn.scalar(text("SELECT current_setting('jit')"))
    conn.execute(text("SET LOCAL jit = off"))
    yield
    conn.execute(text("SELECT set_config('jit', :jit, true)"), {"jit": before})
