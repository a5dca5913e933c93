"""Alembic owns the schema: upgrade and downgrade round-trip on a real database."""

from sqlalchemy import create_engine, inspect

from registry.db import Base
from registry.migrate import downgrade, import_all_models, upgrade
from tests.conftest import create_database, drop_database


def test_upgrade_downgrade_round_trip() -> None:
    url = create_database("popex_mig")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.begin() as conn:
            downgrade(conn)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with engine.begin() as conn:
            upgrade(conn)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        drop_database(url)


def test_models_match_migrations(engine) -> None:
    """Autogenerate finds nothing to change: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import_all_models()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
