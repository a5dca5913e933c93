"""Tests for registry/normalise/dates.py."""

from datetime import date, datetime, time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.normalise.dates import ParsedDate, parse_date

TODAY = date(2026, 6, 30)
FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def ok(value: date, *, swapped: bool = False) -> ParsedDate:
    return ParsedDate(value, None, swapped)


def excel_serial(day: date) -> int:
    """Excel 1900-system serial: 1900-02-29 (serial 60) is counted though it never existed."""
    serial = (day - date(1899, 12, 31)).days
    return serial + 1 if day >= date(1900, 3, 1) else serial


def every_format(d: date) -> list[object]:
    iso = d.isoformat()
    return [
        iso,
        f"{d.year}/{d.month}/{d.day}",
        f"{d:%Y/%m/%d}",
        f"{d:%Y%m%d}",
        f"{d.year}年{d.month}月{d.day}日",
        f"{d:%Y年%m月%d日}",
        f"{d.year}年{d.month}月{d.day}",
        f"{d.year}.{d.month}.{d.day}",
        f"{d:%Y.%m.%d}",
        f"{iso} 00:00:00",
        f"{iso} 13:45",
        f"{iso}T08:30:00.000",
        f"{d:%Y/%m/%d} 0:00:00",
        f" {iso}\t",
        iso.translate(FULL_WIDTH),
        f"{d:%Y%m%d}".translate(FULL_WIDTH),
        f"{d.year}年{d.month}月{d.day}日".translate(FULL_WIDTH),
        d,
        datetime.combine(d, time(15, 30)),
        int(f"{d:%Y%m%d}"),
        float(f"{d:%Y%m%d}"),
    ]


@given(st.dates(date(1880, 1, 1), TODAY))
def test_every_supported_format_parses_back(d: date) -> None:
    for raw in every_format(d):
        assert parse_date(raw, today=TODAY) == ok(d), raw


@given(st.dates(date(1900, 1, 1), date(2173, 10, 14)))
def test_excel_serial_round_trip(d: date) -> None:
    serial = excel_serial(d)
    for raw in (serial, float(serial), serial + 0.75, str(serial), np.int64(serial), np.float64(serial)):
        assert parse_date(raw, today=date.max) == ok(d), raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, ok(date(1900, 1, 1))),
        (59, ok(date(1900, 2, 28))),
        (60, ParsedDate(None, "DATE_INVALID", False)),
        (61, ok(date(1900, 3, 1))),
        (45292, ok(date(2024, 1, 1))),
        ("45292", ok(date(2024, 1, 1))),
        ("４５２９２", ok(date(2024, 1, 1))),
        (46022.5, ok(date(2025, 12, 31))),
        (0, ParsedDate(None, "DATE_FORMAT", False)),
        (-5, ParsedDate(None, "DATE_FORMAT", False)),
        (100_000, ParsedDate(None, "DATE_FORMAT", False)),
        ("100000", ParsedDate(None, "DATE_FORMAT", False)),
        ("1234567", ParsedDate(None, "DATE_FORMAT", False)),
    ],
)
def test_excel_serials(raw: object, expected: ParsedDate) -> None:
    assert parse_date(raw, today=date.max) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-13-02", date(2026, 2, 13)),
        ("2026/31/1", date(2026, 1, 31)),
        ("2026.25.12", date(2026, 12, 25)),
        ("20261301", date(2026, 1, 13)),
        ("2026年13月2日", date(2026, 2, 13)),
        ("2026-13-02 00:00:00", date(2026, 2, 13)),
    ],
)
def test_day_and_month_swapped(raw: str, expected: date) -> None:
    assert parse_date(raw, today=date.max) == ok(expected, swapped=True)


def test_no_swap_when_the_order_is_already_possible() -> None:
    assert parse_date("2026-02-12", today=TODAY) == ok(date(2026, 2, 12))
    assert parse_date("2025-12-02", today=TODAY) == ok(date(2025, 12, 2))


@pytest.mark.parametrize(
    "raw",
    [
        "2026-02-30",
        "2025-02-29",
        "1900-02-29",
        "2026-04-31",
        "2026-00-10",
        "2026-01-00",
        "2026-13-13",
        "2026-31-02",
        "20260230",
    ],
)
def test_impossible_dates(raw: str) -> None:
    assert parse_date(raw, today=TODAY) == ParsedDate(None, "DATE_INVALID", False)


def test_leap_day_is_possible() -> None:
    assert parse_date("2024-02-29", today=TODAY) == ok(date(2024, 2, 29))
    assert parse_date("2000-02-29", today=TODAY) == ok(date(2000, 2, 29))


@pytest.mark.parametrize(
    "raw",
    ["abc", "2026-01", "26-1-2", "2026-01/02", "2026--1-02", "2026-1-2-3", "2026年1月", "202601", "2026-01-02 25",
     "02/01/2026", "2026-0a-02", "二〇二六年一月二日", True, object(), [2026, 1, 2], float("inf")],
)  # fmt: skip
def test_unparseable(raw: object) -> None:
    assert parse_date(raw, today=TODAY) == ParsedDate(None, "DATE_FORMAT", False)


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000", float("nan")])
def test_blank_is_no_value_and_no_issue(raw: object) -> None:
    assert parse_date(raw, today=TODAY) == ParsedDate(None, None, False)


def test_too_old() -> None:
    assert parse_date("1879-12-31", today=TODAY) == ParsedDate(None, "DATE_TOO_OLD", False)
    assert parse_date("1880-01-01", today=TODAY) == ok(date(1880, 1, 1))
    assert parse_date(date(1850, 1, 1), today=TODAY) == ParsedDate(None, "DATE_TOO_OLD", False)
    assert parse_date("1999-12-31", today=TODAY, min_year=2000) == ParsedDate(None, "DATE_TOO_OLD", False)
    assert parse_date("1879-13-12", today=TODAY) == ParsedDate(None, "DATE_TOO_OLD", True)


def test_future() -> None:
    assert parse_date("2026-06-30", today=TODAY) == ok(TODAY)
    assert parse_date("2026-07-01", today=TODAY) == ParsedDate(None, "DATE_FUTURE", False)
    assert parse_date(datetime(2026, 7, 1), today=TODAY) == ParsedDate(None, "DATE_FUTURE", False)
    assert parse_date("2026-31-07", today=TODAY) == ParsedDate(None, "DATE_FUTURE", True)


def test_future_is_relative_to_the_real_today_by_default() -> None:
    assert parse_date("2999-01-01") == ParsedDate(None, "DATE_FUTURE", False)
    assert parse_date("2000-01-01") == ok(date(2000, 1, 1))
