"""Small cells are suppressed, and no suppressed cell can be derived from a row or column total."""

import csv
import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from decision import export, service
from decision.indicators import build_dashboard, child_areas, find_area
from decision.schemas import StatCell, StatRow, StatTable
from decision.suppression import suppress, unsafe_lines
from tests.decision.conftest import random_population


def test_primary_and_complementary_suppression() -> None:
    # A 2×2 table with margins: a=3 is sensitive; b, c and then d must go with it, totals stay.
    values = {"a": 3, "b": 10, "c": 12, "d": 20, "r1": 13, "r2": 32, "k1": 15, "k2": 30, "t": 45}
    lines = [
        ["a", "b", "r1"],
        ["c", "d", "r2"],
        ["a", "c", "k1"],
        ["b", "d", "k2"],
        ["r1", "r2", "t"],
        ["k1", "k2", "t"],
    ]
    result = suppress(values, lines)
    assert result.primary == {"a"}
    assert result.complementary == {"b", "c", "d"}
    assert unsafe_lines(lines, result.suppressed) == []


def test_a_lone_small_cell_takes_its_total_with_it() -> None:
    # Row [3, 0 | 3]: the row total is small too; the other row's total then its smallest cell go with it.
    values = {"a": 3, "b": 0, "r1": 3, "c": 8, "d": 9, "r2": 17, "t": 20}
    lines = [["a", "b", "r1"], ["c", "d", "r2"], ["r1", "r2", "t"]]
    result = suppress(values, lines)
    assert result.suppressed == {"a", "r1", "r2", "c"}
    assert unsafe_lines(lines, result.suppressed) == []


def test_threshold_and_zeros() -> None:
    values = {"a": 5, "b": 4, "c": 0, "t": 9}
    assert suppress(values, [["a", "b", "c", "t"]]).suppressed == {"a", "b"}
    assert suppress(values, [["a", "b", "c", "t"]], threshold=4).suppressed == frozenset()


def test_hidden_bands_protect_without_being_published() -> None:
    # 0-4 = b0 + b1 and 3-5 = b1 + b2: a small 3-5 is protected by the hidden bands alone.
    values = {"0-4": 20, "3-5": 2, "b0": 12, "b1": 8, "b2": 1}
    lines = [["b0", "b1", "0-4"], ["b1", "b2", "3-5"]]
    result = suppress(values, lines, hidden={"b0", "b1", "b2"})
    assert result.suppressed == {"3-5"}


def table_lines(table: StatTable) -> list[list[tuple[int, int]]]:
    """Rows and columns of a published table, with their totals, as (row, column) positions."""
    rows: list[StatRow] = [*table.rows, *([table.total_row] if table.total_row else [])]
    width = len(table.columns) + (1 if table.total_label else 0)

    def cells(row: StatRow) -> list[StatCell]:
        return [*row.cells, *([row.total] if row.total else [])]

    lines = []
    if table.total_label:
        lines += [[(i, j) for j in range(width)] for i in range(len(rows))]
    if table.total_row:
        lines += [[(i, j) for i in range(len(rows))] for j in range(len(cells(rows[-1])))]
    return lines


def test_every_published_table_is_safe_at_every_level(session: Session, communities: list[str]) -> None:
    random_population(session, communities, 400, seed=5)
    service.rebuild(session=session, epoch=date(2025, 1, 1), horizon=date(2028, 1, 1))
    areas = [find_area(session, "")]
    areas += child_areas(session, areas[0])
    areas += [c for a in areas[1:] for c in child_areas(session, a)]
    areas += [c for a in areas[3:] for c in child_areas(session, a)]
    assert {a.level for a in areas} == {"city", "district", "street", "community"}
    suppressed_somewhere = 0
    for area in areas:
        board = build_dashboard(session=session, area_code=area.code, as_of=date(2026, 6, 30))
        for table in board.tables:
            rows = [*table.rows, *([table.total_row] if table.total_row else [])]
            grid = [[*r.cells, *([r.total] if r.total else [])] for r in rows]
            for cell in (c for row in grid for c in row):
                assert (
                    cell.suppressed
                    or cell.value is None
                    or not (0 < cell.value < 5)
                    or table.key in ("ratios", "change")
                )
            for line in table_lines(table):
                members = [grid[i][j] for i, j in line if j < len(grid[i])]
                hidden = sum(1 for c in members if c.suppressed)
                suppressed_somewhere += hidden
                assert hidden != 1, (area.code, table.key, line)
    assert suppressed_somewhere > 50


def test_exports_keep_numbers_and_neutralise_formulas() -> None:
    """Counts and rates are numbers (a negative one too: Excel sums them); only text gets the formula guard."""
    table = StatTable(
        key="t",
        title="测试：注入",
        row_header="=cmd|' /C calc'!A0",
        columns=["+1", "-2", "@SUM(A1)", "普通", "空"],
        rows=[
            StatRow(
                label='=HYPERLINK("http://x")',
                cells=[
                    StatCell(value=-3, display="-3"),
                    StatCell(value=None, suppressed=True, display="*"),
                    StatCell(value=7, display="7"),
                    StatCell(value=-1.5, display="-1.5"),
                    StatCell(value=None, display="—"),
                ],
            )
        ],
        note="-3 开头的注释",
    )
    rows = list(csv.reader(io.StringIO(export.to_csv(table, "标题").decode("utf-8-sig"))))
    assert rows[1] == ["'=cmd|' /C calc'!A0", "'+1", "'-2", "'@SUM(A1)", "普通", "空"]
    assert rows[2] == ['\'=HYPERLINK("http://x")', "-3", "*", "7", "-1.5", "—"]
    sheet = load_workbook(io.BytesIO(export.to_xlsx(table, "标题"))).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["'=cmd|' /C calc'!A0", "'+1", "'-2", "'@SUM(A1)", "普通", "空"]
    assert [c.value for c in sheet[3]] == ['\'=HYPERLINK("http://x")', -3, "*", 7, -1.5, "—"]
    assert [c.data_type for c in sheet[3]] == ["s", "n", "s", "n", "n", "s"]
    assert [c.number_format for c in sheet[3]][1:4:2] == ["0", "0"] and sheet["E3"].number_format == "0.0"
    assert sheet["A5"].value == "注：-3 开头的注释"
    text = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    assert all(c.data_type == "s" and not c.value.startswith(("=", "+", "-", "@")) for c in text)
