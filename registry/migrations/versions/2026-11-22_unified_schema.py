"""Unified population schema: areas, feeds, batches, source records, persons, links, versions, review, audit.

Revision ID: 0001_unified_schema
Revises:
Create Date: 2026-11-22 03:21:20.405660
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The audit log is append-only and hash-chained; the chain is kept by the database itself so that
# every writer (CLI, API, Airflow task) gets it right. An advisory lock serialises appends.
AUDIT_SQL = """
CREATE FUNCTION audit_log_hash(prev text, id bigint, at timestamp, actor text, action text,
                               object_type text, object_id text, detail jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', prev, id, at, actor, action, object_type, object_id,
                                              detail::text), 'UTF8')), 'hex')
$$;
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit_log'));
    SELECT hash INTO NEW.prev_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(NEW.prev_hash, repeat('0', 64));
    NEW.hash := audit_log_hash(NEW.prev_hash, NEW.id, NEW.at, NEW.actor, NEW.action, NEW.object_type,
                               NEW.object_id, NEW.detail);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""
revision: str = "0001_unified_schema"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # fuzzystrmatch: edit distance on characters (not bytes) for Chinese names and ID numbers.
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
    op.create_table(
        "area",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column("loaded_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(level = 'district' AND length(code) = 6) OR (level = 'street' AND length(code) = 9) OR (level = 'community' AND length(code) = 12)",
            name=op.f("ck_area_code_length"),
        ),
        sa.CheckConstraint("level IN ('district', 'street', 'community')", name=op.f("ck_area_level")),
        sa.ForeignKeyConstraint(["parent_code"], ["area.code"], name=op.f("fk_area_parent_code_area")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_area")),
    )
    op.create_index(op.f("ix_area_parent_code"), "area", ["parent_code"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("object_type", sa.String(length=24), nullable=True),
        sa.Column("object_id", sa.String(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_table(
        "department",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_department")),
    )
    op.create_table(
        "person",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("person_no", sa.String(length=12), nullable=False),
        sa.Column("area_key", sa.String(length=6), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("merged_into", sa.BigInteger(), nullable=True),
        sa.Column("id_type", sa.String(length=10), nullable=True),
        sa.Column("id_no", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("name_pinyin", sa.String(), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("ethnicity", sa.String(length=2), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("death_date", sa.Date(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("address", sa.String(), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("population_type", sa.String(length=10), nullable=True),
        sa.Column("marital_status", sa.String(length=10), nullable=True),
        sa.Column("provenance", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'dead', 'left', 'retired')", name=op.f("ck_person_status")),
        sa.ForeignKeyConstraint(["merged_into"], ["person.id"], name=op.f("fk_person_merged_into_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("person_no", name=op.f("uq_person_person_no")),
    )
    op.create_index("ix_person_birth_name", "person", ["birth_date", "name_pinyin"], unique=False)
    op.create_index("ix_person_community", "person", ["community_code", "status"], unique=False)
    op.create_index(
        "ix_person_pinyin_id_head",
        "person",
        ["name_pinyin", sa.literal_column("substr(id_no, 1, 9)")],
        unique=False,
    )
    op.create_index(
        "ix_person_pinyin_id_tail",
        "person",
        ["name_pinyin", sa.literal_column("substr(id_no, 10)")],
        unique=False,
    )
    op.create_table(
        "feed",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("department_code", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("deadline", sa.String(length=5), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_code"], ["department.code"], name=op.f("fk_feed_department_code_department")
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_feed")),
    )
    op.create_table(
        "non_match",
        sa.Column("person_a", sa.BigInteger(), nullable=False),
        sa.Column("person_b", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.CheckConstraint("person_a < person_b", name=op.f("ck_non_match_ordered")),
        sa.ForeignKeyConstraint(["person_a"], ["person.id"], name=op.f("fk_non_match_person_a_person")),
        sa.ForeignKeyConstraint(["person_b"], ["person.id"], name=op.f("fk_non_match_person_b_person")),
        sa.PrimaryKeyConstraint("person_a", "person_b", name=op.f("pk_non_match")),
    )
    op.create_table(
        "person_identifier",
        sa.Column("id_type", sa.String(length=10), nullable=False),
        sa.Column("id_no", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_person_identifier_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id_type", "id_no", name=op.f("pk_person_identifier")),
    )
    op.create_index(op.f("ix_person_identifier_person_id"), "person_identifier", ["person_id"], unique=False)
    op.create_table(
        "batch",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("archive_path", sa.String(), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=True),
        sa.Column("file_format", sa.String(length=8), nullable=True),
        sa.Column("rows_received", sa.Integer(), nullable=False),
        sa.Column("rows_accepted", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("rows_review", sa.Integer(), nullable=False),
        sa.Column("gate_result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("step_seconds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("resolution", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('received', 'rejected', 'parsed', 'gated', 'quarantined', 'resolved', 'merged', 'published', 'failed')",
            name=op.f("ck_batch_state"),
        ),
        sa.ForeignKeyConstraint(["source"], ["feed.source"], name=op.f("fk_batch_source_feed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch")),
        sa.UniqueConstraint("sha256", name="uq_batch_sha256"),
    )
    op.create_index(op.f("ix_batch_as_of_date"), "batch", ["as_of_date"], unique=False)
    op.create_index(op.f("ix_batch_file_name"), "batch", ["file_name"], unique=False)
    op.create_index(op.f("ix_batch_source"), "batch", ["source"], unique=False)
    op.create_table(
        "person_version",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("area_key", sa.String(length=6), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("changed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("id_no", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("death_date", sa.Date(), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("population_type", sa.String(length=10), nullable=True),
        sa.Column("address", sa.String(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("ethnicity", sa.String(length=2), nullable=True),
        sa.Column("marital_status", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_person_version_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_person_version_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_version")),
    )
    op.create_index(op.f("ix_person_version_batch_id"), "person_version", ["batch_id"], unique=False)
    op.create_index("ix_person_version_person", "person_version", ["person_id", "recorded_at"], unique=False)
    op.create_index("ix_person_version_valid", "person_version", ["valid_from", "recorded_at"], unique=False)
    op.create_table(
        "source_record",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("row_no", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(), nullable=True),
        sa.Column("area_key", sa.String(length=6), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id_type", sa.String(length=10), nullable=True),
        sa.Column("id_no", sa.String(length=32), nullable=True),
        sa.Column("id_valid", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("name_pinyin", sa.String(), nullable=True),
        sa.Column("former_name", sa.String(), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("ethnicity", sa.String(length=2), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("address", sa.String(), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("population_type", sa.String(length=10), nullable=True),
        sa.Column("residence_status", sa.String(length=10), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=True),
        sa.Column("event_date", sa.Date(), nullable=True),
        sa.Column("mother_id_no", sa.String(length=32), nullable=True),
        sa.Column("father_id_no", sa.String(length=32), nullable=True),
        sa.Column("spouse_id_no", sa.String(length=32), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(
            "status IN ('accepted', 'rejected', 'review')", name=op.f("ck_source_record_status")
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_source_record_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_record")),
        sa.UniqueConstraint("batch_id", "row_no", name="uq_source_record_batch_row"),
    )
    op.create_index(
        "ix_source_record_id_no",
        "source_record",
        ["id_no"],
        unique=False,
        postgresql_where="id_no IS NOT NULL",
    )
    op.create_index("ix_source_record_source_key", "source_record", ["source", "record_key"], unique=False)
    op.create_table(
        "change_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=True),
        sa.Column("community_code", sa.String(length=12), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_change_event_batch_id_batch")),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_change_event_person_id_person")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["person_version.id"], name=op.f("fk_change_event_version_id_person_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_event")),
        sa.UniqueConstraint("version_id", "event_type", name="uq_change_event_version_type"),
    )
    op.create_index(op.f("ix_change_event_batch_id"), "change_event", ["batch_id"], unique=False)
    op.create_index(op.f("ix_change_event_person_id"), "change_event", ["person_id"], unique=False)
    op.create_index("ix_change_event_type", "change_event", ["event_type", "id"], unique=False)
    op.create_table(
        "link",
        sa.Column("source_record_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("area_key", sa.String(length=6), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("levels", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("method", sa.String(length=6), nullable=False),
        sa.Column("linked_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("linked_by", sa.String(), nullable=True),
        sa.CheckConstraint("method IN ('auto', 'manual')", name=op.f("ck_link_method")),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_link_batch_id_batch")),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_link_person_id_person")),
        sa.ForeignKeyConstraint(
            ["source_record_id"], ["source_record.id"], name=op.f("fk_link_source_record_id_source_record")
        ),
        sa.PrimaryKeyConstraint("source_record_id", name=op.f("pk_link")),
    )
    op.create_index(op.f("ix_link_batch_id"), "link", ["batch_id"], unique=False)
    op.create_index(op.f("ix_link_person_id"), "link", ["person_id"], unique=False)
    op.create_table(
        "review_item",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("source_record_id", sa.BigInteger(), nullable=False),
        sa.Column("candidate_person_id", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("levels", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'accepted', 'rejected')", name=op.f("ck_review_item_state")),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_review_item_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["candidate_person_id"], ["person.id"], name=op.f("fk_review_item_candidate_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_record.id"],
            name=op.f("fk_review_item_source_record_id_source_record"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_item")),
    )
    op.create_index(op.f("ix_review_item_batch_id"), "review_item", ["batch_id"], unique=False)
    op.create_index("ix_review_item_open", "review_item", ["state", "created_at"], unique=False)
    op.create_index(
        op.f("ix_review_item_source_record_id"), "review_item", ["source_record_id"], unique=False
    )
    op.execute("CREATE SEQUENCE person_no_seq")
    op.execute(AUDIT_SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP TRIGGER audit_log_chain ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.execute("DROP FUNCTION audit_log_chain()")
    op.execute("DROP FUNCTION audit_log_hash(text, bigint, timestamp, text, text, text, text, jsonb)")
    op.execute("DROP SEQUENCE person_no_seq")
    op.drop_index(op.f("ix_review_item_source_record_id"), table_name="review_item")
    op.drop_index("ix_review_item_open", table_name="review_item")
    op.drop_index(op.f("ix_review_item_batch_id"), table_name="review_item")
    op.drop_table("review_item")
    op.drop_index(op.f("ix_link_person_id"), table_name="link")
    op.drop_index(op.f("ix_link_batch_id"), table_name="link")
    op.drop_table("link")
    op.drop_index("ix_change_event_type", table_name="change_event")
    op.drop_index(op.f("ix_change_event_person_id"), table_name="change_event")
    op.drop_index(op.f("ix_change_event_batch_id"), table_name="change_event")
    op.drop_table("change_event")
    op.drop_index("ix_source_record_source_key", table_name="source_record")
    op.drop_index("ix_source_record_id_no", table_name="source_record", postgresql_where="id_no IS NOT NULL")
    op.drop_table("source_record")
    op.drop_index("ix_person_version_valid", table_name="person_version")
    op.drop_index("ix_person_version_person", table_name="person_version")
    op.drop_index(op.f("ix_person_version_batch_id"), table_name="person_version")
    op.drop_table("person_version")
    op.drop_index(op.f("ix_batch_source"), table_name="batch")
    op.drop_index(op.f("ix_batch_file_name"), table_name="batch")
    op.drop_index(op.f("ix_batch_as_of_date"), table_name="batch")
    op.drop_table("batch")
    op.drop_index(op.f("ix_person_identifier_person_id"), table_name="person_identifier")
    op.drop_table("person_identifier")
    op.drop_table("non_match")
    op.drop_table("feed")
    op.drop_index("ix_person_pinyin_id_tail", table_name="person")
    op.drop_index("ix_person_pinyin_id_head", table_name="person")
    op.drop_index("ix_person_community", table_name="person")
    op.drop_index("ix_person_birth_name", table_name="person")
    op.drop_table("person")
    op.drop_table("department")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_area_parent_code"), table_name="area")
    op.drop_table("area")
    op.execute("DROP EXTENSION IF EXISTS fuzzystrmatch")
