"""Tests for registry/normalise/ids.py."""

from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from registry.normalise.ids import (
    Document,
    IdNumber,
    check_char,
    id_consistency,
    normalise_document,
    parse_id_number,
    upgrade_15,
)

TODAY = date(2026, 6, 30)
VALID = "11010519491231002X"  # the GB 11643 sample number: Beijing Chaoyang, 1949-12-31, female
PROVINCES = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
PROVINCES += [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82]

seventeen_digits = st.text(alphabet="0123456789", min_size=17, max_size=17)
regions = st.builds(lambda p, rest: f"{p}{rest:04d}", st.sampled_from(PROVINCES), st.integers(0, 9999))


def passes_check(number: str) -> bool:
    return number[:17].isdigit() and check_char(number[:17]) == number[17]


def make_id(region: str, born: date, seq: int) -> str:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


@given(seventeen_digits)
def test_check_char_completes_a_valid_number(first17: str) -> None:
    assert check_char(first17) in "0123456789X"
    assert passes_check(first17 + check_char(first17))


@given(seventeen_digits, st.integers(0, 16), st.integers(1, 9))
def test_any_single_digit_change_is_detected(first17: str, position: int, shift: int) -> None:
    number = first17 + check_char(first17)
    changed = str((int(number[position]) + shift) % 10)
    assert not passes_check(number[:position] + changed + number[position + 1 :])


@given(seventeen_digits, st.sampled_from("0123456789X"))
def test_any_other_check_character_is_detected(first17: str, other: str) -> None:
    assume(other != check_char(first17))
    assert not passes_check(first17 + other)


@given(seventeen_digits, st.integers(0, 16))
def test_swapping_adjacent_different_characters_is_detected(first17: str, position: int) -> None:
    number = first17 + check_char(first17)
    a, b = number[position], number[position + 1]
    assume(a != b)
    assert not passes_check(number[:position] + b + a + number[position + 2 :])


def test_check_char_known_values() -> None:
    assert check_char("11010519491231002") == "X"
    assert check_char("44030519900101123") == "X"  # weighted sum 200, 200 % 11 = 2
    assert check_char("11010119900307001") == "1"  # weighted sum 154, 154 % 11 = 0
    assert check_char("00000000000000000") == "1"


@pytest.mark.parametrize(
    "bad",
    ["1101051949123100", "110105194912310021", "1101051949123100X", "１１０１０５１９４９１２３１００２"],
)
def test_check_char_rejects_anything_but_17_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        check_char(bad)


@given(regions, st.dates(date(1900, 1, 1), date(1999, 12, 31)), st.integers(0, 999))
def test_upgrade_15_keeps_region_birth_and_sex(region: str, born: date, seq: int) -> None:
    id15 = f"{region}{born:%y%m%d}{seq:03d}"
    upgraded = upgrade_15(id15)
    assert upgraded == make_id(region, born, seq)
    parsed = parse_id_number(id15, today=TODAY)
    assert parsed == IdNumber(upgraded, True, None, True, born, "1" if seq % 2 else "2")


def test_upgrade_15_example_and_errors() -> None:
    assert upgrade_15("110105491231002") == VALID
    with pytest.raises(ValueError):
        upgrade_15("11010549123100")
    with pytest.raises(ValueError):
        upgrade_15("11010549123100X")


@given(regions, st.dates(date(1880, 1, 1), TODAY), st.integers(0, 999))
def test_parse_is_idempotent_and_reads_birth_and_sex(region: str, born: date, seq: int) -> None:
    number = make_id(region, born, seq)
    parsed = parse_id_number(number, today=TODAY)
    assert parsed == IdNumber(number, True, None, False, born, "1" if seq % 2 else "2")
    assert parse_id_number(parsed.value, today=TODAY) == parsed
    messy = f" {number[:6]} {number[6:].lower()} ".translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    assert parse_id_number(messy, today=TODAY) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        "１１０１０５１９４９１２３１００２ｘ",
        "１１０１０５１９４９１２３１００２Ｘ",
        " 110105 19491231002x ",
        "110105\u300019491231002X",
        "1101 0519 4912 3100 2X\n",
    ],
)
def test_messy_forms_of_one_number(raw: str) -> None:
    assert parse_id_number(raw, today=TODAY) == IdNumber(VALID, True, None, False, date(1949, 12, 31), "2")


def test_fifteen_digit_number_is_upgraded() -> None:
    assert parse_id_number("110105491231002", today=TODAY) == IdNumber(
        VALID, True, None, True, date(1949, 12, 31), "2"
    )


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_empty(raw: str | None) -> None:
    assert parse_id_number(raw) == IdNumber(None, False, "ID_EMPTY", False, None, None)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1101051949123", None),
        ("1101051949123100200", None),
        ("11010519491231002X-", None),
        ("张三", None),
        ("11010519491231002Y", "11010519491231002Y"),
        ("11010519491231O02X", "11010519491231O02X"),
        ("X10105194912310021", "X10105194912310021"),
        ("11010549123100X", None),
    ],
)
def test_format(raw: str, value: str | None) -> None:
    assert parse_id_number(raw, today=TODAY) == IdNumber(value, False, "ID_FORMAT", False, None, None)


@pytest.mark.parametrize(
    "province", ["00", "10", "16", "20", "24", "30", "38", "47", "55", "60", "66", "70", "72", "83", "99"]
)
def test_region(province: str) -> None:
    number = make_id(province + "0105", date(1949, 12, 31), 2)
    parsed = parse_id_number(number, today=TODAY)
    assert (parsed.value, parsed.valid, parsed.issue) == (number, False, "ID_REGION")


@pytest.mark.parametrize("birth", ["19491331", "19490230", "18791231", "20260701", "00000000"])
def test_birth_date(birth: str) -> None:
    first17 = f"110105{birth}002"
    parsed = parse_id_number(first17 + check_char(first17), today=TODAY)
    assert (parsed.value, parsed.valid, parsed.issue, parsed.birth_date) == (
        first17 + check_char(first17),
        False,
        "ID_BIRTH_DATE",
        None,
    )


def test_birth_date_limits_are_inclusive() -> None:
    assert parse_id_number(make_id("110105", TODAY, 1), today=TODAY).valid
    assert parse_id_number(make_id("110105", date(1880, 1, 1), 1), today=TODAY).valid


def test_future_is_relative_to_the_real_today_by_default() -> None:
    assert parse_id_number(make_id("110105", date(2999, 1, 1), 1)).issue == "ID_BIRTH_DATE"


def test_checksum_keeps_value_birth_and_sex_for_fuzzy_matching() -> None:
    assert parse_id_number("110105194912310021", today=TODAY) == IdNumber(
        "110105194912310021", False, "ID_CHECKSUM", False, date(1949, 12, 31), "2"
    )


def test_typo_and_swapped_digits_fail_the_checksum() -> None:
    assert parse_id_number("11010519491231003X", today=TODAY).issue == "ID_CHECKSUM"
    assert parse_id_number("11010519491213002X", today=TODAY).issue == "ID_CHECKSUM"


def test_sex_from_the_17th_digit() -> None:
    assert parse_id_number(make_id("440305", date(1990, 1, 1), 123), today=TODAY).sex == "1"
    assert parse_id_number(make_id("440305", date(1990, 1, 1), 124), today=TODAY).sex == "2"


def test_id_consistency() -> None:
    parsed = parse_id_number(VALID, today=TODAY)
    assert id_consistency(parsed, birth_date=date(1949, 12, 31), sex="2") == []
    assert id_consistency(parsed, birth_date=None, sex=None) == []
    assert id_consistency(parsed, birth_date=date(1949, 12, 13), sex="2") == ["ID_BIRTH_MISMATCH"]
    assert id_consistency(parsed, birth_date=date(1949, 12, 31), sex="1") == ["ID_SEX_MISMATCH"]
    assert id_consistency(parsed, birth_date=date(1950, 1, 1), sex="1") == [
        "ID_BIRTH_MISMATCH",
        "ID_SEX_MISMATCH",
    ]
    assert id_consistency(parse_id_number(None), birth_date=date(1950, 1, 1), sex="1") == []


FPR_2023 = "9118401980010112" + "3"
FPR_2023 += check_char(FPR_2023)


@pytest.mark.parametrize(
    ("doc_type", "number", "expected"),
    [
        ("居民身份证", " 110105 19491231002x ", Document("RID", VALID, True, None)),
        ("身份证", VALID, Document("RID", VALID, True, None)),
        ("01", "110105491231002", Document("RID", VALID, True, None)),
        ("111", VALID, Document("RID", VALID, True, None)),
        ("RID", VALID, Document("RID", VALID, True, None)),
        ("身份证", "110105194912310021", Document("RID", "110105194912310021", False, "ID_CHECKSUM")),
        ("身份证", "", Document("RID", None, False, "ID_EMPTY")),
        ("护照", "e1234567 8", Document("PASSPORT", "E12345678", True, None)),
        ("护照", "Ｇ１２３４５６７８", Document("PASSPORT", "G12345678", True, None)),
        ("护照", "1234", Document("PASSPORT", "1234", False, "DOC_FORMAT")),
        ("护照", "E1234567-8", Document("PASSPORT", "E1234567-8", False, "DOC_FORMAT")),
        ("护照", "A" * 18, Document("PASSPORT", "A" * 18, False, "DOC_FORMAT")),
        ("护照", None, Document("PASSPORT", None, False, "DOC_EMPTY")),
        ("港澳居民来往内地通行证", "H12345678", Document("HKMO", "H12345678", True, None)),
        ("回乡证", "m1234567890", Document("HKMO", "M1234567890", True, None)),
        ("港澳通行证", "C12345678", Document("HKMO", "C12345678", False, "DOC_FORMAT")),
        ("港澳居民来往内地通行证", "H123456789", Document("HKMO", "H123456789", False, "DOC_FORMAT")),
        ("台湾居民来往大陆通行证", "12345678", Document("TW", "12345678", True, None)),
        ("台胞证", "1234567890", Document("TW", "1234567890", True, None)),
        ("台湾居民来往大陆通行证", "123456789", Document("TW", "123456789", False, "DOC_FORMAT")),
        ("外国人永久居留身份证", "usa110012345678", Document("FPR", "USA110012345678", True, None)),
        ("外国人永久居留身份证", FPR_2023, Document("FPR", FPR_2023, True, None)),
        ("永居证", FPR_2023[:17] + "0", Document("FPR", FPR_2023[:17] + "0", False, "DOC_FORMAT")),
        ("外国人永久居留身份证", "US1100123456789", Document("FPR", "US1100123456789", False, "DOC_FORMAT")),
        ("驾驶证", "123456", Document(None, "123456", False, "DOC_TYPE")),
        (None, VALID, Document(None, VALID, False, "DOC_TYPE")),
        ("驾驶证", None, Document(None, None, False, "DOC_TYPE")),
        (None, None, Document(None, None, False, None)),
        (" ", "", Document(None, None, False, None)),
    ],
)
def test_normalise_document(doc_type: str | None, number: str | None, expected: Document) -> None:
    assert normalise_document(doc_type, number) == expected
