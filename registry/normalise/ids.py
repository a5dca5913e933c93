"""Resident ID numbers (GB 11643-1999) and the other identity documents of the exchange standard."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from base import clock

# ISO 7064 MOD 11-2: the check character is CHECK_CHARS[sum(digit_i * CHECK_WEIGHTS[i]) % 11].
CHECK_CHARS = "10X98765432"
CHECK_WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))
_PROVINCES = frozenset(
    str(code)
    for lo, hi in ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 82))
    for code in range(lo, hi + 1)
)
_ID_SHAPE = re.compile(r"[0-9A-Z]{18}", re.ASCII)
_ID_FORMAT = re.compile(r"\d{17}[\dX]", re.ASCII)
_MIN_BIRTH_YEAR = 1880


def _is_digits(text: str) -> bool:
    """True when text is non-empty and only ASCII digits (str.isdigit alone accepts '²' and '٣')."""
    return text.isascii() and text.isdigit()


def _check(first17: str) -> str:
    """Check character of 17 ASCII digits, unvalidated.

    The MOD 11-2 weights are 2**(17-i) mod 11, and 13 = 2 (mod 11), so the weighted sum is congruent
    to twice the digits read as a base-13 numeral: one C call instead of a Python loop over digits.
    """
    return CHECK_CHARS[2 * int(first17, 13) % 11]


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not _is_digits(first17):
        raise ValueError(f"need 17 digits, got {first17!r}")
    return _check(first17)


def upgrade_15(id15: str) -> str:
    """Upgrade a 15-digit number (issued before 1999) to 18 digits: century 19 and a check character."""
    if len(id15) != 15 or not _is_digits(id15):
        raise ValueError(f"need 15 digits, got {id15!r}")
    first17 = f"{id15[:6]}19{id15[6:]}"
    return first17 + check_char(first17)


@dataclass(frozen=True, slots=True)
class IdNumber:
    """A cleaned resident ID number; birth_date and sex are read whenever the digits allow, valid or not."""

    value: str | None
    valid: bool
    issue: str | None
    upgraded: bool
    birth_date: date | None
    sex: str | None


def _clean(raw: str) -> str:
    """Full-width to half-width, every whitespace removed, upper-case."""
    if not raw.isascii():
        raw = unicodedata.normalize("NFKC", raw)
    return "".join(raw.split()).upper()


def _embedded_birth_date(value: str, today: date) -> date | None:
    """The birth date in digits 7-14, or None when it is not a real date in [1880, today]."""
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
    return born if born.year >= _MIN_BIRTH_YEAR and born <= today else None


def parse_id_number(raw: str | None, *, today: date | None = None) -> IdNumber:
    """Clean and validate a resident ID number; issue is the first failed of format, region, birth date, check."""
    text = _clean(raw) if raw else ""
    if not text:
        return IdNumber(None, False, "ID_EMPTY", False, None, None)
    upgraded = len(text) == 15 and _is_digits(text)
    if upgraded:
        text = upgrade_15(text)
    if not _ID_FORMAT.fullmatch(text):  # 18 letters and digits are still kept as a fuzzy blocking key
        return IdNumber(text if _ID_SHAPE.fullmatch(text) else None, False, "ID_FORMAT", False, None, None)
    born = _embedded_birth_date(text, today or clock.today())
    sex = "1" if int(text[16]) % 2 else "2"
    if text[:2] not in _PROVINCES:
        issue: str | None = "ID_REGION"
    elif born is None:
        issue = "ID_BIRTH_DATE"
    elif _check(text[:17]) != text[17]:
        issue = "ID_CHECKSUM"
    else:
        issue = None
    return IdNumber(text, issue is None, issue, upgraded, born, sex)


def id_consistency(id_: IdNumber, *, birth_date: date | None, sex: str | None) -> list[str]:
    """Codes for the record's own birth date or sex ('1'/'2') contradicting the number; blanks never do."""
    issues = []
    if id_.birth_date and birth_date and id_.birth_date != birth_date:
        issues.append("ID_BIRTH_MISMATCH")
    if id_.sex and sex and id_.sex != sex:
        issues.append("ID_SEX_MISMATCH")
    return issues


@dataclass(frozen=True, slots=True)
class Document:
    """A cleaned identity document: type code (RID, PASSPORT, HKMO, TW, FPR) and number."""

    type: str | None
    number: str | None
    valid: bool
    issue: str | None


# Names from the standard, their common short forms, the GA/T 2000.156 codes public security uses,
# and '01' (the most common in-house code for the resident ID card); the codes themselves map to
# themselves so a normalised type can be fed back in.
_DOC_TYPES = {
    "RID": (
        "居民身份证",
        "身份证",
        "公民身份号码",
        "居民身份证号码",
        "身份证号",
        "二代身份证",
        "01",
        "1",
        "111",
    ),
    "PASSPORT": ("护照", "普通护照", "外国护照", "414"),
    "HKMO": ("港澳居民来往内地通行证", "港澳通行证", "回乡证", "516"),
    "TW": ("台湾居民来往大陆通行证", "台胞证", "台湾通行证", "511"),
    "FPR": ("外国人永久居留身份证", "外国人永久居留证", "永久居留身份证", "永居证", "553"),
}
_DOC_TYPE_CODES = {alias: code for code, aliases in _DOC_TYPES.items() for alias in (code, *aliases)}
_DOC_NUMBER = {
    "PASSPORT": re.compile(r"[0-9A-Z]{5,17}", re.ASCII),
    "HKMO": re.compile(r"[HM](?:\d{8}|\d{10})", re.ASCII),
    "TW": re.compile(r"\d{8}|\d{10}", re.ASCII),
    "FPR": re.compile(r"[A-Z]{3}\d{12}|9\d{16}[\dX]", re.ASCII),
}


def normalise_document(doc_type: str | None, number: str | None) -> Document:
    """Map the type to its code and validate the number; both blank is no document, and no issue."""
    cleaned = _clean(number) if number else ""
    kind = _DOC_TYPE_CODES.get(_clean(doc_type)) if doc_type else None
    if kind is None:
        if not cleaned and not (doc_type and doc_type.strip()):
            return Document(None, None, False, None)
        return Document(None, cleaned or None, False, "DOC_TYPE")
    if kind == "RID":
        parsed = parse_id_number(cleaned)
        return Document(kind, parsed.value, parsed.valid, parsed.issue)
    if not cleaned:
        return Document(kind, None, False, "DOC_EMPTY")
    valid = bool(_DOC_NUMBER[kind].fullmatch(cleaned))
    if valid and len(cleaned) == 18:  # the 2023 permanent residence card carries a MOD 11-2 check
        valid = check_char(cleaned[:17]) == cleaned[17]
    return Document(kind, cleaned, valid, None if valid else "DOC_FORMAT")
