"""The synthetic city: reproducible, in the standard's formats, messy, and consistent with its truth."""

import csv
import io
import json
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from synth import CitySummary, generate_city

START = date(2026, 11, 1)
# Columns exactly as in EXCHANGE-STANDARD-v1.md (written out here, not imported from the generator).
STANDARD = {
    "gaj_hj": "记录编号,公民身份号码,姓名,曾用名,性别,民族,出生日期,户号,与户主关系,户籍地址,户籍地区划代码,变动类型,变动日期",
    "gaj_ld": "记录编号,证件类型,证件号码,姓名,性别,出生日期,户籍地区划代码,现住地址,现住地社区代码,登记日期,注销日期,居住事由",
    "wjw_cs": "出生医学证明编号,新生儿姓名,性别,出生日期,出生地点,母亲姓名,母亲身份证号,父亲姓名,父亲身份证号",
    "wjw_sw": "死亡证明编号,姓名,身份证号,性别,出生日期,死亡日期,死亡地点",
    "rsj_cb": "社会保障号码,姓名,性别,出生日期,参保状态,参保单位,联系电话,变更日期",
    "jyj_xj": "全国学籍号,学生姓名,证件类型,证件号码,性别,出生日期,学校名称,年级,家庭住址,监护人姓名,监护人身份证号",
    "mzj_hy": "登记证号,登记类型,当事人身份证号,当事人姓名,配偶身份证号,配偶姓名,登记日期",
    "sq_cj": "姓名,身份证号,性别,出生日期,民族,联系电话,现住址,社区代码,人口类型,居住状态,采集日期,信息员工号,备注",
}
FORMATS = {"gaj_hj": {"csv"}, "gaj_ld": {"csv"}, "wjw_cs": {"xlsx"}, "wjw_sw": {"csv"}, "rsj_cb": {"csv", "jsonl"},
           "jyj_xj": {"csv"}, "mzj_hy": {"csv"}, "sq_cj": {"xlsx"}}  # fmt: skip
FILE_NAME = re.compile(
    r"(?P<source>gaj_hj|gaj_ld|wjw_cs|wjw_sw|rsj_cb|jyj_xj|mzj_hy|sq_cj)_(?P<day>\d{8})(?:_(?P<n>\d+))?\.(?P<ext>csv|xlsx|jsonl)"
)
ID_COLUMNS = {"公民身份号码", "证件号码", "母亲身份证号", "父亲身份证号", "身份证号", "社会保障号码", "监护人身份证号",
              "当事人身份证号", "配偶身份证号"}  # fmt: skip
NAME_COLUMNS = {
    "姓名",
    "新生儿姓名",
    "母亲姓名",
    "父亲姓名",
    "学生姓名",
    "监护人姓名",
    "当事人姓名",
    "配偶姓名",
}


def clean_id(number: str) -> bool:
    """An 18-character resident ID number in ASCII whose check character is right."""
    return bool(re.fullmatch(r"[0-9]{17}[0-9X]", number)) and mod11_2_ok(number)


def mod11_2_ok(number: str) -> bool:
    """ISO 7064 MOD 11-2 check of an 18-character resident ID number."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(c) * w for c, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17]


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a landing file, every cell as text."""
    if path.suffix == ".xlsx":
        rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
        cells = [[c.isoformat() if isinstance(c, date) else str(c) for c in row] for row in rows]
        return cells[0], cells[1:]
    data = path.read_bytes()
    if path.suffix == ".jsonl":
        objs = [json.loads(line) for line in data.decode("utf-8").splitlines()]
        return (list(objs[0]) if objs else []), [list(o.values()) for o in objs]
    text = data.decode("gb18030") if path.name.startswith("gaj_hj") else data.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    return lines[0], lines[1:]


def landing_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "landing").iterdir() if p.is_file())


def all_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def truth_rows(out: Path) -> dict[str, dict[int, str]]:
    by_file: dict[str, dict[int, str]] = defaultdict(dict)
    with (out / "truth" / "rows.csv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            assert int(r["row"]) not in by_file[r["file"]], r
            by_file[r["file"]][int(r["row"])] = r["person"]
    return by_file


def truth_persons(out: Path) -> dict[str, dict[str, str]]:
    with (out / "truth" / "persons.csv").open(encoding="utf-8", newline="") as f:
        return {r["person"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CitySummary]:
    out = tmp_path_factory.mktemp("small") / "city"
    return out, generate_city(out, persons=2000, days=5, seed=7)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CitySummary]:
    """Big enough for births, deaths, marriages and every kind of mess."""
    out = tmp_path_factory.mktemp("city") / "city"
    return out, generate_city(out, persons=50_000, days=20, seed=3)


def test_same_seed_gives_identical_bytes(small: tuple[Path, CitySummary], tmp_path: Path) -> None:
    first, _ = small
    again = tmp_path / "again"
    generate_city(again, persons=2000, days=5, seed=7)
    expected = all_bytes(first)
    assert len(expected) > 40
    assert all_bytes(again) == expected


def test_other_seed_gives_other_files(small: tuple[Path, CitySummary], tmp_path: Path) -> None:
    first, _ = small
    other = tmp_path / "other"
    generate_city(other, persons=2000, days=5, seed=8)
    mine, theirs = all_bytes(first), all_bytes(other)
    assert mine["landing/gaj_hj_20261101.csv"] != theirs["landing/gaj_hj_20261101.csv"]
    assert mine["truth/persons.csv"] != theirs["truth/persons.csv"]


def test_refuses_to_overwrite(small: tuple[Path, CitySummary]) -> None:
    out, _ = small
    with pytest.raises(FileExistsError):
        generate_city(out, persons=10, days=1, seed=1)


def test_file_names_formats_and_headers(city: tuple[Path, CitySummary]) -> None:
    out, summary = city
    files = landing_files(out)
    assert {p.name for p in files} == set(summary.files)
    days = {START + timedelta(days=d) for d in range(21)}
    per_source_day: Counter[tuple[str, str]] = Counter()
    for path in files:
        m = FILE_NAME.fullmatch(path.name)
        assert m, path.name
        assert m["ext"] in FORMATS[m["source"]], path.name
        assert date(int(m["day"][:4]), int(m["day"][4:6]), int(m["day"][6:])) in days
        header, rows = read(path)
        if m["ext"] != "jsonl" or rows:
            assert header == STANDARD[m["source"]].split(","), path.name
        assert all(len(r) == len(header) for r in rows), path.name
        per_source_day[m["source"], m["day"]] += m["n"] is None
    # Day 0 brings the four full extracts, then every source sends one file (and maybe a _2) each day.
    assert {s for s, d in per_source_day if d == "20261101"} == {"gaj_hj", "gaj_ld", "rsj_cb", "jyj_xj"}
    assert set(per_source_day.values()) == {1}
    assert len(per_source_day) == 4 + 8 * 20
    assert any(p.name.endswith("_2.csv") or p.name.endswith("_2.xlsx") for p in files)
    assert any(p.suffix == ".jsonl" for p in files) and any(p.name.startswith("rsj_cb") and p.suffix == ".csv"
                                                          for p in files)  # fmt: skip


def test_encodings(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    for path in landing_files(out):
        data = path.read_bytes()
        if path.name.startswith("gaj_hj"):
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            assert "公民身份号码" in data.decode("gb18030")
        elif path.name.startswith("rsj_cb") and path.suffix == ".csv":
            assert data.startswith(b"\xef\xbb\xbf" + "社会保障号码".encode())
        elif path.suffix in (".csv", ".jsonl"):
            assert not data.startswith(b"\xef\xbb\xbf")
            data.decode("utf-8")
    assert "在册" in (out / "landing" / "gaj_hj_20261101.csv").read_bytes().decode("gb18030")


def test_every_row_has_its_truth_and_no_more(city: tuple[Path, CitySummary]) -> None:
    out, summary = city
    truth = truth_rows(out)
    persons = truth_persons(out)
    assert set(truth) <= {p.name for p in landing_files(out)}
    for path in landing_files(out):
        _, rows = read(path)
        assert sorted(truth[path.name]) == list(range(1, len(rows) + 1)), path.name
        assert summary.files[path.name] == len(rows)
        assert all(p == "" or p in persons for p in truth[path.name].values())
    for path in (out / "landing" / "duplicates").iterdir():
        assert path.read_bytes() == (out / "landing" / path.name).read_bytes()


def test_rows_that_identify_nobody_have_no_name_or_id(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    truth = truth_rows(out)
    nobody = 0
    for path in landing_files(out):
        header, rows = read(path)
        blank = [i for i, c in enumerate(header) if c in ID_COLUMNS | NAME_COLUMNS]
        for n, row in enumerate(rows, start=1):
            if truth[path.name][n] == "":
                nobody += 1
                assert all(row[i] == "" for i in blank), (path.name, n, row)
    assert nobody > 10


def test_clean_ids_are_the_true_persons(city: tuple[Path, CitySummary]) -> None:
    """Where a registration row's ID number is clean, it is the true person's."""
    out, _ = city
    truth, persons = truth_rows(out), truth_persons(out)
    checked = 0
    for path in landing_files(out):
        if not path.name.startswith(("gaj_hj", "gaj_ld")):
            continue
        header, rows = read(path)
        id_col = header.index("公民身份号码" if path.name.startswith("gaj_hj") else "证件号码")
        for n, row in enumerate(rows, start=1):
            if clean_id(row[id_col]):
                checked += 1
                assert row[id_col] == persons[truth[path.name][n]]["id_no"], (path.name, n)
    assert checked > 45_000


def test_births_are_registered_days_later(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    truth, persons = truth_rows(out), truth_persons(out)
    born: dict[str, tuple[date, list[str]]] = {}
    registered: dict[str, tuple[date, list[str]]] = {}
    for path in landing_files(out):
        m = FILE_NAME.fullmatch(path.name)
        assert m
        day = date(int(m["day"][:4]), int(m["day"][4:6]), int(m["day"][6:]))
        header, rows = read(path)
        for n, row in enumerate(rows, start=1):
            person = truth[path.name][n]
            if m["source"] == "wjw_cs" and person:
                born[person] = (day, row)
            elif m["source"] == "gaj_hj" and row[header.index("变动类型")] == "出生登记":
                registered[person] = (day, row)
    assert set(registered) <= set(born)
    last = START + timedelta(days=20)
    due = [p for p, (day, _) in born.items() if day + timedelta(days=10) <= last]
    assert len(due) >= 5
    for person in born:
        if person in registered:
            assert 3 <= (registered[person][0] - born[person][0]).days <= 10
            number = registered[person][1][1]
            assert number == persons[person]["id_no"] or not clean_id(number)
        else:
            assert person not in due, f"birth of {person} never registered"
            assert persons[person]["id_no"] == ""
    # The mother's ID number on the certificate is a woman of child-bearing age.
    by_id = {p["id_no"]: p for p in persons.values() if p["id_no"]}
    header = STANDARD["wjw_cs"].split(",")
    mothers = [by_id[row[header.index("母亲身份证号")]] for _, row in born.values()
               if row[header.index("母亲身份证号")] in by_id]  # fmt: skip
    assert len(mothers) >= len(born) * 0.9
    for mother in mothers:
        assert mother["sex"] == "2"
        assert 19 <= (START - date.fromisoformat(mother["birth_date"])).days / 365.25 <= 46


def test_the_mess_is_there(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    seen: Counter[str] = Counter()
    for path in landing_files(out):
        header, rows = read(path)
        ids = [i for i, c in enumerate(header) if c in ID_COLUMNS]
        names = [i for i, c in enumerate(header) if c in NAME_COLUMNS]
        dates = [i for i, c in enumerate(header) if c.endswith("日期")]
        for row in rows:
            for i in ids:
                v = row[i]
                seen["id15"] += len(v) == 15 and v.isdigit()
                seen["fullwidth"] += any("０" <= c <= "９" for c in v)
                seen["lower_x"] += v.endswith("x")
                seen["space_in_id"] += " " in v
            for i in names:
                seen["traditional"] += any(c in "張陳劉楊黃趙吳孫馬鄭國華偉麗曉東軍" for c in row[i])
                seen["space_in_name"] += " " in row[i].strip()
                seen["other_dot"] += any(c in row[i] for c in "•．.")
            for i in dates:
                seen["date_cn"] += "年" in row[i]
                seen["date_slash"] += "/" in row[i]
                seen["date_compact"] += bool(re.fullmatch(r"\d{8}", row[i]))
        seen["twice"] += sum(n - 1 for n in Counter(map(tuple, rows)).values())
        seen["sex_codes"] += "性别" in header and any(r[header.index("性别")] in ("1", "2") for r in rows)
        seen["sex_words"] += "性别" in header and any(r[header.index("性别")] in ("男", "女") for r in rows)
    for kind in ("id15", "fullwidth", "lower_x", "space_in_id", "traditional", "space_in_name", "other_dot",
                 "date_cn", "date_slash", "date_compact", "twice", "sex_codes", "sex_words"):  # fmt: skip
        assert seen[kind] > 0, kind
    rsj = read(out / "landing" / "rsj_cb_20261101.csv")[1]
    assert sum(len(r[0]) == 15 for r in rsj) > 100  # social insurance kept many old numbers


def test_truth_ids_are_valid_and_unique(city: tuple[Path, CitySummary]) -> None:
    out, summary = city
    persons = truth_persons(out)
    assert len(persons) == summary.persons > 50_000
    resident = [p for p in persons.values() if p["population_type"] != "境外" and p["id_no"]]
    assert len(resident) > 45_000
    for p in resident:
        assert re.fullmatch(r"\d{17}[\dX]", p["id_no"]) and mod11_2_ok(p["id_no"]), p
        assert p["id_no"][6:14] == p["birth_date"].replace("-", "")
        assert int(p["id_no"][16]) % 2 == (p["sex"] == "1")
    ids = [p["id_no"] for p in persons.values() if p["id_no"]]
    assert len(ids) == len(set(ids))
    assert {p["status"] for p in persons.values()} == {"active", "dead", "left"}
    assert all((p["status"] == "dead") == (p["death_date"] != "") for p in persons.values())


def test_population_shape(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    persons = list(truth_persons(out).values())
    types = Counter(p["population_type"] for p in persons)
    assert 0.62 < types["户籍"] / len(persons) < 0.68
    assert 0.28 < types["流动"] / len(persons) < 0.34
    assert 0.03 < types["境外"] / len(persons) < 0.05
    foreign = [p["name"] for p in persons if p["population_type"] == "境外"]
    assert any("·" in n for n in foreign)
    ages = [(START - date.fromisoformat(p["birth_date"])).days / 365.25 for p in persons]
    assert 0.10 < sum(a < 15 for a in ages) / len(ages) < 0.20
    assert 0.12 < sum(a >= 60 for a in ages) / len(ages) < 0.22
    floating = [p for p in persons if p["population_type"] == "流动" and p["id_no"]]
    assert all(p["id_no"][:4] not in ("3301",) for p in floating)


def test_areas_form_a_tree(city: tuple[Path, CitySummary]) -> None:
    out, _ = city
    with (out / "areas.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["code", "name", "level", "parent_code"]
        areas = {code: (name, level, parent) for code, name, level, parent in reader}
    lengths = {"district": 6, "street": 9, "community": 12}
    parent_level = {"street": "district", "community": "street"}
    for code, (name, level, parent) in areas.items():
        assert len(code) == lengths[level] and code.isdigit() and name
        if level == "district":
            assert parent == "" and code.startswith("3301") and name.endswith("区")
        else:
            assert areas[parent][1] == parent_level[level] and code.startswith(parent)
    communities = {c for c, (_, level, _) in areas.items() if level == "community"}
    assert 10 <= len(communities) <= 17  # one per 3,000 to 5,000 people
    assert {p["community_code"] for p in truth_persons(out).values()} <= communities


def test_small_city_has_at_least_three_communities(small: tuple[Path, CitySummary]) -> None:
    _, summary = small
    assert summary.areas["community"] == 3
    assert summary.by_source()["gaj_hj"] > 1200
