"""Tests for registry/records.py: a received row to a staged source record (fields, status, reasons)."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.records import COPY_COLUMNS, STAGED_FIELDS, RecordBuilder, describe
from schemas.feed_spec import get_feed_spec

TODAY = date(2026, 11, 2)
COMMUNITY = "330102001001"
ZHANG = "330102198001010018"  # male, 1980-01-01


def hj_row(**cells: str) -> dict[str, str | None]:
    """A complete, clean gaj_hj row; keyword arguments replace cells."""
    row: dict[str, str | None] = {
        "记录编号": "H1",
        "公民身份号码": ZHANG,
        "姓名": "张伟",
        "曾用名": "",
        "性别": "男",
        "民族": "汉族",
        "出生日期": "1980-01-01",
        "户号": "77",
        "与户主关系": "户主",
        "户籍地址": "清波街1号",
        "户籍地区划代码": COMMUNITY,
        "变动类型": "在册",
        "变动日期": "2026-11-01",
    }
    row.update(cells)
    return row


def ld_row(**cells: str) -> dict[str, str | None]:
    """A gaj_ld row (document type and number in two columns)."""
    row: dict[str, str | None] = {
        "记录编号": "L1",
        "证件类型": "护照",
        "证件号码": "e1234567",
        "姓名": "Anna • Kim",
        "性别": "F",
        "出生日期": "1990-01-01",
        "现住地址": "清波街2号",
        "现住地社区代码": COMMUNITY,
        "登记日期": "2026-10-01",
    }
    row.update(cells)
    return row


@pytest.fixture(scope="module")
def hj() -> RecordBuilder:
    return RecordBuilder(get_feed_spec("gaj_hj"), known_areas={COMMUNITY}, today=TODAY)


@pytest.fixture(scope="module")
def ld() -> RecordBuilder:
    return RecordBuilder(get_feed_spec("gaj_ld"), known_areas={COMMUNITY}, today=TODAY)


def test_columns_map_to_canonical_fields_normalised(hj: RecordBuilder) -> None:
    record = hj.build(7, hj_row(姓名="安娜•金", 出生日期="1980/1/1", 民族="汉"))
    assert (record.row_no, record.status, record.reasons, record.id_valid) == (7, "accepted", [], True)
    assert record.fields == {
        "record_key": "H1",
        "id_type": "RID",
        "id_no": ZHANG,
        "name": "安娜·金",  # one standard middle dot, kept in the stored name
        "sex": "1",
        "ethnicity": "01",
        "birth_date": date(1980, 1, 1),
        "event": "snapshot",
        "event_date": date(2026, 11, 1),
        "population_type": "registered",
        "residence_status": "present",
        "community_code": COMMUNITY,  # no community column: the registered address is where one lives
    }
    # fields without a column of their own in source_record
    assert record.extra == {
        "household_no": "77",
        "household_relation": "户主",
        "registered_address": "清波街1号",
        "registered_area_code": COMMUNITY,
    }
    assert record.raw["姓名"] == "安娜•金" and "曾用名" not in record.raw  # raw: the filled cells as sent


def test_copy_row_keeps_the_dot_in_the_name_and_spells_pinyin_without_it(hj: RecordBuilder) -> None:
    record = hj.build(1, hj_row(姓名="安娜・金"))
    cells = tuple(hj_row(姓名="安娜・金").values())
    (copied,) = hj.build_chunk([(1, cells, [], None)]).copy_rows(5, "gaj_hj")
    row = dict(zip(COPY_COLUMNS, copied, strict=True))
    assert (row["batch_id"], row["source"], row["area_key"]) == (5, "gaj_hj", "330102")
    assert (row["name"], row["name_pinyin"]) == ("安娜·金", "annajin")
    assert [row[f] for f in STAGED_FIELDS] == [record.fields.get(f) for f in STAGED_FIELDS]


def test_document_type_and_number_in_two_columns(ld: RecordBuilder) -> None:
    record = ld.build(1, ld_row())
    assert record.status == "accepted" and record.reasons == [] and record.id_valid
    f = record.fields
    assert (f["id_type"], f["id_no"], f["name"], f["sex"]) == ("PASSPORT", "E1234567", "ANNA·KIM", "2")
    assert (f["event"], f["population_type"], f["residence_status"]) == ("arrive", "foreign", "present")
    assert f["event_date"] == date(2026, 10, 1) and record.extra == {"reg_date": date(2026, 10, 1)}
    left = ld.build(2, ld_row(证件类型="居民身份证", 证件号码=ZHANG, 注销日期="2026-10-20"))
    assert (left.fields["id_type"], left.fields["population_type"]) == ("RID", "floating")
    assert (left.fields["event"], left.fields["residence_status"], left.fields["event_date"]) == (
        "leave",
        "left",
        date(2026, 10, 20),
    )


def test_an_id_problem_is_a_reason_on_its_cell_and_never_rejects(hj: RecordBuilder) -> None:
    record = hj.build(1, hj_row(公民身份号码="330102198001010019"))
    assert record.status == "accepted" and not record.id_valid
    assert record.reasons == ["ID_CHECKSUM:公民身份号码"]
    assert describe(record.reasons[0]) == "公民身份号码：身份证号码校验位错误"


def test_the_id_number_decides_birth_date_and_sex_and_says_when_the_row_disagrees(hj: RecordBuilder) -> None:
    record = hj.build(1, hj_row(出生日期="1980-01-02", 性别="女"), notes=["CELL_FORMULA:户号"])
    assert record.status == "accepted"
    assert record.reasons == [
        "CELL_FORMULA:户号",
        "ID_BIRTH_MISMATCH:公民身份号码",
        "ID_SEX_MISMATCH:公民身份号码",
    ]
    assert (record.fields["birth_date"], record.fields["sex"]) == (date(1980, 1, 1), "1")


def test_reasons_per_cell_in_column_order_and_what_rejects(hj: RecordBuilder) -> None:
    record = hj.build(2, hj_row(出生日期="2027-01-01", 性别="", 变动类型="??", 公民身份号码=""))
    assert record.status == "rejected"
    assert record.reasons == ["REQUIRED_MISSING:性别", "DATE_FUTURE:出生日期", "EVENT_CODE:变动类型"]
    assert "birth_date" not in record.fields and "sex" not in record.fields


def test_a_bad_value_in_an_optional_column_is_flagged_and_dropped(ld: RecordBuilder) -> None:
    record = ld.build(1, ld_row(注销日期="31/31/2026"))
    assert record.status == "accepted"
    assert [r.split(":")[1] for r in record.reasons] == ["注销日期"]
    assert "end_date" not in record.extra


def test_a_row_naming_nobody_is_rejected(hj: RecordBuilder) -> None:
    record = hj.build(3, hj_row(姓名="", 公民身份号码=" "))
    assert (record.status, record.reasons) == ("rejected", ["ROW_NO_IDENTITY"])


def test_a_repeated_row_is_rejected_naming_the_first(hj: RecordBuilder) -> None:
    record = hj.build(9, hj_row(), duplicate_of=4)
    assert (record.status, record.reasons, record.fields) == ("rejected", ["DUPLICATE_ROW:4"], {})
    assert describe(record.reasons[0]) == "与第4行完全相同"


def test_nul_characters_are_dropped_before_anything_else(hj: RecordBuilder) -> None:
    record = hj.build(1, hj_row(姓名="张\x00伟", 户号="\x00"))
    assert record.fields["name"] == "张伟" and record.raw["姓名"] == "张伟"
    assert "户号" not in record.raw and "household_no" not in record.extra


OPTIONAL_HJ = [c.name for c in get_feed_spec("gaj_hj").columns if not c.required]
REQUIRED_HJ = [
    c.name
    for c in get_feed_spec("gaj_hj").columns
    if c.required and c.kind not in ("id_no", "doc_no", "name")
]


@given(st.sets(st.sampled_from(OPTIONAL_HJ)))
def test_blanking_optional_columns_never_rejects(blank: set[str]) -> None:
    builder = RecordBuilder(get_feed_spec("gaj_hj"), known_areas={COMMUNITY}, today=TODAY)
    record = builder.build(1, hj_row(**dict.fromkeys(blank, "")))
    assert (record.status, record.reasons) == ("accepted", [])


@given(st.sets(st.sampled_from(REQUIRED_HJ), min_size=1))
def test_blanking_required_columns_rejects_with_one_reason_each(blank: set[str]) -> None:
    builder = RecordBuilder(get_feed_spec("gaj_hj"), known_areas={COMMUNITY}, today=TODAY)
    record = builder.build(1, hj_row(**dict.fromkeys(blank, "")))
    assert record.status == "rejected"
    missing = {r.split(":")[1] for r in record.reasons if r.startswith("REQUIRED_MISSING:")}
    assert missing == blank


@given(st.permutations(list(hj_row())))
def test_the_order_of_the_cells_does_not_matter(order: list[str]) -> None:
    builder = RecordBuilder(get_feed_spec("gaj_hj"), known_areas={COMMUNITY}, today=TODAY)
    row = hj_row(出生日期="2027-01-01", 性别="")
    assert builder.build(1, {k: row[k] for k in order}) == builder.build(1, row)


# Cells that exercise every path: clean values, blanks, padding, NUL, bad dates, IDs with a wrong check
# digit or a 15-digit form, unknown codes and events, other document types.
CELL_CHOICES = {
    "公民身份号码": [ZHANG, "330102198001010019", "330102800101001", " ", "", "11010519491231002X"],
    "姓名": ["张伟", "", "安娜•金", "张\x00伟", " 李 娜 "],
    "性别": ["男", "女", "", "X", "1"],
    "出生日期": ["1980-01-01", "1980/1/2", "2027-01-01", "31/31/1980", ""],
    "户籍地区划代码": [COMMUNITY, "330102001999", "3301", ""],
    "变动类型": ["在册", "迁出", "??", ""],
    "证件类型": ["护照", "居民身份证", "", "火星证"],
    "证件号码": ["e1234567", ZHANG, "", "123"],
    "注销日期": ["", "2026-10-20", "20261301"],
}


@given(st.data())
def test_a_row_gives_the_same_record_alone_or_in_a_chunk(data: st.DataObject) -> None:
    """Each distinct value is normalised once per chunk: no row may see another row's values."""
    for spec, template in ((get_feed_spec("gaj_hj"), hj_row()), (get_feed_spec("gaj_ld"), ld_row())):
        builder = RecordBuilder(spec, known_areas={COMMUNITY}, today=TODAY)
        rows = []
        for row_no in range(1, data.draw(st.integers(1, 8)) + 1):
            cells = {
                name: data.draw(st.sampled_from(CELL_CHOICES.get(name, [template.get(name) or "", ""])))
                for name in spec.column_names
            }
            notes = data.draw(st.sampled_from([[], ["CELL_FORMULA:户号"]]))
            duplicate_of = data.draw(st.sampled_from([None, None, 1]))
            rows.append((row_no, tuple(cells.values()), notes, duplicate_of))
        chunk = builder.build_chunk(rows)
        for i, (row_no, cells_, notes, duplicate_of) in enumerate(rows):
            alone = builder.build(
                row_no, dict(zip(spec.column_names, cells_, strict=True)), notes, duplicate_of
            )
            assert chunk.record(i) == alone
        copied = list(chunk.copy_rows(3, spec.source))
        for i, row in enumerate(rows):
            assert copied[i] == next(builder.build_chunk([row]).copy_rows(3, spec.source))
