"""Counts are perturbed alike wherever they are published, small ones shown as suppressed; exports keep numbers."""

import csv
import io
import math
from datetime import date

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from decision import export, protection, service
from decision.indicators import build_dashboard, build_lineage, child_areas, find_area
from decision.schemas import StatCell, StatRow, StatTable
from tests.decision.conftest import random_population


def test_perturbation_is_small_unbiased_and_keeps_zeros() -> None:
    keys = [i / 10_000 for i in range(10_000)]
    assert all(protection.perturb(0, k) == 0 for k in keys)
    noise = [protection.perturb(50, k) - 50 for k in keys]
    assert set(noise) == set(range(-protection.MAX_NOISE, protection.MAX_NOISE + 1))
    assert abs(sum(noise) / len(noise)) < 0.01
    # The table is the maximum-entropy one for its public parameters: mean 0, the variance asked for,
    # and log p(e) falling linearly in e^2 (p proportional to exp(-lambda e^2)).
    table = protection.NOISE
    assert abs(sum(table.values()) - 1) < 1e-12 and abs(sum(e * p for e, p in table.items())) < 1e-12
    assert abs(sum(e * e * p for e, p in table.items()) - protection.NOISE_VARIANCE) < 1e-9
    slopes = {round(math.log(table[e] / table[0]) / (e * e), 9) for e in table if e}
    assert len(slopes) == 1 and slopes.pop() < 0
    # The keys draw each noise as often as the table says (10,000 evenly spread keys).
    assert all(abs(noise.count(e) / len(noise) - p) < 1e-3 for e, p in table.items())
    assert min(protection.perturb(1, k) for k in keys) == 0  # a small count may show as 0
    secret = "s"
    assert protection.cell_key(secret, "330102", ("pop", "*", "*", "*"), 7) == protection.cell_key(
        secret, "330102", ("pop", "*", "*", "*"), 7
    )
    assert protection.cell_key(secret, "330102", ("pop", "*", "*", "*"), 7) != protection.cell_key(
        "t", "330102", ("pop", "*", "*", "*"), 7
    )


def test_a_count_is_published_alike_everywhere(session: Session, communities: list[str]) -> None:
    """Pages, months variants, the sub-area table, the trend, the year-earlier column and lineage show a
    quantity with the same value; no count below 5 is shown, 0 included; an optional row or column (age
    or type not known, area not known) is there only with a number as its total."""
    random_population(session, communities, 400, seed=5)
    service.rebuild(session=session, epoch=date(2025, 1, 1), horizon=date(2028, 1, 1))
    day = date(2026, 6, 30)
    city = build_dashboard(session=session, area_code="", as_of=day)
    assert build_dashboard(session=session, area_code="", as_of=day, months=3).kpis == city.kpis
    areas = [find_area(session, "")]
    areas += child_areas(session, areas[0])
    areas += [c for a in areas[1:] for c in child_areas(session, a)]
    areas += [c for a in areas[3:] for c in child_areas(session, a)]
    shown_as_suppressed = 0
    for area in areas:
        board = build_dashboard(session=session, area_code=area.code, as_of=day)
        kpis = {k.key: k.cell for k in board.kpis}
        for table in board.tables:
            if table.key in ("ratios", "change"):
                continue
            for row in [*table.rows, *([table.total_row] if table.total_row else [])]:
                for cell in [*row.cells, *([row.total] if row.total else [])]:
                    assert cell.value is None or cell.value >= 5, (area.code, table.key)
                    shown_as_suppressed += cell.suppressed
            for row in table.rows:
                if row.label in ("年龄不详", "区划不明", "未知") and row.total is not None:
                    assert not row.total.suppressed, (area.code, table.key, row.label)
            if "未知" in table.columns and table.total_row and table.total_row.cells:
                assert not table.total_row.cells[table.columns.index("未知")].suppressed, (
                    area.code,
                    table.key,
                )
        for child in board.table("sub_areas").rows if board.children else []:
            if child.code:
                page = build_dashboard(session=session, area_code=child.code, as_of=day)
                assert child.total == next(k.cell for k in page.kpis if k.key == "population")
        lineage = build_lineage(session=session, area_code=area.code, as_of=day, indicator="floating")
        assert lineage.population == kpis["floating"]
        change = board.table("change").rows[-1].cells
        earlier = build_dashboard(session=session, area_code=area.code, as_of=board.year_earlier)
        assert change[1] == next(k.cell for k in earlier.kpis if k.key == "population")
    month_end = build_dashboard(session=session, area_code="", as_of=date(2026, 5, 31))
    trend = {r.label: r.total for r in city.table("trend").rows}
    assert trend["2026-05月末"] == next(k.cell for k in month_end.kpis if k.key == "population")
    assert shown_as_suppressed > 50
    # A window total of one month is that month's count: one value, not a second draw of the same count.
    one_month = build_dashboard(session=session, area_code="", as_of=day, months=1).table("flows")
    assert one_month.total_row is not None and one_month.total_row.cells == one_month.rows[-1].cells
    every = build_dashboard(session=session, area_code="", as_of=day, months=60).table("flows")
    since = build_dashboard(session=session, area_code="", as_of=day, months=19).table("flows")
    assert every.total_row == since.total_row  # both windows sum the months from the epoch (2025-01)


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
