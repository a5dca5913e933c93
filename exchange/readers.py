"""Reading received files: name, size, encoding, container and header checks, then rows streamed as text.

`open_feed_file` does every file-level check and returns a `FeedFile`; `FeedFile.rows()` streams `Row`s
(number from 1 after the header, {spec column: raw text or None}, notes about the row). Only the spec's
columns are returned: absent optional columns come back as None, unknown columns are dropped and listed
once in `FeedFile.warnings`. Blank rows are skipped but keep their number, so row numbers match what the
sender sees. CSV and JSON Lines are read line by line; an XLSX sheet is read by calamine after its zip
directory has been checked, so at most XLSX_MAX_UNCOMPRESSED bytes are ever expanded.
"""

import codecs
import csv
import difflib
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import charset_normalizer
import python_calamine

from exchange.exceptions import FeedFileError, IssueCode
from schemas.feed_spec import SOURCE_PATTERN, FeedSpec, UnknownSourceError, get_feed_spec

DEFAULT_MAX_BYTES = 2 * 1024**3
SAMPLE_BYTES = 1024**2  # what encoding detection looks at
CHUNK_BYTES = 1024**2
MAX_LINE_BYTES = 16 * 1024**2  # a longer line is not a data row
XLSX_MAX_UNCOMPRESSED = 200 * 1024**2
XLSX_MAX_RATIO = 100
FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl"}
EXACT_DIGITS = 10**15  # Excel keeps 15 significant digits: a longer integer has lost some

_NAME = re.compile(
    rf"(?P<source>{SOURCE_PATTERN})_(?P<date>\d{{8}})(?:_(?P<seq>\d+))?\.(?P<ext>(?i:csv|xlsx|jsonl))"
)
_CONTROL_BYTES = bytes(b for b in range(256) if (b < 0x20 and b not in b"\t\n\f\r") or b == 0x7F)
_TEXT_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_TWO_CJK = re.compile("[\u4e00-\u9fff].*[\u4e00-\u9fff]")
_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")

_CELL_NOTES = {
    IssueCode.CELL_FORMULA: "是公式单元格，按公式原文读取，未计算",
    IssueCode.CELL_PRECISION: "是超过 15 位的数字单元格，Excel 已丢失末尾数字，请把该列设为文本格式后重新导出",
}


@dataclass(frozen=True)
class FileName:
    """The parts of a delivery's file name `<source>_<YYYYMMDD>[_<n>].<ext>`."""

    source: str
    as_of: date
    seq: int  # 1 for the first delivery of the day, n for `_<n>`
    ext: str  # lower case: csv, xlsx or jsonl


@dataclass(frozen=True)
class Note:
    """A warning about a file or a note about one row: stable code, Chinese message, the column concerned."""

    code: IssueCode
    message: str
    field: str | None = None


class Row(NamedTuple):
    """One data row: number (from 1, after the header), raw text per spec column (None if empty), notes."""

    number: int
    values: dict[str, str | None]
    notes: tuple[Note, ...] = ()


Record = tuple[list[str], tuple[tuple[int, IssueCode], ...]]  # cells, (column index, note) per odd cell


@dataclass
class FeedFile:
    """A received file whose size, encoding, container and header have been checked."""

    path: Path
    spec: FeedSpec
    format: str  # csv, xlsx or jsonl
    encoding: str | None  # None for XLSX
    header: tuple[str, ...] = ()
    warnings: list[Note] = field(default_factory=list)
    formulas: dict[tuple[int, int], str] = field(default_factory=dict, repr=False)  # XLSX (row, col) → text

    def rows(self) -> Iterator[Row]:
        """Read the file again from the start and yield its data rows; FeedFileError on a bad line."""
        _, records = _take_header(self, self._records())
        return self._rows(records)

    def _records(self) -> Generator[Any, None, None]:
        encoding = self.encoding or "utf-8"
        if self.format == "csv":
            return _csv_records(self.path, encoding)
        if self.format == "xlsx":
            return _xlsx_records(self)
        return _jsonl_records(self.path, encoding)

    def _rows(self, records: Iterator[Any]) -> Iterator[Row]:
        return _object_rows(self, records) if self.format == "jsonl" else _table_rows(self, records)


def parse_file_name(name: str) -> FileName:
    """Split a delivery's file name into source, as-of date, sequence and extension; FILE_NAME if it does not fit."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise _error(
            IssueCode.FILE_NAME,
            name,
            f"文件名「{name}」不符合规范，应为 <来源>_<YYYYMMDD>[_<序号>].<csv|xlsx|jsonl>，例如 gaj_hj_20260102.csv",
        )
    try:
        as_of = datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise _error(
            IssueCode.FILE_NAME, name, f"文件名「{name}」中的日期 {match['date']} 不是有效日期"
        ) from None
    seq = int(match["seq"] or 1)
    if match["seq"] is not None and seq < 2:
        raise _error(
            IssueCode.FILE_NAME, name, f"文件名「{name}」的序号应从 2 开始（同一天的第二次报送为 _2）"
        )
    return FileName(match["source"], as_of, seq, match["ext"].lower())


def identify_file(name: str) -> tuple[FileName, FeedSpec]:
    """Parse a file name and find its source's spec; FILE_NAME or UNKNOWN_SOURCE otherwise."""
    parsed = parse_file_name(name)
    try:
        return parsed, get_feed_spec(parsed.source)
    except UnknownSourceError as exc:
        raise _error(IssueCode.UNKNOWN_SOURCE, name, f"文件 {name}：{exc}") from exc


def detect_encoding(path: Path) -> str:
    """The encoding of a text file, judged from its first SAMPLE_BYTES: utf-8-sig, utf-8, gb18030 or a guess."""
    name = path.name
    with path.open("rb") as f:
        sample = f.read(SAMPLE_BYTES + 1)
    whole = len(sample) <= SAMPLE_BYTES
    sample = sample[:SAMPLE_BYTES]
    if not sample:
        raise _error(IssueCode.FILE_EMPTY, name, f"文件 {name} 是空文件")
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _error(
            IssueCode.FILE_ENCODING, name, f"文件 {name} 是 UTF-16 编码，请另存为 UTF-8 或 GB18030 编码"
        )
    controls = len(sample.translate(None, _TEXT_BYTES))
    if b"\0" in sample or controls > len(sample) // 100:
        raise _error(IssueCode.FILE_FORMAT, name, f"文件 {name} 不是文本文件（含有二进制内容）")
    if _decodes(sample, "utf-8", whole):
        return "utf-8"
    mixed = _mixed_majority(sample, whole)
    if mixed:  # lines in two encodings: read as the majority's, so rows() names the first other line
        return mixed
    if _decodes(sample, "gb18030", whole):
        return "gb18030"
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        raise _error(
            IssueCode.FILE_ENCODING, name, f"无法识别文件 {name} 的编码，请使用 UTF-8 或 GB18030 编码"
        )
    return best.encoding


def open_feed_file(path: Path, spec: FeedSpec, *, max_bytes: int = DEFAULT_MAX_BYTES) -> FeedFile:
    """Check a received file (format, size, encoding or zip directory, header) before reading it."""
    name = path.name
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise _error(IssueCode.FILE_FORMAT, name, f"文件 {name} 的格式不受支持，应为 .csv、.xlsx 或 .jsonl")
    if fmt not in spec.formats:
        accepted = "、".join(spec.formats)
        raise _error(IssueCode.FILE_FORMAT, name, f"来源 {spec.source} 不接受 {fmt} 文件（接受：{accepted}）")
    size = path.stat().st_size
    if size > max_bytes:
        raise _error(IssueCode.FILE_TOO_LARGE, name, f"文件 {name} 有 {size} 字节，超过上限 {max_bytes} 字节")
    if size == 0:
        raise _error(IssueCode.FILE_EMPTY, name, f"文件 {name} 是空文件")
    if fmt == "xlsx":
        feed = FeedFile(path, spec, fmt, None)
        if _check_xlsx(path):
            feed.formulas = _formula_texts(path)
    else:
        feed = FeedFile(path, spec, fmt, detect_encoding(path))
    with closing(feed._records()) as records:
        feed.header, rest = _take_header(feed, records)
        feed.warnings = _check_header(feed)
        if next(feed._rows(rest), None) is None:
            # A daily extract with nothing to report is a delivery, not an error: it counts as on time.
            feed.warnings.append(
                Note(IssueCode.FILE_NO_ROWS, f"文件 {name} 只有表头，没有数据行（视为当日无变动）")
            )
    return feed


def read_rows(path: Path, spec: FeedSpec, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Row]:
    """Check the file as open_feed_file does (raising at once), then stream its rows."""
    return open_feed_file(path, spec, max_bytes=max_bytes).rows()


def _error(code: IssueCode, file: str, message: str, **where: Any) -> FeedFileError:
    return FeedFileError(code, message, file=file, **where)


class _BadLine(Exception):
    """A line that does not decode or parse; the row readers add the row number and raise FeedFileError."""

    def __init__(self, line: int, code: IssueCode, detail: str) -> None:
        super().__init__(detail)
        self.line, self.code, self.detail = line, code, detail

    def error(self, file: str, row: int | None) -> FeedFileError:
        if row is None:
            where = f"表头（文件第 {self.line} 行）"
        elif row == self.line:
            where = f"第 {row} 行"
        else:
            where = f"第 {row} 行数据（文件第 {self.line} 行）"
        return _error(self.code, file, f"文件 {file} {where}{self.detail}", row=row)


def _decodes(sample: bytes, encoding: str, whole: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=whole)
    except UnicodeDecodeError:
        return False
    return True


def _mixed_majority(sample: bytes, whole: bool) -> str | None:
    """For a sample with some lines of Chinese in UTF-8 and some not UTF-8: the encoding most lines use."""
    lines = sample.split(b"\n")
    utf8 = other = 0
    for raw in lines if whole else lines[:-1]:
        if raw.isascii():
            continue
        try:
            utf8 += _TWO_CJK.search(raw.decode("utf-8")) is not None
        except UnicodeDecodeError:
            other += 1
    if not utf8:
        return None
    return "utf-8" if utf8 > other else "gb18030"


def _line_decoder(encoding: str) -> Callable[[bytes, int], str]:
    """A strict per-line decoder; for GB18030 it also refuses lines that are really UTF-8."""
    codec = codecs.lookup(encoding).name
    codec = "utf-8" if codec == "utf-8-sig" else codec  # the BOM is dropped before decoding
    label = codec.upper()

    def decode(raw: bytes, line: int) -> str:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            raise _BadLine(
                line, IssueCode.FILE_ENCODING, f"无法按 {label} 解码（同一文件中混用了多种编码？）"
            ) from None

    def decode_gb18030(raw: bytes, line: int) -> str:
        if raw.isascii():
            return raw.decode("ascii")
        as_utf8 = raw.decode("utf-8", "replace")
        if "\ufffd" not in as_utf8 and _TWO_CJK.search(as_utf8):
            raise _BadLine(
                line,
                IssueCode.FILE_ENCODING,
                "是 UTF-8 编码，而文件其余部分是 GB18030（同一文件中混用了多种编码）",
            )
        return decode(raw, line)

    return decode_gb18030 if codec == "gb18030" else decode


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's decoded lines with their endings (LF, CRLF or CR), read in chunks; _BadLine on a bad line."""
    decode = _line_decoder(encoding)
    number = 0
    carry = b""
    with path.open("rb") as f:
        chunk = f.read(CHUNK_BYTES).removeprefix(codecs.BOM_UTF8)
        while True:
            lines = (carry + chunk).splitlines(keepends=True)
            carry = lines.pop() if chunk else b""  # the last piece may continue in the next chunk
            if len(carry) > MAX_LINE_BYTES:
                raise _BadLine(number + 1, IssueCode.FILE_FORMAT, f"超过 {MAX_LINE_BYTES} 字节，不是数据行")
            for raw in lines:
                number += 1
                yield decode(raw, number)
            if not chunk:
                return
            chunk = f.read(CHUNK_BYTES)


def _csv_records(path: Path, encoding: str) -> Generator[Record, None, None]:
    reader = csv.reader(_text_lines(path, encoding))
    try:
        yield from zip(reader, repeat(()))
    except csv.Error as exc:
        raise _BadLine(reader.line_num, IssueCode.FILE_FORMAT, f"无法按 CSV 解析：{exc}") from None


def _check_xlsx(path: Path) -> bool:
    """Check an XLSX's zip directory and every entry's size and CRC; whether any worksheet holds formulas."""
    name = path.name
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"\xd0\xcf\x11\xe0":
        raise _error(
            IssueCode.FILE_FORMAT,
            name,
            f"文件 {name} 是旧版 .xls 或加密的 Excel 文件，请另存为不加密的 .xlsx",
        )
    if not magic.startswith(b"PK"):
        raise _error(IssueCode.FILE_FORMAT, name, f"文件 {name} 不是 XLSX 文件")
    try:
        with zipfile.ZipFile(path) as book:
            entries = book.infolist()
            total = sum(entry.file_size for entry in entries)
            if total > XLSX_MAX_UNCOMPRESSED:
                raise _error(
                    IssueCode.ZIP_BOMB,
                    name,
                    f"文件 {name} 解压后有 {total} 字节，超过上限 {XLSX_MAX_UNCOMPRESSED} 字节",
                )
            for entry in entries:
                ratio = entry.file_size / max(entry.compress_size, 1)
                if entry.file_size > CHUNK_BYTES and ratio > XLSX_MAX_RATIO:
                    raise _error(
                        IssueCode.ZIP_BOMB,
                        name,
                        f"文件 {name} 中的 {entry.filename} 压缩比为 {ratio:.0f}:1，疑似压缩炸弹",
                    )
            if "xl/workbook.xml" not in book.namelist():
                raise _error(
                    IssueCode.FILE_FORMAT, name, f"文件 {name} 不是 XLSX 文件（缺少 xl/workbook.xml）"
                )
            return any([_read_entry(book, entry) for entry in entries])  # a list: every entry is read
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _error(
            IssueCode.FILE_TRUNCATED, name, f"文件 {name} 已损坏或不完整（{exc}），请重新导出后发送"
        ) from exc
    except (NotImplementedError, RuntimeError) as exc:
        raise _error(
            IssueCode.FILE_FORMAT, name, f"文件 {name} 使用了不支持的压缩或加密方式（{exc}）"
        ) from exc


def _read_entry(book: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bool:
    """Expand one entry (zipfile stops at its declared size and checks its CRC); whether it is a sheet with formulas."""
    sheet = entry.filename.startswith("xl/worksheets/") and entry.filename.endswith(".xml")
    found = False
    tail = b""
    with book.open(entry) as data:
        while chunk := data.read(CHUNK_BYTES):
            found = found or (sheet and _FORMULA_TAG.search(tail + chunk) is not None)
            tail = chunk[-16:]
    return found


def _formula_texts(path: Path) -> dict[tuple[int, int], str]:
    """The formula text of every formula cell of the first sheet, by 0-based (row, column)."""
    import openpyxl  # here: a workbook with formulas needs it, every other file spares its import (0.2 s)

    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        sheet = book[book.sheetnames[0]]
        return {
            (cell.row - 1, cell.column - 1): str(getattr(cell.value, "text", cell.value))
            for row in sheet.iter_rows()
            for cell in row
            if cell.data_type == "f"
        }
    finally:
        book.close()


def _xlsx_records(feed: FeedFile) -> Generator[Record, None, None]:
    name = feed.path.name
    try:
        with python_calamine.CalamineWorkbook.from_path(feed.path) as book:
            sheet = book.get_sheet_by_index(0)
    except python_calamine.CalamineError as exc:
        raise _error(IssueCode.FILE_FORMAT, name, f"文件 {name} 无法按 XLSX 读取（{exc}）") from exc
    # iter_rows yields every row from the sheet's first (empty ones too), cells from the first used column.
    first_col = sheet.start[1] if sheet.start else 0
    formulas = feed.formulas
    for row_index, raw in enumerate(sheet.iter_rows()):
        cells: list[str] = []
        notes: list[tuple[int, IssueCode]] = []
        for index, value in enumerate(raw):
            formula = formulas.get((row_index, first_col + index)) if formulas else None
            text, note = (formula, IssueCode.CELL_FORMULA) if formula else _cell_text(value)
            cells.append(text)
            if note:
                notes.append((index, note))
        yield cells, tuple(notes)


def _jsonl_records(path: Path, encoding: str) -> Generator[tuple[int, dict[str, Any]], None, None]:
    name = path.name
    try:
        for number, line in enumerate(_text_lines(path, encoding), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise _error(
                    IssueCode.FILE_FORMAT,
                    name,
                    f"文件 {name} 第 {number} 行不是合法的 JSON（{exc}）",
                    row=number,
                ) from None
            if not isinstance(item, dict):
                raise _error(
                    IssueCode.FILE_FORMAT, name, f"文件 {name} 第 {number} 行不是 JSON 对象", row=number
                )
            yield number, item
    except _BadLine as bad:
        raise bad.error(name, bad.line) from None


def _cell_text(value: object) -> tuple[str, IssueCode | None]:
    """A cell or JSON value as text; integral numbers without '.0', real dates as ISO dates."""
    match value:
        case str():
            return value, None
        case None:
            return "", None
        case bool():
            return ("true" if value else "false"), None
        case int():
            return str(value), None
        case float() if value.is_integer() and abs(value) < EXACT_DIGITS:
            return str(int(value)), None
        case float():
            return repr(value), IssueCode.CELL_PRECISION if value.is_integer() else None
        case datetime():
            return (value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")), None
        case date() | time():
            return value.isoformat(), None
        case list() | dict():
            return json.dumps(value, ensure_ascii=False), None
    return str(value), None


def _take_header(feed: FeedFile, records: Iterator[Any]) -> tuple[tuple[str, ...], Iterator[Any]]:
    """The stripped header and the records after it; for JSON Lines the first object's keys as they are."""
    name = feed.path.name
    if feed.format == "jsonl":
        first = next(records, None)
        if first is None:
            raise _error(IssueCode.FILE_EMPTY, name, f"文件 {name} 没有数据")
        return tuple(first[1]), chain([first], records)
    try:
        for cells, _ in records:
            if any(cell.strip() for cell in cells):
                header = [cell.strip().lstrip("\ufeff").strip() for cell in cells]
                while header and not header[-1]:
                    header.pop()
                return tuple(header), records
    except _BadLine as bad:
        raise bad.error(name, None) from None
    raise _error(IssueCode.FILE_EMPTY, name, f"文件 {name} 没有表头")


def _check_header(feed: FeedFile) -> list[Note]:
    """Raise on missing required or duplicate columns; warnings for missing optional and unknown columns."""
    name, spec, header = feed.path.name, feed.spec, feed.header
    duplicates = sorted({h for h in header if h and header.count(h) > 1})
    if duplicates:
        raise _error(
            IssueCode.HEADER_DUPLICATE_COLUMNS, name, f"文件 {name} 的表头有重复的列：{'、'.join(duplicates)}"
        )
    unknown = [h or f"第 {i + 1} 列（无表头）" for i, h in enumerate(header) if h not in spec.column_names]
    missing = [c for c in spec.column_names if c not in header]
    required = [c for c in missing if c in spec.required_columns]
    if required:
        raise _error(
            IssueCode.HEADER_MISSING_COLUMNS,
            name,
            f"文件 {name} 缺少必填列：{'、'.join(required)}。{_renamed_hint(required, unknown)}",
            field=required[0],
        )
    warnings = []
    optional = [c for c in missing if c not in required]
    if optional:
        message = (
            f"文件 {name} 缺少可选列：{'、'.join(optional)}，按空值处理。{_renamed_hint(optional, unknown)}"
        )
        warnings.append(Note(IssueCode.HEADER_OPTIONAL_MISSING, message))
    if unknown:
        warnings.append(
            Note(
                IssueCode.HEADER_UNKNOWN_COLUMNS, f"文件 {name} 有标准之外的列，已忽略：{'、'.join(unknown)}"
            )
        )
    return warnings


def _renamed_hint(missing: list[str], unknown: list[str]) -> str:
    """'表头中的「身份证号码」是否就是「公民身份号码」？' for each missing column with a look-alike header."""
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, unknown, n=1, cutoff=0.5)
        if close:
            hints.append(f"表头中的「{close[0]}」是否就是「{column}」？")
    return "".join(hints)


def _table_rows(feed: FeedFile, records: Iterator[Record]) -> Iterator[Row]:
    name, header = feed.path.name, feed.header
    width = len(header)
    present = [(column, header.index(column)) for column in feed.spec.column_names if column in header]
    keys = [column for column, _ in present]
    pick: Callable[[list[str]], tuple[str, ...]] = itemgetter(*[i for _, i in present], len(header))
    absent = {column: None for column in feed.spec.column_names if column not in header}
    number = 0
    try:
        for cells, cell_notes in records:
            number += 1
            if not any(cells):
                continue
            notes: tuple[Note, ...] = ()
            if len(cells) != width:
                notes = _fit(cells, width, number)
            cells.append("")  # the extra index in pick keeps it returning a tuple for one column
            values: dict[str, str | None] = {k: v or None for k, v in zip(keys, pick(cells), strict=False)}
            if absent:
                values.update(absent)
            if cell_notes:
                notes += _cell_notes(cell_notes, header, values, number)
            yield Row(number, values, notes)
    except _BadLine as bad:
        raise bad.error(name, number + 1) from None


def _fit(cells: list[str], width: int, number: int) -> tuple[Note, ...]:
    """Pad a short row or cut a long one in place; a note unless only empty cells were cut."""
    count = len(cells)
    if count < width:
        cells.extend([""] * (width - count))
        message = f"第 {number} 行只有 {count} 个单元格，表头有 {width} 列，缺少的按空值处理"
    else:
        cut_data = any(cells[width:])
        del cells[width:]
        if not cut_data:
            return ()
        message = f"第 {number} 行有 {count} 个单元格，表头只有 {width} 列，多出的已忽略"
    return (Note(IssueCode.ROW_CELL_COUNT, message),)


def _cell_notes(
    cell_notes: tuple[tuple[int, IssueCode], ...],
    header: tuple[str, ...],
    values: dict[str, str | None],
    number: int,
) -> tuple[Note, ...]:
    """Notes for the odd cells that fall in spec columns."""
    return tuple(
        Note(
            code,
            f"第 {number} 行「{header[index]}」{_CELL_NOTES[code]}：{values[header[index]]}",
            header[index],
        )
        for index, code in cell_notes
        if index < len(header) and header[index] in values
    )


def _object_rows(feed: FeedFile, records: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[Row]:
    columns = feed.spec.column_names
    known = set(columns) | set(feed.header)
    for number, item in records:
        values: dict[str, str | None] = {}
        notes: list[Note] = []
        for column in columns:
            text, code = _cell_text(item.get(column))
            values[column] = text or None
            if code:
                notes.append(Note(code, f"第 {number} 行「{column}」{_CELL_NOTES[code]}：{text}", column))
        extra = sorted(item.keys() - known)
        if extra:
            notes.append(
                Note(IssueCode.ROW_UNKNOWN_KEYS, f"第 {number} 行有标准之外的键，已忽略：{'、'.join(extra)}")
            )
        yield Row(number, values, tuple(notes))
