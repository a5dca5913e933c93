"""Blocking (registry/linkage.py BLOCKING_RULES): which persons a record is compared with.

A small synthetic set: a few persons, and for each the records departments send about them with the
slips the synthetic city makes (synth/mess.py: homophones, traditional characters, other middle dots,
a mistyped ID digit, day and month swapped, a move, blanks). Each record is normalised the way
registry.records stores it, then checked against its true person.
"""

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, text

from registry import resolve
from registry.linkage import BLOCKING_RULES, Key
from registry.normalise.ids import parse_id_number
from registry.normalise.names import name_pinyin, normalise_name
from synth import reference as ref

Raw = dict[str, Any]

PERSONS: list[Raw] = [
    {"name": "王晓明", "id_no": "330102199003070035", "birth_date": date(1990, 3, 7), "sex": "1"},
    {"name": "张丽", "id_no": "330102198505050021", "birth_date": date(1985, 5, 5), "sex": "2"},
    {"name": "阿依古丽·买买提", "id_no": "650102199201110020", "birth_date": date(1992, 1, 11), "sex": "2"},
    {"name": "欧阳华", "id_no": "330105197012080011", "birth_date": date(1970, 12, 8), "sex": "1"},
    {"name": "安娜·金", "id_no": "E12345678", "birth_date": date(1988, 2, 9), "sex": "2"},
]
for i, p in enumerate(PERSONS):
    p["community_code"] = f"33010200100{i % 2 + 1}"


def _mistype(at: int) -> Callable[[Raw], Raw]:
    """One digit of the number mistyped, at `at` (negative: from the end)."""

    def slip(r: Raw) -> Raw:
        n = r["id_no"]
        if n is None:
            return r
        i = at % len(n)
        return {**r, "id_no": n[:i] + str((int(n[i]) + 3) % 10) + n[i + 1 :]}

    return slip


def _swap(d: date) -> date:
    return date(d.year, d.day, d.month) if d.day <= 12 else d


# A slip: one way a department's record of a person differs from the person.
SLIPS: dict[str, Callable[[Raw], Raw]] = {
    "no_id": lambda r: {**r, "id_no": None},
    "id_typo_head": _mistype(4),
    "id_typo_tail": _mistype(-3),
    "homophone": lambda r: {**r, "name": "".join(ref.HOMOPHONES.get(c, c) for c in r["name"])},
    "traditional": lambda r: {**r, "name": r["name"].translate(ref.TRADITIONAL)},
    "other_dot": lambda r: {**r, "name": r["name"].replace(ref.DOT, ref.DOT_VARIANTS[0])},
    "dotless": lambda r: {**r, "name": r["name"].replace(ref.DOT, "")},
    "inner_space": lambda r: {**r, "name": r["name"][:1] + " " + r["name"][1:]},
    "name_typo": lambda r: {**r, "name": r["name"][:-1] + "鑫"},
    "date_swapped": lambda r: {**r, "birth_date": _swap(r["birth_date"])},
    "moved": lambda r: {**r, "community_code": "330105001001"},
    "sex_blank": lambda r: {**r, "sex": None},
}
# Two slips together that no rule survives (each rule needs the pinyin or the birth date, and the
# ID or the community): these records become new persons and are found later by a clerk or a number.
KNOWN_GAPS = {
    ("no_id", "date_swapped"),
    ("name_typo", "date_swapped"),
    ("name_typo", "moved"),
    ("name_typo", "sex_blank"),
}


def stored(raw: Raw) -> Raw:
    """A record's blocking fields as registry.records stores them."""
    name = normalise_name(raw["name"])
    parsed = parse_id_number(raw["id_no"]) if raw["id_no"] and raw["id_no"][0].isdigit() else None
    id_no = parsed.value if parsed else raw["id_no"]
    return {**raw, "name": name, "name_pinyin": name_pinyin(name), "id_no": id_no}


def blocks_shared(a: Raw, b: Raw) -> list[str]:
    """The rules under which two records fall in the same block."""
    return [r.name for r in BLOCKING_RULES if (k := r.block(a)) is not None and k == r.block(b)]


def variants(slips: tuple[str, ...]) -> list[tuple[Raw, Raw]]:
    """(record with the slips, its person) for every person."""
    out = []
    for person in PERSONS:
        raw = dict(person)
        for slip in slips:
            raw = SLIPS[slip](raw)
        out.append((stored(raw), stored(person)))
    return out


@pytest.mark.parametrize("slip", list(SLIPS))
def test_a_record_with_one_slip_shares_a_block_with_its_person(slip: str) -> None:
    for record, person in variants((slip,)):
        assert blocks_shared(record, person), (slip, record["name"])


@pytest.mark.parametrize("slips", list(itertools.combinations(SLIPS, 2)))
def test_a_record_with_two_slips_shares_a_block_unless_a_known_gap(slips: tuple[str, str]) -> None:
    found = [bool(blocks_shared(record, person)) for record, person in variants(slips)]
    if slips in KNOWN_GAPS:
        assert not all(found), f"{slips} is now covered: take it out of KNOWN_GAPS"
    else:
        assert all(found), slips


def test_normalisation_makes_spelling_variants_share_every_block() -> None:
    for slip in ("traditional", "other_dot", "dotless", "inner_space", "homophone"):
        for record, person in variants((slip,)):
            assert blocks_shared(record, person) == [r.name for r in BLOCKING_RULES]


def test_a_blank_key_puts_a_record_in_no_block() -> None:
    record = stored({**PERSONS[0], "id_no": None, "birth_date": None})
    assert [r.block(record) for r in BLOCKING_RULES] == [None, None, None, None]


@pytest.mark.parametrize(
    ("key", "sql", "value"),
    [
        (Key("id_no"), "p.id_no", "330102199003070035"),
        (Key("id_no", 1, 9), "substr(p.id_no, 1, 9)", "330102199"),
        (Key("id_no", 10), "substr(p.id_no, 10)", "003070035"),
    ],
)
def test_a_key_reads_the_same_in_sql_and_python(key: Key, sql: str, value: str) -> None:
    assert key.sql("p") == sql
    assert key.of({"id_no": "330102199003070035"}) == value
    assert key.of({"id_no": None}) is None


def test_the_sql_of_the_rules_finds_exactly_the_pairs_python_finds(connection: Connection) -> None:
    """The rules as resolve runs them (rule.sql on PostgreSQL) and as rule.block reads them agree."""
    records = [r for slips in [(), *[(s,) for s in SLIPS], *KNOWN_GAPS] for r, _ in variants(slips)]
    connection.execute(
        text(
            "CREATE TEMP TABLE t_rec (id int, name_pinyin text, birth_date date, id_no text,"
            " community_code text, sex text) ON COMMIT DROP"
        )
    )
    connection.execute(
        text("INSERT INTO t_rec VALUES (:id, :name_pinyin, :birth_date, :id_no, :community_code, :sex)"),
        [{**{k: r[k] for k in ("name_pinyin", "birth_date", "id_no", "community_code", "sex")}, "id": i}
         for i, r in enumerate(records)],
    )  # fmt: skip
    for rule in BLOCKING_RULES:
        in_sql = set(
            connection.execute(
                text(f"SELECT pr.id, p.id FROM t_rec pr JOIN t_rec p ON {rule.sql('p', 'pr')}")
            )
        )
        in_python = {
            (i, j)
            for (i, a), (j, b) in itertools.product(enumerate(records), repeat=2)
            if (k := rule.block(a)) is not None and k == rule.block(b)
        }
        assert in_sql == in_python, rule.name
        assert len(in_python) > len(
            records
        )  # the set has pairs that share a block, not only each record itself


def test_hash_joins_switch_nested_loops_off_for_the_block_only(connection: Connection) -> None:
    """A large probe's candidate query is planned without nested loops; the statements after it are not."""
    setting = text("SELECT current_setting('enable_nestloop')")
    assert connection.execute(setting).scalar_one() == "on"
    with resolve.hash_joins(connection):
        assert connection.execute(setting).scalar_one() == "off"
        plan = "\n".join(
            connection.execute(
                text("EXPLAIN SELECT * FROM person p JOIN link l ON l.person_id = p.id")
            ).scalars()
        )
        assert "Nested Loop" not in plan
    assert connection.execute(setting).scalar_one() == "on"
    with pytest.raises(ZeroDivisionError), resolve.hash_joins(connection):
        raise ZeroDivisionError
    assert connection.execute(setting).scalar_one() == "on"
    with resolve.hash_joins(connection, on=False):
        assert connection.execute(setting).scalar_one() == "on"


def test_every_rule_has_an_index_on_person_led_by_its_keys(connection: Connection) -> None:
    """Each rule is one SELECT probing person: an index whose leading columns are exactly the rule's keys
    finds a record's block without reading anyone outside it (the community rule once read every person
    born on the record's birth date: ~200 per record at 7.5 M persons)."""
    rows = connection.execute(
        text(
            "SELECT i.indexrelid, i.indnkeyatts FROM pg_index i"
            " WHERE i.indrelid = 'person'::regclass AND NOT i.indisexclusion AND i.indisvalid"
        )
    ).all()
    leads: list[list[str]] = []
    for oid, width in rows:
        columns = connection.execute(
            text("SELECT pg_get_indexdef(:oid, k, true) FROM generate_series(1, :n) AS k"),
            {"oid": oid, "n": width},
        ).scalars()
        leads.append([c.replace("::text", "").replace(" ", "") for c in columns])
    for rule in BLOCKING_RULES:
        keys = {k.sql("p").removeprefix("p.").replace("(p.", "(").replace(" ", "") for k in rule.keys}
        assert any(set(lead[: len(keys)]) == keys for lead in leads), (rule.name, leads)
