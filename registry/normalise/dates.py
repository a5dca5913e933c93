"""Dates as departments send them: ISO, slashes, dots, 年月日, 8 digits, Excel serials, date objects."""

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from numbers import Real

from base import clock


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """A parsed date; value is None when blank or when there is an issue, swapped flags a day/month fix."""

    value: date | None
    issue: str | None
    swapped: bool


_BLANK = ParsedDate(None, None, False)
_FORMAT = ParsedDate(None, "DATE_FORMAT", False)
_INVALID = ParsedDate(None, "DATE_INVALID", False)
_TEXT = re.compile(
    r"(\d{4})(?:([-/.])(\d{1,2})\2(\d{1,2})|年(\d{1,2})月(\d{1,2})日?|(\d{2})(\d{2}))"
    r"(?:(?:\s+|T)\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d+)?)?)?",
    re.ASCII,
)
_SERIAL_DIGITS = re.compile(r"\d{1,5}", re.ASCII)
_MAX_SERIAL = 99_999
# Excel's 1900 date system counts 1900-02-29, which never existed, as serial 60: serials from 61 on
# are one day ahead of a plain count from 1899-12-31.
_EXCEL_LEAP_BUG = 60
_EXCEL_DAY_ZERO = date(1899, 12, 31)


def _from_ymd(year: int, month: int, day: int) -> ParsedDate:
    """A date from its fields, swapping day and month when only that order makes sense."""
    swapped = month > 12 and day <= 12
    if swapped:
        month, day = day, month
    try:
        return ParsedDate(date(year, month, day), None, swapped)
    except ValueError:
        return _INVALID


def _from_serial(serial: int) -> ParsedDate:
    """A date from an Excel 1900-system serial day number."""
    if not 1 <= serial <= _MAX_SERIAL:
        return _FORMAT
    if serial == _EXCEL_LEAP_BUG:
        return _INVALID
    offset = serial - 1 if serial > _EXCEL_LEAP_BUG else serial
    return ParsedDate(_EXCEL_DAY_ZERO + timedelta(days=offset), None, False)


@lru_cache(maxsize=1 << 18)
def _parse_text(raw: str) -> ParsedDate:
    """Structural parse of a date string, before the range checks that depend on the caller."""
    text = raw.strip()
    if len(text) == 10 and text[4] == text[7] == "-":  # fast path for ISO, the most common form
        digits = text[:4] + text[5:7] + text[8:]
        if digits.isascii() and digits.isdigit():
            return _from_ymd(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    if len(text) == 8 and text.isascii() and text.isdigit():
        return _from_ymd(int(text[:4]), int(text[4:6]), int(text[6:]))
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        return _BLANK
    if _SERIAL_DIGITS.fullmatch(text):
        return _from_serial(int(text))
    match = _TEXT.fullmatch(text)
    if match is None:
        return _FORMAT
    # Of the alternatives only one matched; group 2 is the separator, captured for the backreference.
    year, month, day = (int(g) for i, g in enumerate(match.groups()) if g is not None and i != 1)
    return _from_ymd(year, month, day)


def _from_number(number: Real) -> ParsedDate:
    """A spreadsheet number: 8 digits read as YYYYMMDD, otherwise an Excel serial (time of day dropped)."""
    value = float(number)
    if math.isnan(value):  # an empty cell read by pandas
        return _BLANK
    if math.isinf(value):
        return _FORMAT
    whole = math.floor(value)
    if whole == value and 10_000_000 <= whole <= 99_991_231:
        return _parse_text(str(whole))
    return _from_serial(whole)


def parse_date(raw: object, *, today: date | None = None, min_year: int = 1880) -> ParsedDate:
    """Parse one date cell; blank gives value None without an issue (required-ness is the feed spec's)."""
    if raw is None:
        return _BLANK
    if isinstance(raw, str):
        parsed = _parse_text(raw)
    elif isinstance(raw, datetime):
        parsed = ParsedDate(raw.date(), None, False)
    elif isinstance(raw, date):
        parsed = ParsedDate(raw, None, False)
    elif isinstance(raw, Real) and not isinstance(raw, bool):
        parsed = _from_number(raw)
    else:
        return _FORMAT
    value = parsed.value
    if value is None:
        return parsed
    if value.year < min_year:
        return ParsedDate(None, "DATE_TOO_OLD", parsed.swapped)
    if value > (today or clock.today()):
        return ParsedDate(None, "DATE_FUTURE", parsed.swapped)
    return parsed
