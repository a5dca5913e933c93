"""Dates as day numbers (days since 1970-01-01) so whole columns stay numpy arrays."""

from datetime import date
from typing import Any

import numpy as np

NODATE = np.iinfo(np.int32).min
DATE_STYLES = ("iso", "slash", "compact", "cn", "dot", "excel")
_SEPARATORS = {
    "iso": ("-", "-", ""),
    "compact": ("", "", ""),
    "slash": ("/", "/", ""),
    "cn": ("年", "月", "日"),
    "dot": (".", ".", ""),
}
_EPOCH = date(1970, 1, 1).toordinal()


def day_of(value: date) -> int:
    """The day number of a date."""
    return value.toordinal() - _EPOCH


def date_of(day: int) -> date:
    """The date of a day number."""
    return date.fromordinal(int(day) + _EPOCH)


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day arrays of day numbers (NODATE entries give 1970-01-01)."""
    dt = np.where(days == NODATE, 0, days).astype("datetime64[D]")
    months = dt.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (dt - months).astype(np.int64) + 1
    return year, month, day


def years_between(birth: np.ndarray, day: int) -> np.ndarray:
    """Whole years of age on a day."""
    by, bm, bd = ymd(birth)
    y, m, d = ymd(np.array([day]))
    before = (bm > m[0]) | ((bm == m[0]) & (bd > d[0]))
    return np.asarray(y[0] - by - before.astype(np.int64))


def render(style: str, y: np.ndarray, m: np.ndarray, d: np.ndarray) -> list[Any]:
    """Dates written in one style; 'excel' gives date objects (a string if the date cannot exist)."""
    if len(y) == 0:
        return []
    if style == "excel":
        out: list[Any] = []
        for a, b, c in zip(y.tolist(), m.tolist(), d.tolist(), strict=True):
            try:
                out.append(date(a, b, c))
            except ValueError:
                out.append(f"{a}-{b:02d}-{c:02d}")
        return out
    ms, ds = m.astype(str), d.astype(str)
    if style in ("iso", "compact"):
        ms, ds = np.strings.zfill(ms, 2), np.strings.zfill(ds, 2)
    sep = _SEPARATORS[style]
    text = y.astype(str)
    for piece in (sep[0], ms, sep[1], ds, sep[2]):
        text = np.strings.add(text, piece)
    return list(text.tolist())


def iso(days: np.ndarray) -> list[str]:
    """YYYY-MM-DD strings ('' for NODATE)."""
    out = np.array(render("iso", *ymd(days)), dtype=object)
    out[days == NODATE] = ""
    return list(out.tolist())
