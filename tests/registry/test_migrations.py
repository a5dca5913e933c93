"""Alembic owns the schema: upgrade and downgrade round-trip on a real database."""

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from registry.db import Base
from registry.migrate import MigrationRefused, downgrade, import_all_models, include_name, upgrade
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
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_one_number_one_live_person() -> None:
    """0009 refuses numbers two live persons already hold, saying how many; once they are merged it
    applies, and from then on a second live holder fails at commit."""
    url = create_database("popex_mig")
    engine = create_engine(url)
    twins = (
        "INSERT INTO person (id, person_no, status, id_type, id_no, provenance) VALUES "
        "(1, 'P00000000001', 'active', 'RID', '110105194912310021', '{}'), "
        "(2, 'P00000000002', 'active', 'RID', '110105194912310021', '{}')"
    )
    try:
        with engine.begin() as conn:
            upgrade(conn, "0008_batch_lifecycle")
            conn.execute(text(twins))
        with pytest.raises(MigrationRefused, match=r"^1 个证件号码"), engine.begin() as conn:
            upgrade(conn)
        with engine.begin() as conn:
            conn.execute(text("UPDATE person SET status = 'retired', merged_into = 1 WHERE id = 2"))
            upgrade(conn)
        with pytest.raises(IntegrityError, match="ex_person_identifier_once"), engine.begin() as conn:
            conn.execute(text("UPDATE person SET status = 'active', merged_into = NULL WHERE id = 2"))
    finally:
        engine.dispose()
        drop_database(url)


def test_a_golden_record_rewritten_without_a_change_to_its_indexed_columns_stays_on_its_page(
    connection,
) -> None:
    """0018 keeps room on person's pages: rewriting a third of the persons' phone and provenance, as a
    department's first extract does (social insurance: 45 % of the city), writes heap-only tuples (no
    index entries) for nearly all of them; with full pages (fillfactor 100) nearly none are."""
    connection.execute(
        text(
            "INSERT INTO person (id, person_no, status, name, name_pinyin, address, provenance) "
            "SELECT n, 'P' || lpad(n::text, 11, '0'), 'active', '王小明', 'wangxiaoming', repeat('路', 40), "
            "jsonb_build_object('name', n, 'address', n, 'phone', n) FROM generate_series(900000001, 900003000) AS n"
        )
    )
    counts = text(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = 'person'::regclass"
    )
    updated_before, heap_only_before = connection.execute(
        counts
    ).one()  # the test's transaction's earlier work
    connection.execute(
        text(
            "UPDATE person SET phone = '13800000000', provenance = provenance || '{\"x\": 1}' WHERE id > 900000000 AND id % 3 = 0"
        )
    )
    updated, heap_only = connection.execute(counts).one()
    assert updated - updated_before == 1000
    assert heap_only - heap_only_before >= 950
