"""Counts are perturbed alike wherever they are published, small ones shown as suppressed; exports keep numbers."""

import csv
import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from decision import export, protection, service
from decision.indicators import (
    ALL,
    build_dashboard,
    build_lineage,
    child_areas,
    find_area,
    pop_key,
    published_counts,
)
from decision.schemas import StatCell, StatRow, StatTable
from tests.decision.conftest import random_batch, random_population


def test_perturbation_is_small_unbiased_and_keeps_zeros() -> None:
    keys = [i / 10_000 for i in range(10_000)]
    assert all(protection.perturb(0, k) == 0 for k in keys)
    noise = [protection.perturb(50, k) - 50 for k in keys]
    assert set(noise) == set(range(-protection.MAX_NOISE, protection.MAX_NOISE + 1))
    assert abs(sum(noise) / len(noise)) < 0.01
    assert min(protection.perturb(1, k) for k in keys) == 0  # a small count may show as 0
    for n in range(1, 6):  # unbiased, small counts included (a sum of many 1s is not pushed upwards)
        shown = [protection.perturb(n, k) for k in keys]
        assert min(shown) >= 0 and max(shown) <= n + protection.MAX_NOISE
        assert abs(sum(shown) / len(shown) - n) < 1e-9, n
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


def test_tables_and_the_area_hierarchy_add_up_among_published_values(
    session: Session, communities: list[str]
) -> None:
    """Every count of residents, births, deaths and removals is the sum of its unit cells' published values:
    a table's cells sum to its totals and an area's to its sub-areas' (and its 区划不明 row), a "*" included,
    while each published value stays within ±3 per unit cell of the truth. Moves are cells of their own."""
    people = random_population(session, communities, 400, seed=11)
    service.rebuild(session=session, epoch=date(2025, 1, 1), horizon=date(2028, 1, 1))
    for i, day in enumerate((date(2026, 2, 10), date(2026, 4, 10))):
        service.refresh_after_batch(
            session=session, batch_id=random_batch(session, people, communities, day=day, seed=i).id
        )
    day = date(2026, 4, 30)
    areas = [find_area(session, "")]
    areas += [c for a in areas for c in child_areas(session, a)]
    areas += [c for a in areas[1:] for c in child_areas(session, a)]
    areas += [c for a in areas if len(a.code) == 9 for c in child_areas(session, a)]
    pages = {
        a.code: {c.key: c for c in published_counts(session=session, area_code=a.code, as_of=day)}
        for a in areas
    }
    sums = 0
    for area in areas:
        page = pages[area.code]
        value = {k: c.published for k, c in page.items()}
        for t in ("registered", "floating", "foreign"):
            assert value[pop_key(t)] == sum(value.get(pop_key(t, s), 0) for s in ("1", "2", "")) or (
                pop_key(t, "") not in value  # the unknown-sex column left out: it is below 5
                and 0 <= value[pop_key(t)] - value[pop_key(t, "1")] - value[pop_key(t, "2")] < 5
            )
        children = [
            c
            for c in areas
            if c.code[: len(area.code)] == area.code and len(c.code) == CHILD.get(len(area.code))
        ]
        if children:
            rest = sum(c.published for k, c in page.items() if k[:2] == ("child", "~") and k[2] == ALL)
            below = sum(pages[c.code][pop_key()].published for c in children)
            assert value[pop_key()] == below + rest or (rest == 0 and 0 <= value[pop_key()] - below < 5)
            for key in [k for k in page if k[0] == "flow" and k[2] in ("birth", "death", "other")]:
                if area.code:  # the city has births of residents of no known community besides
                    assert value[key] == sum(pages[c.code][key].published for c in children), (area.code, key)
                    sums += 1
        for key, count in page.items():
            if key[0] == "pop" and key[1:] == (ALL, ALL, ALL):
                assert abs(count.published - count.true) <= 3 * max(1, count.true)
    assert sums > 50


CHILD = {0: 6, 6: 9, 9: 12}


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
