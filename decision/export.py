"""Export a published table as CSV or XLSX: counts and rates as numbers, labels as text that no
spreadsheet runs as a formula."""

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

from base.tabular import safe_cell
from decision.protection import DEFAULT_THRESHOLD, MAX_NOISE
from decision.schemas import SUPPRESSED_MARK, StatCell, StatTable

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


Value = str | int | float


def _value(cell: StatCell) -> Value:
    """A published number as a number (a rate keeps the one decimal shown); '*' or '—' otherwise."""
    if cell.value is None:
        return cell.display
    return cell.value if isinstance(cell.value, int) else round(cell.value, 1)


def table_rows(table: StatTable, caption: str) -> list[list[Value]]:
    """Caption, header, rows, total row and notes: numbers as numbers, text guarded against formulas."""
    header: list[Value] = [
        table.row_header,
        *table.columns,
        *([table.total_label] if table.total_label else []),
    ]
    out: list[list[Value]] = [[caption], header]
    for row in [*table.rows, *([table.total_row] if table.total_row else [])]:
        out.append([row.label, *(_value(c) for c in row.cells), *([_value(row.total)] if row.total else [])])
    out.append(
        [
            f"注：各数值已加入 ±{MAX_NOISE} 以内的随机扰动（同一数值在各页面、接口和导出中相同），"
            f"扰动后小于 {DEFAULT_THRESHOLD} 的数值（包括 0）均以“{SUPPRESSED_MARK}”表示；表内分项之和与合计可能略有出入"
        ]
    )
    if table.note:
        out.append([f"注：{table.note}"])
    return [[safe_cell(c) if isinstance(c, str) else c for c in r] for r in out]


def to_csv(table: StatTable, caption: str) -> bytes:
    """UTF-8 CSV with a byte-order mark, so that spreadsheet programs read the Chinese correctly."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(table_rows(table, caption))
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(table: StatTable, caption: str) -> bytes:
    """An XLSX workbook with one sheet: numbers stored as numbers (Excel sums them), text as text."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has one sheet
    sheet.title = table.title[:31].replace("：", " ").replace("/", " ")
    for r, values in enumerate(table_rows(table, caption), start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"
                cell.number_format = "@"
            else:
                cell.number_format = "0" if isinstance(value, int) else "0.0"
            if r <= 2:
                cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 24
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
