"""Apply or roll back the schema with alembic, from code (CLI, tests, demo)."""

import os
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from registry.partitions import TABLES

ROOT = Path(__file__).resolve().parent.parent
# The registry owns the base schema; each platform that needs tables of its own keeps its migrations
# in <platform>/migrations as an alembic branch depending on the registry's.
PLATFORMS = ("exchange", "collection", "sharing_api", "decision", "monitor")


class MigrationRefused(RuntimeError):
    """A migration that cannot be applied to the data as it is; its message (zh-CN) says what to do."""


def version_locations() -> list[Path]:
    """Every folder holding migrations: the registry's, then each platform's that has one."""
    folders = [ROOT / "registry" / "migrations" / "versions"]
    return folders + [ROOT / p / "migrations" for p in PLATFORMS if (ROOT / p / "migrations").is_dir()]


def import_all_models() -> None:
    """Import every module that maps tables (the registry's and each platform's models.py)."""
    import importlib
    import importlib.util

    importlib.import_module("registry.models")
    for platform in PLATFORMS:
        if importlib.util.find_spec(f"{platform}.models") is not None:
            importlib.import_module(f"{platform}.models")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """What alembic compares: not the partitions of a partitioned table (registry.partitions), which
    the daily run creates and no model maps."""
    if type_ != "table" or name is None:
        return True
    return not any(re.fullmatch(rf"{t.table}_(y\d{{4}}|m\d{{6}}|default)", name) for t in TABLES)


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic configuration of the repo, optionally bound to an open connection."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "registry" / "migrations"))
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in version_locations()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection | None = None, revision: str = "heads") -> None:
    """Bring the schema up to revision."""
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection | None = None, revision: str = "base") -> None:
    """Roll the schema back to revision."""
    command.downgrade(alembic_config(connection), revision)
