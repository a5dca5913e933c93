"""Feed specs: every source of the exchange standard loads, matches the standard, and new ones need no code."""

from datetime import time
from pathlib import Path

import pytest
import yaml

from schemas.canonical import CANONICAL_FIELDS, FIELD_MEANINGS, Event, PopulationType, ResidenceStatus
from schemas.feed_spec import FeedSpecError, UnknownSourceError, get_feed_spec, load_feed_specs

# Copied from EXCHANGE-STANDARD-v1.md ("Sources"): the independent truth the specs are checked against.
STANDARD_COLUMNS = {
    "gaj_hj": "记录编号,公民身份号码,姓名,曾用名,性别,民族,出生日期,户号,与户主关系,户籍地址,户籍地区划代码,变动类型,变动日期",
    "gaj_ld": "记录编号,证件类型,证件号码,姓名,性别,出生日期,户籍地区划代码,现住地址,现住地社区代码,登记日期,注销日期,居住事由",
    "wjw_cs": "出生医学证明编号,新生儿姓名,性别,出生日期,出生地点,母亲姓名,母亲身份证号,父亲姓名,父亲身份证号",
    "wjw_sw": "死亡证明编号,姓名,身份证号,性别,出生日期,死亡日期,死亡地点",
    "rsj_cb": "社会保障号码,姓名,性别,出生日期,参保状态,参保单位,联系电话,变更日期",
    "jyj_xj": "全国学籍号,学生姓名,证件类型,证件号码,性别,出生日期,学校名称,年级,家庭住址,监护人姓名,监护人身份证号",
    "mzj_hy": "登记证号,登记类型,当事人身份证号,当事人姓名,配偶身份证号,配偶姓名,登记日期",
    "sq_cj": "姓名,身份证号,性别,出生日期,民族,联系电话,现住址,社区代码,人口类型,居住状态,采集日期,信息员工号,备注",
}

# The staging table's columns, as given in the platform brief.
STAGING_FIELDS = [
    "record_key",
    "id_type",
    "id_no",
    "name",
    "former_name",
    "sex",
    "ethnicity",
    "birth_date",
    "household_no",
    "household_relation",
    "address",
    "community_code",
    "registered_area_code",
    "event",
    "event_date",
    "population_type",
    "residence_status",
    "phone",
    "mother_name",
    "mother_id_no",
    "father_name",
    "father_id_no",
    "spouse_id_no",
    "spouse_name",
    "school",
    "grade",
    "employer",
    "insurance_status",
    "guardian_name",
    "guardian_id_no",
    "birth_place",
    "death_date",
    "death_place",
    "officer_no",
    "remark",
    "registered_address",
    "reg_date",
    "end_date",
    "reason",
]


def test_canonical_fields_are_the_staging_columns_each_with_a_meaning() -> None:
    assert list(CANONICAL_FIELDS) == STAGING_FIELDS
    assert all(FIELD_MEANINGS[name].strip() for name in CANONICAL_FIELDS)


def test_code_labels() -> None:
    assert [(p.value, p.label) for p in PopulationType] == [
        ("registered", "户籍"),
        ("floating", "流动"),
        ("foreign", "境外"),
    ]
    assert [(s.value, s.label) for s in ResidenceStatus] == [
        ("present", "在住"),
        ("left", "离开"),
        ("dead", "死亡"),
    ]
    assert Event.MOVE_IN.label == "迁入"


def test_every_source_of_the_standard_has_a_spec() -> None:
    assert sorted(load_feed_specs()) == sorted(STANDARD_COLUMNS)


@pytest.mark.parametrize("source", sorted(STANDARD_COLUMNS))
def test_headers_match_the_standard_exactly(source: str) -> None:
    spec = get_feed_spec(source)
    assert spec.source == source
    assert spec.column_names == STANDARD_COLUMNS[source].split(",")


@pytest.mark.parametrize("source", sorted(STANDARD_COLUMNS))
def test_keys_required_columns_and_trust_refer_to_real_things(source: str) -> None:
    spec = get_feed_spec(source)
    names = set(spec.column_names)
    assert spec.record_key and set(spec.record_key) <= names
    assert spec.required_columns and set(spec.required_columns) <= names
    assert set(spec.event_date_from) <= names
    assert {c.field for c in spec.columns} <= set(CANONICAL_FIELDS)
    assert spec.trust and set(spec.trust) <= spec.fields
    assert min(spec.trust.values()) >= 1
    assert set(spec.gate.min_conformance) <= {c.kind for c in spec.columns}
    assert spec.schedule.daily and spec.schedule.deadline == time(9, 0)
    assert spec.volume.min_rows_ratio < 1 < spec.volume.max_rows_ratio
    assert spec.source.startswith(spec.department.code + "_")


def test_record_keys_as_the_brief_names_them() -> None:
    assert get_feed_spec("gaj_hj").record_key == ["记录编号"]
    assert get_feed_spec("rsj_cb").record_key == ["社会保障号码", "变更日期"]
    assert get_feed_spec("mzj_hy").record_key == ["登记证号", "当事人身份证号"]


def test_departments_and_formats() -> None:
    specs = load_feed_specs()
    assert {s.department.code: s.department.name for s in specs.values()} == {
        "gaj": "公安局",
        "wjw": "卫生健康委员会",
        "rsj": "人力资源和社会保障局",
        "jyj": "教育局",
        "mzj": "民政局",
        "sq": "社区信息采集",
    }
    assert "jsonl" in specs["rsj_cb"].formats
    assert "xlsx" in specs["sq_cj"].formats
    assert specs["gaj_hj"].formats == ["csv", "xlsx"]


def test_trust_ranks_from_the_brief() -> None:
    hj, sw, sq, cb = (get_feed_spec(s).trust for s in ("gaj_hj", "wjw_sw", "sq_cj", "rsj_cb"))
    assert all(
        hj[f] == 1
        for f in (
            "name",
            "id_no",
            "sex",
            "birth_date",
            "ethnicity",
            "registered_address",
            "registered_area_code",
        )
    )
    assert sw["death_date"] == 1
    assert sq["address"] == 1 and sq["phone"] == 1
    assert cb["phone"] == 2


def test_gaj_hj_events_and_types() -> None:
    spec = get_feed_spec("gaj_hj")
    derived = {
        kind: [
            how.apply({"变动类型": value})
            for value in ("在册", "出生登记", "迁入", "迁出", "死亡注销", "信息变更", "其他")
        ]
        for kind, how in (("event", spec.events), ("status", spec.residence_status))
        if how
    }
    assert derived == {
        "event": ["snapshot", "birth", "move_in", "move_out", "death", "update", None],
        "status": ["present", "present", "present", "left", "dead", "present", None],
    }
    assert spec.population_type and spec.population_type.apply({}) == "registered"


def test_gaj_ld_leave_rule_and_population_type_by_document() -> None:
    spec = get_feed_spec("gaj_ld")
    assert spec.events.apply({"注销日期": "2026-01-02"}) == Event.LEAVE
    assert spec.events.apply({"注销日期": " "}) == Event.ARRIVE
    assert spec.residence_status and spec.residence_status.apply({"注销日期": "2026-01-02"}) == "left"
    by_doc = {
        doc: spec.population_type.apply({"证件类型": doc}) if spec.population_type else None
        for doc in (
            "居民身份证",
            "护照",
            "港澳居民来往内地通行证",
            "台湾居民来往大陆通行证",
            "外国人永久居留身份证",
            "",
        )
    }
    assert by_doc == {
        "居民身份证": "floating",
        "护照": "foreign",
        "港澳居民来往内地通行证": "foreign",
        "台湾居民来往大陆通行证": "foreign",
        "外国人永久居留身份证": "foreign",
        "": "floating",
    }


def test_sq_cj_types_come_from_its_columns() -> None:
    spec = get_feed_spec("sq_cj")
    row = {"人口类型": "境外", "居住状态": "死亡"}
    assert spec.population_type and spec.population_type.apply(row) == "foreign"
    assert spec.residence_status and spec.residence_status.apply(row) == "dead"
    assert spec.events.apply(row) == "death"
    assert spec.events.apply({"居住状态": "在住"}) == "verify"


def test_fixed_events() -> None:
    assert [get_feed_spec(s).events.apply({}) for s in ("wjw_cs", "wjw_sw", "rsj_cb", "jyj_xj")] == [
        "birth",
        "death",
        "insure",
        "enrol",
    ]
    mzj = get_feed_spec("mzj_hy").events
    assert [mzj.apply({"登记类型": t}) for t in ("结婚", "离婚")] == ["marry", "divorce"]


def test_unknown_source_has_a_chinese_message() -> None:
    with pytest.raises(UnknownSourceError) as caught:
        get_feed_spec("gaj_xx")
    assert caught.value.source == "gaj_xx"
    assert str(caught.value).startswith("未知的数据来源「gaj_xx」，已登记的来源：gaj_hj、gaj_ld")


def _new_department() -> dict[str, object]:
    return {
        "source": "tjj_rk",
        "department": {"code": "tjj", "name": "统计局"},
        "title": "人口抽样调查",
        "formats": ["csv"],
        "columns": [
            {"name": "调查编号", "field": "record_key", "required": True, "kind": "text"},
            {"name": "身份证号", "field": "id_no", "required": True, "kind": "id_no"},
            {"name": "姓名", "field": "name", "required": True, "kind": "name"},
            {"name": "调查日期", "field": "event_date", "required": True, "kind": "date"},
        ],
        "record_key": ["调查编号"],
        "events": {"default": "verify"},
        "event_date_from": ["调查日期"],
        "trust": {"name": 5, "id_no": 5},
        "schedule": {"daily": True, "deadline": "12:00"},
        "volume": {"min_rows_ratio": 0.5, "max_rows_ratio": 2},
        "gate": {"max_null_rate": 0.05, "min_conformance": {"id_no": 0.9}},
    }


def test_a_new_department_is_a_yaml_file_not_code(tmp_path: Path) -> None:
    (tmp_path / "tjj_rk.yaml").write_text(
        yaml.safe_dump(_new_department(), allow_unicode=True), encoding="utf-8"
    )
    specs = load_feed_specs(tmp_path)
    assert list(specs) == ["tjj_rk"]
    spec = specs["tjj_rk"]
    assert spec.column_names == ["调查编号", "身份证号", "姓名", "调查日期"]
    assert spec.required_columns == spec.column_names
    assert spec.events.apply({}) == "verify"
    assert spec.schedule.deadline == time(12, 0)
    assert spec.fields == {"record_key", "id_no", "name", "event_date", "event"}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"columns": [{"name": "调查编号", "field": "survey_no", "kind": "text"}]}, "not a canonical field"),
        ({"record_key": ["编号"]}, "unknown column 编号"),
        ({"trust": {"phone": 1}}, "trust for a field the source lacks: phone"),
        (
            {"gate": {"max_null_rate": 0.1, "min_conformance": {"phone": 0.9}}},
            "gate for an unused kind: phone",
        ),
        ({"events": {"default": "emigrate"}}, "events.default"),
        ({"department": {"code": "gaj", "name": "公安局"}}, "does not start with department code gaj"),
        ({"source": "tjj_other"}, "differs from the file name"),
        (
            {"events": {"rules": [{"column": "姓名", "value": "verify"}]}},
            "give exactly one of filled, one_of",
        ),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_broken_spec_is_refused_naming_the_problem(
    tmp_path: Path, change: dict[str, object], complaint: str
) -> None:
    (tmp_path / "tjj_rk.yaml").write_text(
        yaml.safe_dump(_new_department() | change, allow_unicode=True), encoding="utf-8"
    )
    with pytest.raises(FeedSpecError) as caught:
        load_feed_specs(tmp_path)
    assert "tjj_rk.yaml" in str(caught.value)
    assert complaint in str(caught.value)


def test_every_spec_reads_the_same_with_libyaml_as_with_pure_python() -> None:
    """The specs are read with libyaml's loader when PyYAML has it (a tenth of the time): its documents must
    be the pure-Python safe loader's, value for value (dates, numbers, strings that look like them)."""
    from schemas import feed_spec

    assert feed_spec._YAML_LOADER is yaml.CSafeLoader  # the project's pinned PyYAML wheels carry libyaml
    paths = sorted(feed_spec.FEEDS_DIR.glob("*.yaml"))
    assert len(paths) == len(STANDARD_COLUMNS)
    for path in paths:
        document = path.read_text(encoding="utf-8")
        assert yaml.load(document, Loader=yaml.CSafeLoader) == yaml.safe_load(document), path.name
