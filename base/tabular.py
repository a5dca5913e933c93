"""Cells for spreadsheets we write (receipts, exports, scorecards)."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Text a spreadsheet will not run as a formula: a leading = + - @ tab or CR gets a ' in front."""
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value
