"""Tests for registry/normalise/codes.py and registry/normalise/messages.py."""

import ast
import re
from pathlib import Path

import pytest

import registry.normalise
from registry.normalise.codes import (
    ETHNICITIES,
    normalise_area_code,
    normalise_ethnicity,
    normalise_phone,
    normalise_sex,
)
from registry.normalise.messages import MESSAGES, describe


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("男", ("1", None)),
        ("女", ("2", None)),
        ("男性", ("1", None)),
        ("女性", ("2", None)),
        ("1", ("1", None)),
        ("2", ("2", None)),
        (1, ("1", None)),
        (2.0, ("2", None)),
        ("１", ("1", None)),
        (" 女 ", ("2", None)),
        ("M", ("1", None)),
        ("f", ("2", None)),
        ("Male", ("1", None)),
        ("FEMALE", ("2", None)),
        ("0", (None, None)),
        ("9", (None, None)),
        ("未知", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("3", (None, "SEX_CODE")),
        ("男女", (None, "SEX_CODE")),
        ("x", (None, "SEX_CODE")),
    ],
)
def test_normalise_sex(raw: object, expected: tuple[str | None, str | None]) -> None:
    assert normalise_sex(raw) == expected


def test_ethnicities_are_the_56_of_gb_3304_plus_97_and_98() -> None:
    assert list(ETHNICITIES) == [f"{n:02d}" for n in range(1, 57)] + ["97", "98"]
    assert len(set(ETHNICITIES.values())) == 58
    assert (ETHNICITIES["01"], ETHNICITIES["05"], ETHNICITIES["46"], ETHNICITIES["56"]) == (
        "汉族",
        "维吾尔族",
        "德昂族",
        "基诺族",
    )
    assert (ETHNICITIES["97"], ETHNICITIES["98"]) == ("其他", "外国血统中国籍人士")


@pytest.mark.parametrize(("code", "name"), ETHNICITIES.items())
def test_every_ethnicity_by_name_and_by_code(code: str, name: str) -> None:
    assert normalise_ethnicity(name) == (code, None)
    assert normalise_ethnicity(code) == (code, None)
    assert normalise_ethnicity(int(code)) == (code, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("汉", ("01", None)),
        ("1", ("01", None)),
        (1.0, ("01", None)),
        (" 汉 族 ", ("01", None)),
        ("０１", ("01", None)),
        ("维吾尔", ("05", None)),
        ("土", ("30", None)),
        ("崩龙族", ("46", None)),
        ("其它", ("97", None)),
        ("", (None, None)),
        (None, (None, None)),
        ("火星族", (None, "ETHNICITY_CODE")),
        ("57", (None, "ETHNICITY_CODE")),
        ("99", (None, "ETHNICITY_CODE")),
        ("族", (None, "ETHNICITY_CODE")),
    ],
)
def test_normalise_ethnicity(raw: object, expected: tuple[str | None, str | None]) -> None:
    assert normalise_ethnicity(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        (13812345678, "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+86-13812345678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("19912345678", "19912345678"),
        ("010-88888888", "01088888888"),
        ("(010) 8888 8888", "01088888888"),
        ("021 6123 4567", "02161234567"),
        ("0755-23456789", "075523456789"),
        ("0571-8123456", "05718123456"),
        ("+86 10 8888 8888", "01088888888"),
        ("+86 755 2345 6789", "075523456789"),
        ("0086 010 88888888", "01088888888"),
    ],
)
def test_valid_phone_numbers(raw: object, expected: str) -> None:
    assert normalise_phone(raw) == (expected, None)


@pytest.mark.parametrize(
    "raw",
    ["12812345678", "1381234567", "138123456789", "12345", "0138123456", "88888888", "010-0888888",
     "00 13812345678", "138 1234 567X", "010-88888888-123", "+1 202 555 0100", "无"],
)  # fmt: skip
def test_invalid_phone_numbers(raw: str) -> None:
    assert normalise_phone(raw) == (None, "PHONE_FORMAT")


@pytest.mark.parametrize("raw", [None, "", " - "])
def test_blank_phone(raw: str | None) -> None:
    assert normalise_phone(raw) == (None, None)


KNOWN = {"110105", "110105001", "110105001001"}


@pytest.mark.parametrize(
    ("raw", "known", "expected"),
    [
        ("110105", None, ("110105", None)),
        ("110105001", None, ("110105001", None)),
        ("110105001001", None, ("110105001001", None)),
        (110105001001, None, ("110105001001", None)),
        (110105001001.0, None, ("110105001001", None)),
        (" １１０１０５ ", None, ("110105", None)),
        ("110105001001", KNOWN, ("110105001001", None)),
        ("110105001002", KNOWN, (None, "AREA_UNKNOWN")),
        ("110106", KNOWN, (None, "AREA_UNKNOWN")),
        ("11010", None, (None, "AREA_FORMAT")),
        ("1101050", None, (None, "AREA_FORMAT")),
        ("1101050010011", None, (None, "AREA_FORMAT")),
        ("11010A", KNOWN, (None, "AREA_FORMAT")),
        ("110105-001", None, (None, "AREA_FORMAT")),
        ("", KNOWN, (None, None)),
        (None, None, (None, None)),
    ],
)
def test_normalise_area_code(
    raw: object, known: set[str] | None, expected: tuple[str | None, str | None]
) -> None:
    assert normalise_area_code(raw, known) == expected


def issue_codes_in_source() -> set[str]:
    """Every string constant in registry/normalise that looks like an issue code."""
    pattern = re.compile(r"(ID|DOC|DATE|SEX|ETHNICITY|PHONE|AREA)_[A-Z_]+")
    codes = set()
    for path in Path(registry.normalise.__file__).parent.glob("*.py"):
        if path.name == "messages.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and pattern.fullmatch(node.value)
            ):
                codes.add(node.value)
    return codes


def test_every_issue_code_has_a_message_and_no_message_is_orphaned() -> None:
    assert issue_codes_in_source() == set(MESSAGES)
    assert set(MESSAGES) == {
        "ID_EMPTY", "ID_FORMAT", "ID_REGION", "ID_BIRTH_DATE", "ID_CHECKSUM", "ID_BIRTH_MISMATCH",
        "ID_SEX_MISMATCH", "DOC_TYPE", "DOC_EMPTY", "DOC_FORMAT", "DATE_FORMAT", "DATE_INVALID",
        "DATE_TOO_OLD", "DATE_FUTURE", "SEX_CODE", "ETHNICITY_CODE", "PHONE_FORMAT", "AREA_FORMAT",
        "AREA_UNKNOWN",
    }  # fmt: skip


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_messages_are_plain_chinese_sentences(code: str) -> None:
    message = describe(code)
    assert message == MESSAGES[code]
    assert re.search(r"[\u4e00-\u9fff]", message)
    assert code not in message


def test_describe_examples() -> None:
    assert describe("ID_CHECKSUM") == "身份证号码校验位错误"
    assert describe("NOT_A_CODE") == "未知问题（NOT_A_CODE）"
