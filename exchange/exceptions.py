"""Errors raised while reading a received file, with stable codes and plain Chinese messages."""

from enum import StrEnum


class IssueCode(StrEnum):
    """Stable codes for file errors, file warnings and row notes; receipts and the API show them."""

    # The file is rejected (FeedFileError).
    FILE_NAME = "FILE_NAME"  # name is not <source>_<YYYYMMDD>[_<n>].<ext>
    UNKNOWN_SOURCE = "UNKNOWN_SOURCE"  # no feed spec for the source in the name
    FILE_EMPTY = "FILE_EMPTY"  # no bytes, or no header
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    FILE_FORMAT = "FILE_FORMAT"  # not text / not XLSX / extension not accepted / bad CSV or JSON line
    FILE_ENCODING = "FILE_ENCODING"  # undecodable, UTF-16, or lines in different encodings
    FILE_TRUNCATED = "FILE_TRUNCATED"  # a damaged or cut-off XLSX
    ZIP_BOMB = "ZIP_BOMB"  # an XLSX that would expand far beyond its size
    HEADER_MISSING_COLUMNS = "HEADER_MISSING_COLUMNS"
    HEADER_DUPLICATE_COLUMNS = "HEADER_DUPLICATE_COLUMNS"
    # The file is read; the caller reports these (FeedFile.warnings).
    HEADER_UNKNOWN_COLUMNS = "HEADER_UNKNOWN_COLUMNS"  # extra columns, ignored
    HEADER_OPTIONAL_MISSING = "HEADER_OPTIONAL_MISSING"  # optional columns absent, read as empty
    FILE_NO_ROWS = "FILE_NO_ROWS"  # a header and no data rows: a day with nothing to report
    # One row (Row.notes).
    ROW_CELL_COUNT = "ROW_CELL_COUNT"  # fewer cells than the header (padded) or extra filled cells (dropped)
    ROW_UNKNOWN_KEYS = "ROW_UNKNOWN_KEYS"  # JSON Lines object with keys outside the spec, ignored
    CELL_FORMULA = "CELL_FORMULA"  # a spreadsheet formula, read as its text
    CELL_PRECISION = "CELL_PRECISION"  # a number cell of 16+ digits: Excel has already lost digits


class FeedFileError(Exception):
    """A received file that cannot be read; `str(e)` is the Chinese message for the sender."""

    def __init__(
        self, code: IssueCode, message: str, *, file: str, row: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.file = file
        self.row = row
        self.field = field

    def __str__(self) -> str:
        return self.message


class PushError(Exception):
    """An error of the push API: HTTP status, stable code, Chinese message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
