"""A feed file through every step on real PostgreSQL: accounting, persons, links, receipts, idempotency."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from base import bulk
from exchange import flows, service
from registry.models import AuditLog, Batch, ChangeEvent, Delivery, Link, Person, PersonVersion, SourceRecord
from schemas.canonical import BatchState, BatchStep
from tests.conftest import migrated_database
from tests.factories import make_areas
from tests.feedfiles import hj, write_feed

ZHANG = "330102198001010018"  # male, 1980-01-01
LI = "330102198505050021"  # female, 1985-05-05
WANG = "330102199003070035"  # male, 1990-03-07


def snapshot_rows() -> list[dict[str, str]]:
    return [
        hj("H1", ZHANG, "张伟", "男", "1980-01-01"),
        hj("H2", LI, "李娜", "2", "1985/5/5"),
        hj("H3", WANG.lower(), "王小明", "1", "19900307"),
        hj("H3", WANG.lower(), "王小明", "1", "19900307"),  # the same line twice
        hj("H4", "", "", "男", "1990-01-01"),  # identifies nobody
        hj("H5", "330102199003070036", "赵六", "男", "2027-01-01"),  # bad check digit, future birth date
    ]


def test_snapshot_is_accounted_linked_and_merged(session, factory, areas, tmp_path) -> None:
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows(), encoding="gb18030")
    result = flows.ingest_file(factory, path)
    assert result.state == "completed", session.get(Batch, result.batch_id).gate_result
    assert not result.duplicate
    batch = session.get(Batch, result.batch_id)
    assert batch.encoding == "gb18030"
    assert (batch.rows_received, batch.rows_accepted, batch.rows_rejected, batch.rows_review) == (6, 3, 3, 0)
    assert batch.rows_received == batch.rows_accepted + batch.rows_rejected + batch.rows_review
    persons = session.scalars(select(Person).order_by(Person.id)).all()
    assert [(p.id_no, p.name, p.sex, p.birth_date) for p in persons] == [
        (ZHANG, "张伟", "1", date(1980, 1, 1)),
        (LI, "李娜", "2", date(1985, 5, 5)),
        (WANG, "王小明", "1", date(1990, 3, 7)),
    ]
    assert all(p.person_no.startswith("P") and len(p.person_no) == 12 for p in persons)
    assert {p.population_type for p in persons} == {"registered"}
    assert {p.community_code for p in persons} == {"330102001001"}
    # provenance: every golden attribute names the source record it came from
    zhang = persons[0]
    record = session.scalars(select(SourceRecord).where(SourceRecord.id == zhang.provenance["name"])).one()
    assert (record.batch_id, record.row_no, record.source) == (batch.id, 1, "gaj_hj")
    # one version per new person, and a person_created event each
    assert session.scalar(select(func.count()).select_from(PersonVersion)) == 3
    events = session.scalars(select(ChangeEvent.event_type)).all()
    assert sorted(events) == ["person_created"] * 3

    receipt = service.build_receipt(session=session, batch_id=batch.id)
    by_row = {r["row"]: r for r in receipt.rows}
    assert by_row[1]["person_id"] == zhang.person_no and by_row[1]["status"] == "accepted"
    assert by_row[4]["status"] == "rejected" and "与第3行完全相同" in by_row[4]["reasons"]
    assert by_row[5]["status"] == "rejected" and "无法识别是谁" in by_row[5]["reasons"]
    assert by_row[6]["status"] == "rejected" and "出生日期：日期晚于当前日期" in by_row[6]["reasons"]
    assert "身份证号码校验位错误" in by_row[6]["reasons"]
    statuses = [r["status"] for r in receipt.rows]
    assert (statuses.count("accepted"), statuses.count("rejected"), statuses.count("review")) == (
        receipt.accepted,
        receipt.rejected,
        receipt.review,
    )
    assert receipt.csv_text().splitlines()[0] == "row,record_key,status,person_id,reasons"


def test_same_file_twice_is_not_applied_twice(session, factory, areas, tmp_path) -> None:
    path = write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows())
    first = flows.ingest_file(factory, path)
    assert first.steps == list(BatchStep) and not first.duplicate
    # The operator runs the same file again: nothing left to do, and no second delivery.
    copy = tmp_path / "again"
    copy.mkdir()
    again = flows.ingest_file(factory, (copy / path.name).write_bytes(path.read_bytes()) and copy / path.name)
    assert again.duplicate and again.batch_id == first.batch_id
    assert (again.state, again.steps) == ("completed", [])
    # The same bytes under another name: the department delivered them again (a duplicate delivery).
    other = tmp_path / "gaj_hj_20261102.csv"
    other.write_bytes(path.read_bytes())
    assert flows.ingest_file(factory, other).batch_id == first.batch_id
    assert session.scalar(select(func.count()).select_from(Batch)) == 1
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(d.batch_id, d.file_name, d.duplicate) for d in deliveries] == [
        (first.batch_id, path.name, False),
        (first.batch_id, other.name, True),
    ]
    assert session.scalar(select(func.count()).select_from(SourceRecord)) == 6
    assert session.scalar(select(func.count()).select_from(Person)) == 3


def test_a_quiet_feeds_header_only_files_are_each_days_delivery(session, factory, areas, tmp_path) -> None:
    """The same header-only bytes every quiet day: one batch, but each day's file is its own delivery
    (on time), not a duplicate; the same name again still is one."""
    days = [write_feed(tmp_path, "gaj_hj", date(2026, 11, n), []) for n in (1, 2, 3)]
    assert len({p.read_bytes() for p in days}) == 1  # identical bytes
    results = [flows.ingest_file(factory, p) for p in days]
    assert len({r.batch_id for r in results}) == 1 and results[0].state == "completed"
    assert [r.duplicate for r in results] == [False, False, False]  # what the CLI and push API say
    again = tmp_path / "again"
    again.mkdir()
    (again / days[2].name).write_bytes(days[2].read_bytes())
    received = service.receive_file(session=session, path=again / days[2].name, channel="landing")
    session.flush()
    assert received.duplicate
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(d.as_of_date.day, d.duplicate) for d in deliveries] == [
        (1, False),
        (2, False),
        (3, False),
        (3, True),
    ]


def test_increments_land_on_the_same_persons(session, factory, areas, tmp_path) -> None:
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    numbers = dict(session.execute(select(Person.id_no, Person.person_no)).tuples().all())
    insured = [
        # a 15-digit number: the same person as ZHANG once upgraded
        {
            "社会保障号码": "330102800101001",
            "姓名": "張偉",
            "性别": "男",
            "出生日期": "1980-01-01",
            "参保状态": "参保",
            "参保单位": "某公司",
            "联系电话": "13800138000",
            "变更日期": "2026-11-02",
        },
        # a typo in the number (invalid check digit): matched on name and birth date
        {
            "社会保障号码": "330102198505050022",
            "姓名": "李娜",
            "性别": "女",
            "出生日期": "1985-05-05",
            "参保状态": "参保",
            "参保单位": "某公司",
            "联系电话": "13900139000",
            "变更日期": "2026-11-02",
        },
        # somebody new
        {
            "社会保障号码": "11010519491231002x",
            "姓名": "孙梅",
            "性别": "女",
            "出生日期": "1949-12-31",
            "参保状态": "参保",
            "参保单位": "退休",
            "联系电话": "",
            "变更日期": "2026-11-02",
        },
    ]
    path = write_feed(tmp_path, "rsj_cb", date(2026, 11, 2), insured, encoding="utf-8-sig")
    result = flows.ingest_file(factory, path)
    assert result.state == "completed"
    links = session.execute(
        select(SourceRecord.row_no, Link.rule, Person.person_no)
        .join(Link, Link.source_record_id == SourceRecord.id)
        .join(Person, Person.id == Link.person_id)
        .where(SourceRecord.batch_id == result.batch_id)
        .order_by(SourceRecord.row_no)
    ).all()
    assert links[0] == (1, "id_exact", numbers[ZHANG])
    assert links[1][1:] == ("score", numbers[LI])
    assert links[2][1] == "new_person"
    # person numbers did not change, one new person
    assert dict(session.execute(select(Person.id_no, Person.person_no)).tuples().all()) == {
        **numbers,
        "11010519491231002X": links[2][2],
    }
    # the phone came from social insurance; the name stays the household registration's
    zhang = session.scalar(select(Person).where(Person.id_no == ZHANG))
    assert (zhang.name, zhang.phone) == ("张伟", "13800138000")
    versions = session.scalars(
        select(PersonVersion.changed).where(PersonVersion.person_id == zhang.id).order_by(PersonVersion.id)
    ).all()
    assert versions == [["created"], ["phone"]]
    score_link = session.scalar(select(Link).where(Link.rule == "score"))
    assert score_link.levels["name"][0] == "exact" and score_link.levels["birth_date"][0] == "exact"


def test_name_contradicting_the_id_goes_to_review(session, factory, areas, tmp_path) -> None:
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    rows = [
        {
            "社会保障号码": ZHANG,
            "姓名": "欧阳娜娜",
            "性别": "男",
            "出生日期": "1980-01-01",
            "参保状态": "参保",
            "变更日期": "2026-11-02",
        }
    ]
    result = flows.ingest_file(factory, write_feed(tmp_path, "rsj_cb", date(2026, 11, 2), rows))
    batch = session.get(Batch, result.batch_id)
    assert (batch.rows_accepted, batch.rows_review) == (0, 1)
    kind = session.execute(text("SELECT kind, state FROM review_item")).one()
    assert tuple(kind) == ("id_conflict", "open")
    assert session.scalar(select(Person.name).where(Person.id_no == ZHANG)) == "张伟"


def test_a_foreigner_born_the_day_a_resident_of_their_community_was_born_is_somebody_new(
    session, factory, areas, tmp_path
) -> None:
    """A new passport number is compared with everyone who holds no passport, residents included: its
    prior is the population's, not that of the few persons without an ID card (with which this pair, two
    names, two numbers, one birth date, sex and community, went to review)."""
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    # A district of 20,000 residents with ID cards (the prior of a 3-person city would call them alike).
    session.execute(
        text(
            "INSERT INTO person (person_no, status, provenance, id_type, sex, birth_date, community_code)"
            " SELECT 'T' || lpad(i::text, 11, '0'), 'active', '{}', 'RID', '2', DATE '1950-01-01' + i % 20000,"
            " '330102001002' FROM generate_series(1, 20000) AS i"
        )
    )
    session.execute(
        text(
            "INSERT INTO person_identifier (id_type, id_no, person_id)"
            " SELECT 'RID', person_no, id FROM person WHERE person_no LIKE 'T%'"
        )
    )
    session.commit()
    foreigner = {
        "记录编号": "L1", "证件类型": "护照", "证件号码": "E91259549", "姓名": "詹姆斯·贝尔纳", "性别": "男",
        "出生日期": "1980-01-01", "现住地址": "某路1号", "现住地社区代码": "330102001001", "登记日期": "2026-10-01",
    }  # fmt: skip
    result = flows.ingest_file(factory, write_feed(tmp_path, "gaj_ld", date(2026, 11, 2), [foreigner]))
    batch = session.get(Batch, result.batch_id)
    assert (batch.rows_accepted, batch.rows_review) == (1, 0)
    assert session.scalar(select(func.count()).select_from(text("review_item"))) == 0
    link = session.execute(
        select(Link.rule, Person.id_type, Person.name)
        .join(Person, Person.id == Link.person_id)
        .where(Link.batch_id == batch.id)
    ).one()
    assert tuple(link) == ("new_person", "PASSPORT", "詹姆斯·贝尔纳")


def test_a_new_number_a_digit_off_a_residents_goes_to_a_clerk_not_to_a_new_person(
    session, factory, areas, tmp_path
) -> None:
    """Social insurance's number for 张伟 differs from the household registration's in a sequence digit,
    and both check digits are valid: the same name and birth date make it a typo on one side, so a clerk
    decides (a new person would split him in two)."""
    flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    typo = "330102198001010034"  # ZHANG's sequence 001 -> 003, its check digit recomputed
    row = {
        "社会保障号码": typo, "姓名": "张伟", "性别": "男", "出生日期": "1980-01-01", "参保状态": "参保",
        "变更日期": "2026-11-02",
    }  # fmt: skip
    result = flows.ingest_file(factory, write_feed(tmp_path, "rsj_cb", date(2026, 11, 2), [row]))
    batch = session.get(Batch, result.batch_id)
    assert (batch.rows_accepted, batch.rows_review) == (0, 1)
    kind, candidate, levels = session.execute(
        text("SELECT kind, candidate_person_id, levels FROM review_item WHERE batch_id = :b"), {"b": batch.id}
    ).one()
    assert kind == "probable_match" and levels["id_no"][0] == "one_or_two_edits"
    assert session.get(Person, candidate).id_no == ZHANG
    assert session.scalar(select(func.count()).select_from(Person)) == 3  # nobody new

    # A twin's number is a digit or two from their sibling's too, but the name is another: somebody new.
    twin = {**row, "社会保障号码": "330102198001010050", "姓名": "张丽"}  # ZHANG's sequence 001 -> 005
    result = flows.ingest_file(factory, write_feed(tmp_path, "rsj_cb", date(2026, 11, 3), [twin]))
    batch = session.get(Batch, result.batch_id)
    assert (batch.rows_accepted, batch.rows_review) == (1, 0)
    assert session.scalar(select(func.count()).select_from(Person)) == 4
    # Nor is a name that only sounds the same (张炜 for 张伟) a typo of the number: somebody new.
    alike = {**row, "社会保障号码": "330102198001010077", "姓名": "张炜"}  # 001 -> 007
    result = flows.ingest_file(factory, write_feed(tmp_path, "rsj_cb", date(2026, 11, 4), [alike]))
    batch = session.get(Batch, result.batch_id)
    assert (batch.rows_accepted, batch.rows_review) == (1, 0)


def test_unknown_source_is_refused_and_archived(session, factory, tmp_path, archive_dir) -> None:
    path = tmp_path / "xyz_ab_20261101.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(service.FeedFileError) as info:
        flows.ingest_file(factory, path)
    assert info.value.code == "UNKNOWN_SOURCE"
    assert list((archive_dir / "_unidentified").rglob("xyz_ab_20261101.csv"))
    refused = session.scalars(select(AuditLog).where(AuditLog.action == "file.refused")).one()
    assert refused.object_id == "xyz_ab_20261101.csv" and refused.detail["code"] == "UNKNOWN_SOURCE"


def test_a_days_run_takes_late_files_moves_what_it_received_and_adds_nothing_when_retried(
    session, factory, areas, tmp_path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    zhang = [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01")]
    write_feed(landing, "gaj_hj", date(2026, 11, 2), zhang)
    late = write_feed(
        landing,
        "gaj_hj",
        date(2026, 11, 1),
        [*zhang, hj("H2", "330102198505050021", "李娜", "女", "1985-05-05")],
    )
    tomorrow = write_feed(
        landing,
        "gaj_hj",
        date(2026, 11, 3),
        [hj("H3", "330102199001010011", "王芳", "女", "1990-01-01")],
        seq=2,
    )

    day = flows.receive_landing(factory, landing, date(2026, 11, 2))
    names = session.scalars(select(Batch.file_name).where(Batch.id.in_(day))).all()
    assert sorted(names) == ["gaj_hj_20261101.csv", "gaj_hj_20261102.csv"]  # the late one too, not tomorrow's
    assert [session.get_one(Batch, b).as_of_date for b in day] == [date(2026, 11, 1), date(2026, 11, 2)]
    assert sorted(p.name for p in landing.iterdir() if p.is_file()) == [tomorrow.name]
    assert (landing / flows.RECEIVED_DIR / "20261101" / late.name).exists()

    # The move was interrupted (the file is back): the retry finds it delivered, adds no delivery.
    (landing / flows.RECEIVED_DIR / "20261101" / late.name).rename(late)
    deliveries = session.scalar(select(func.count()).select_from(Delivery))
    assert flows.receive_landing(factory, landing, date(2026, 11, 2)) == day
    assert session.scalar(select(func.count()).select_from(Delivery)) == deliveries
    assert not late.exists() and (landing / flows.RECEIVED_DIR / "20261101" / late.name).exists()

    # A corrected file under the same name, dropped later: a batch of its own, kept beside the first.
    write_feed(
        landing,
        "gaj_hj",
        date(2026, 11, 1),
        [*zhang, hj("H4", "330102197001010014", "赵强", "男", "1970-01-01")],
    )
    again = flows.receive_landing(factory, landing, date(2026, 11, 3))
    assert len(set(again) - set(day)) == 2  # the correction and tomorrow's file
    assert (landing / flows.RECEIVED_DIR / "20261101" / "gaj_hj_20261101.2.csv").exists()
    assert (landing / flows.RECEIVED_DIR / "20261101" / late.name).exists()


def test_an_empty_daily_file_gets_its_own_receipt_though_its_bytes_are_the_day_befores(
    session, factory, areas, tmp_path
) -> None:
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing.mkdir()
    write_feed(landing, "wjw_sw", date(2026, 11, 1), [])  # no deaths that day: the header alone
    first = flows.receive_landing(factory, landing, date(2026, 11, 1))
    write_feed(landing, "wjw_sw", date(2026, 11, 2), [])  # nor the next: the same bytes
    second = flows.receive_landing(factory, landing, date(2026, 11, 2))
    assert first == second and len(second) == 1  # one batch (one distinct content) …
    for batch_id in second:
        assert flows.process_batch(factory, batch_id) == "completed"
    written = sorted(outbox.rglob("*.receipt.csv"))
    assert [p.name for p in written] == [  # … a receipt for each day's file
        "wjw_sw_20261101.csv.receipt.csv",
        "wjw_sw_20261102.csv.receipt.csv",
    ]
    assert all(
        p.read_text(encoding="utf-8-sig").splitlines() == ["row,record_key,status,person_id,reasons"]
        for p in written
    )


def test_a_quiet_days_file_gets_its_receipt_when_the_day_before_is_already_done(
    session, factory, areas, tmp_path
) -> None:
    """As a city runs: each day received and processed before the next day's file comes. The second
    day's header-only file joins the first day's completed batch, on which no step runs again; its
    receipt is written when it is received (through the landing folder, and through popex ingest)."""
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing.mkdir()
    for day in (1, 2):
        write_feed(landing, "wjw_sw", date(2026, 11, day), [])  # no deaths: the same bytes each day
        for batch_id in flows.receive_landing(factory, landing, date(2026, 11, day)):
            assert flows.process_batch(factory, batch_id) == "completed"
    for day in (3, 4):
        ingested = flows.ingest_file(factory, write_feed(tmp_path, "wjw_sw", date(2026, 11, day), []))
        assert ingested.state == "completed" and not ingested.duplicate
    written = sorted(p.name for p in outbox.rglob("*.receipt.csv"))
    assert written == [f"wjw_sw_2026110{day}.csv.receipt.csv" for day in (1, 2, 3, 4)]
    assert len(session.scalars(select(Batch.id).where(Batch.source == "wjw_sw")).all()) == 1
    elsewhere = tmp_path / "run-outbox"  # a run's own outbox (exchange_daily's 'outbox' param)
    write_feed(landing, "wjw_sw", date(2026, 11, 5), [])
    flows.receive_landing(factory, landing, date(2026, 11, 5), outbox=elsewhere)
    assert "wjw_sw_20261105.csv.receipt.csv" in {p.name for p in elsewhere.rglob("*.receipt.csv")}


def test_a_file_the_intake_refuses_is_set_aside_and_the_others_go_on(
    session, factory, areas, tmp_path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "abc_xx_20261101.csv").write_text(
        "甲,乙\n1,2\n", encoding="utf-8"
    )  # a source nobody publishes
    good = write_feed(
        landing, "gaj_hj", date(2026, 11, 1), [hj("H1", "330102198001010018", "张伟", "男", "1980-01-01")]
    )
    (landing / "户籍数据.csv").write_text("x\n", encoding="utf-8")  # not named to the standard: left alone

    day = flows.receive_landing(factory, landing, date(2026, 11, 1))
    assert [session.get_one(Batch, b).file_name for b in day] == [good.name]
    assert (landing / flows.REFUSED_DIR / "20261101" / "abc_xx_20261101.csv").exists()
    refusal = session.scalars(
        select(AuditLog).where(AuditLog.action == "file.refused", AuditLog.object_id == "abc_xx_20261101.csv")
    ).one()
    assert refusal.detail["code"] == "UNKNOWN_SOURCE" and refusal.detail["archive"]
    assert sorted(p.name for p in landing.iterdir() if p.is_file()) == ["户籍数据.csv"]
    assert flows.process_batch(factory, day[0]) == "completed"


def test_an_initial_load_builds_the_indexes_after_its_rows(
    session, factory, areas, tmp_path, monkeypatch, caplog
) -> None:
    """New persons, their versions and events inserted without their tables' secondary indexes (more
    than the tables hold: an initial load, base.bulk) come out the same, and every index is back as it
    was, the partitioned tables' on every partition."""
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    tables = ("person", "person_identifier", "link", "person_version", "change_event")
    session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    indexes = text(
        "SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN :t"
        " OR i.tablename IN (SELECT inhrelid::regclass::text FROM pg_inherits"
        "                    WHERE inhparent IN ('person_version'::regclass, 'change_event'::regclass))"
        " ORDER BY 1, 2"
    ).bindparams(bindparam("t", expanding=True))
    before = session.execute(indexes, {"t": list(tables)}).all()
    caplog.set_level(logging.INFO, logger="base.bulk")
    caplog.set_level(logging.INFO, logger="exchange.flows")
    monkeypatch.setattr(flows, "ANALYZE_MIN_ROWS", 1)  # statistics after each step, as for a large batch
    result = flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()))
    assert result.state == "completed"
    batch = session.get(Batch, result.batch_id)
    assert batch.resolution["indexes_built_after"] == ["person", "person_identifier", "link"]
    # The partitioned tables: this year's partition, which the batch wrote, and no other year's (or the
    # whole table, when its statistics are missing or stale: the test database's history decides).
    analyzed = {r.args[1]: r.args[2].split(", ") for r in caplog.records if "analyzed" in r.getMessage()}
    year = session.scalar(text("SELECT extract(year FROM now())::int"))
    assert analyzed["person"] == ["person"]
    for name in ("source_record", "person_version", "change_event"):
        assert analyzed[name] == [name] or f"{name}_y{year}" in analyzed[name], analyzed[name]
        assert set(analyzed[name]) <= {f"{name}_y{year}", f"{name}_default", name}, analyzed[name]
    built = [r.args[0] for r in caplog.records if r.name == "base.bulk" and "built after" in r.getMessage()]
    assert built == ["person", "person_identifier", "link", "person_version", "change_event"]
    assert session.execute(indexes, {"t": list(tables)}).all() == before
    assert session.scalar(text("SELECT count(*) FROM person_version")) == 3
    assert sorted(session.scalars(text("SELECT event_type FROM change_event"))) == ["person_created"] * 3
    persons = session.scalars(select(Person).order_by(Person.id)).all()
    assert [(p.id_no, p.name, p.birth_date) for p in persons] == [
        (ZHANG, "张伟", date(1980, 1, 1)),
        (LI, "李娜", date(1985, 5, 5)),
        (WANG, "王小明", date(1990, 3, 7)),
    ]
    linked = session.execute(text("SELECT count(*), count(DISTINCT person_id) FROM link")).one()
    assert tuple(linked) == (3, 3)
    assert session.scalar(text("SELECT count(*) FROM person_identifier")) == 3


@contextmanager
def own_database(name: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database of the test's own holding the areas, and a factory on an engine of its own: the
    threads of `ingest_files` and `IdentitySeries` need connections of their own, which the `factory`
    fixture (one connection, the test's transaction) cannot give."""
    with migrated_database(name) as url:
        engine = create_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        with factory.begin() as session:
            make_areas(session)
        try:
            yield factory
        finally:
            engine.dispose()


def three_days(folder: Path) -> list[Path]:
    """The register's files of three days: the snapshot, then one new person a day."""
    return [
        write_feed(folder, "gaj_hj", date(2026, 11, 1), snapshot_rows()),
        write_feed(
            folder, "gaj_hj", date(2026, 11, 2), [hj("H7", "330102200001010018", "钱七", "男", "2000-01-01")]
        ),
        write_feed(
            folder, "gaj_hj", date(2026, 11, 3), [hj("H8", "330102200002020023", "孙八", "女", "2000-02-02")]
        ),
    ]


def test_several_files_go_as_the_daily_run_takes_them(archive_dir, tmp_path) -> None:
    """`exchange.flows.ingest_files` (what `popex ingest --dir` calls), on a database of its own so that
    its read-ahead thread has connections of its own: every outcome in the files' order, a refused file
    in its place and the others completed, a rejected one stopped where a person must act; the first
    statistics as counted afresh; a rerun finishes nothing twice."""

    from decision.service import aggregate_cells, recount
    from exchange.exceptions import FeedFileError

    landing = tmp_path / "landing"
    landing.mkdir()
    files = [
        write_feed(landing, "gaj_hj", date(2026, 11, 1), snapshot_rows()),
        landing / "abc_xx_20261101.csv",  # a source nobody publishes
        write_feed(landing, "gaj_ld", date(2026, 11, 1), []),
        landing / "jyj_xj_20261101.csv",  # not the feed's columns: rejected whole
        write_feed(landing, "rsj_cb", date(2026, 11, 1), []),
        write_feed(  # the next day: a move, a death, a birth (counted while nothing else runs)
            landing,
            "gaj_hj",
            date(2026, 11, 2),
            [
                hj("H1", ZHANG, "张伟", "男", "1980-01-01", "迁入", "2026-11-02", "330102001002"),
                hj("H2", LI, "李娜", "女", "1985-05-05", "死亡注销", "2026-11-02"),
                hj("H6", "330102202611020012", "张小", "男", "2026-11-02", "出生登记", "2026-11-02"),
            ],
        ),
    ]
    files[1].write_text("甲,乙\n1,2\n", encoding="utf-8")
    files[3].write_text("甲,乙\n1,2\n", encoding="utf-8")
    with own_database("popex_ingest_files") as factory:
        outcomes = flows.ingest_files(factory, files)
        assert isinstance(outcomes[1], FeedFileError) and outcomes[1].code == "UNKNOWN_SOURCE"
        done = [o for o in outcomes if isinstance(o, flows.Ingested)]
        assert [(o.file_name, o.state, o.duplicate) for o in done] == [
            (files[0].name, "completed", False),
            (files[2].name, "completed", False),
            (files[3].name, "rejected", False),
            (files[4].name, "completed", False),
            (files[5].name, "completed", False),
        ]
        assert done[0].steps == list(BatchStep)
        with factory() as session:
            applied = session.scalars(text("SELECT batch_id FROM decision.applied_batch")).all()
            assert sorted(applied) == [o.batch_id for o in done if o.state == "completed"]
            # Counted while the next files were resolved, in whatever order: the same as counted afresh.
            for day in (date(2026, 11, 1), date(2026, 11, 2)):
                assert aggregate_cells(session=session, as_of=day) == recount(session=session, as_of=day)
            persons = session.scalar(select(func.count()).select_from(Person))
        assert persons == 4

        again = flows.ingest_files(factory, files)
        assert [(o.state, o.duplicate, o.steps) for o in again if isinstance(o, flows.Ingested)] == [
            (o.state, True, []) for o in done
        ]
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Person)) == persons
            assert session.scalar(select(func.count()).select_from(Delivery)) == 5


def test_several_files_are_read_and_counted_while_another_is_in_the_identity_steps(
    archive_dir, tmp_path
) -> None:
    """The second file is parsed while the first is merged, the first published while the second is
    resolved, and the first counted while the second is merged: each wait below ends only if the other
    thread's step begins meanwhile (with one file after the other, all three time out)."""
    import threading
    from collections import defaultdict

    files = [
        write_feed(tmp_path, "gaj_hj", date(2026, 11, 1), snapshot_rows()),
        write_feed(
            tmp_path,
            "gaj_hj",
            date(2026, 11, 2),
            [hj("H7", "330102200001010017", "钱七", "男", "2000-01-01")],
        ),
    ]
    began: dict[tuple[str, BatchStep | BatchState | None], threading.Event] = defaultdict(threading.Event)
    waited: dict[str, bool] = {}

    def stepping(name: str, step: BatchStep | BatchState | None) -> None:
        began[(name, step)].set()
        if (name, step) == (files[0].name, BatchStep.MERGE):
            waited["second parsed while the first merged"] = began[(files[1].name, BatchStep.PARSE)].wait(20)
        if (name, step) == (files[0].name, BatchStep.PUBLISH):
            waited["first published while the second resolved"] = began[
                (files[1].name, BatchStep.RESOLVE)
            ].wait(20)
        if (name, step) == (files[0].name, BatchStep.STATISTICS):
            waited["first counted while the second merged"] = began[(files[1].name, BatchStep.MERGE)].wait(20)

    with own_database("popex_ingest_ahead") as factory:
        outcomes = flows.ingest_files(factory, files, stepping=stepping)
    assert [o.state for o in outcomes if isinstance(o, flows.Ingested)] == ["completed", "completed"]
    assert waited == {
        "second parsed while the first merged": True,
        "first published while the second resolved": True,
        "first counted while the second merged": True,
    }


def test_a_batch_or_clerk_waiting_for_the_identity_lock_goes_between_two_files(archive_dir, tmp_path) -> None:
    """`ingest_files` keeps the identity lock from file to file (the next file is resolved while the one
    before is published), but lets it go between two files when another session waits for it: a clerk
    who asks while the first file is merged gets it once that file is published, before the second
    file is resolved, not after the last."""
    import threading

    files = three_days(tmp_path)
    order: list[tuple[str, object]] = []
    seen: dict[str, int] = {}

    with own_database("popex_ingest_yield") as factory:

        def clerk() -> None:
            with flows.identity_lock(factory):
                order.append(("clerk", "holds the lock"))
                with factory() as session:
                    seen["events"] = session.scalar(text("SELECT count(*) FROM change_event"))

        def stepping(name: str, step: BatchStep | BatchState | None) -> None:
            order.append((name, step))
            if (name, step) == (files[0].name, BatchStep.MERGE):
                threading.Thread(target=clerk, daemon=True).start()
                for _ in range(200):  # until the clerk waits for the lock this run holds
                    if flows._identity_wanted(factory):
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError("the clerk never waited for the identity lock")

        outcomes = flows.ingest_files(factory, files, stepping=stepping)
    assert [o.state for o in outcomes if isinstance(o, flows.Ingested)] == ["completed"] * 3
    # The first file's line: each step as it began, and published (已发布) while it waited to be counted.
    assert [step for name, step in order if name == files[0].name] == [
        BatchStep.PARSE,
        BatchStep.GATE,
        BatchStep.RESOLVE,
        BatchStep.MERGE,
        BatchStep.PUBLISH,
        BatchState.PUBLISHED,
        BatchStep.STATISTICS,
        BatchStep.RECEIPT,
        None,
    ]
    got = order.index(("clerk", "holds the lock"))
    assert (
        order.index((files[0].name, BatchStep.PUBLISH))
        < got
        < order.index((files[1].name, BatchStep.RESOLVE))
    )
    assert seen["events"] == 3  # the first file's three new persons, published before the clerk went


def test_the_daily_runs_identity_task_stops_at_a_failed_batch_and_its_retry_finishes_the_rest(
    archive_dir, tmp_path, monkeypatch
) -> None:
    """`exchange.flows.run_identities` (the daily DAG's identity task): the batches in their order, the
    first published while the second is resolved; a batch whose resolve fails stops it, with that batch
    named, the one before published and the one after untouched; the retry finishes the two others and
    publishes nothing twice."""

    files = three_days(tmp_path)
    with own_database("popex_run_identities") as factory:
        ids = []
        for path in files:
            batch_id, _ = flows._receive(factory, path, channel="cli", source=None, as_of=None)
            assert flows.run_to_end(factory, batch_id, until=BatchStep.RESOLVE).state == "gated"
            ids.append(batch_id)
        resolve = flows.STEPS[BatchStep.RESOLVE]

        def failing(*, session, batch_id: int, **kwargs: object) -> object:
            if batch_id == ids[1]:
                raise RuntimeError("a resolve that fails")
            return resolve(session=session, batch_id=batch_id, **kwargs)

        monkeypatch.setitem(flows.STEPS, BatchStep.RESOLVE, failing)
        assert flows.run_identities(factory, ids) == [ids[1]]

        def states() -> list[tuple[str, str | None]]:
            with factory() as session:
                found = session.execute(
                    select(Batch.id, Batch.state, Batch.failed_step).where(Batch.id.in_(ids))
                )
                by_id = {b: (state, step) for b, state, step in found}
            return [by_id[b] for b in ids]

        assert states() == [("published", None), ("failed", "resolve"), ("gated", None)]
        monkeypatch.setitem(flows.STEPS, BatchStep.RESOLVE, resolve)
        assert flows.run_identities(factory, ids) == []
        assert states() == [("published", None)] * 3
        with factory() as session:
            events = session.execute(
                text("SELECT batch_id, count(*) FROM change_event GROUP BY batch_id ORDER BY 1")
            )
            assert [tuple(e) for e in events] == [(ids[0], 3), (ids[1], 1), (ids[2], 1)]


def test_the_identity_task_on_one_connection_publishes_each_batch_before_the_next(
    session, factory, areas, tmp_path
) -> None:
    """A factory bound to one connection (here the test's transaction) cannot lend it to a publisher
    thread: `run_identities` then publishes each batch before resolving the next, with the same result."""
    ids = []
    for day, rows in (
        (1, snapshot_rows()),
        (2, [hj("H7", "330102200001010018", "钱七", "男", "2000-01-01")]),
    ):
        path = write_feed(tmp_path, "gaj_hj", date(2026, 11, day), rows)
        batch_id, _ = flows._receive(factory, path, channel="cli", source=None, as_of=None)
        flows.run_to_end(factory, batch_id, until=BatchStep.RESOLVE)
        ids.append(batch_id)
    assert flows.run_identities(factory, ids) == []
    found = session.execute(
        select(Batch.state, func.count()).where(Batch.id.in_(ids)).group_by(Batch.state)
    ).all()
    assert [tuple(f) for f in found] == [("published", 2)]
    assert session.scalar(select(func.count()).select_from(ChangeEvent)) == 4
