"""Apply or roll back the schema with alembic, from code (CLI, tests, demo)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic configuration of the repo, optionally bound to an open connection."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "registry" / "migrations"))
    config.set_main_option("version_locations", str(ROOT / "registry" / "migrations" / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection | None = None, revision: str = "heads") -> None:
    """Bring the schema up to revision."""
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection | None = None, revision: str = "base") -> None:
    """Roll the schema back to revision."""
    command.downgrade(alembic_config(connection), revision)
