"""Indicators of one area on one date, as published tables: read the aggregates, suppress, format.

Every number of a page is a cell with a key; the same quantity has the same key in every table, so
suppression is decided once for the whole page (all its tables and the relations between them).
"""

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision import aggregates, service
from decision.dimensions import (
    CHILDREN,
    ELDERLY,
    FIVE_YEAR_GROUPS,
    OLD,
    POPULATION_TYPES,
    SCHOOL_AGE_LABELS,
    SCHOOL_AGES,
    SEXES,
    UNKNOWN,
    UNKNOWN_BAND,
    WORKING,
    AgeRange,
    parse_pop_cell,
)
from decision.provinces import province_name
from decision.schemas import (
    SUPPRESSED_MARK,
    AreaOut,
    Dashboard,
    Kpi,
    Lineage,
    LineageBatch,
    LineageDepartment,
    LineageSource,
    StatCell,
    StatRow,
    StatTable,
)
from decision.suppression import DEFAULT_THRESHOLD, suppress
from schemas.canonical import AreaLevel, FlowKind

Key = tuple[Hashable, ...]
GridRow = tuple[str, str | None, list[Key]]  # label, area code to drill into, interior keys
ALL = "*"
LEVEL_OF_LENGTH = {0: "city", 6: "district", 9: "street", 12: "community"}
LEVEL_NAMES = {level.value: level.label for level in AreaLevel}
CHILD_LENGTH = {0: 6, 6: 9, 9: 12}
FLOW_KINDS = {kind.value: kind.label for kind in FlowKind}
CITY = AreaOut(code="", name="全市", level="city")


class OutOfWindowError(ValueError):
    """The date is outside the days the aggregates cover."""


class NotBuiltError(RuntimeError):
    """The aggregates have never been built."""


class UnknownAreaError(LookupError):
    """No area has this code."""


def year_earlier(day: date) -> date:
    """The same day a year before (28 February for a 29 February)."""
    return (
        day.replace(year=day.year - 1, day=28)
        if (day.month, day.day) == (2, 29)
        else day.replace(year=day.year - 1)
    )


def month_back(month: date, n: int) -> date:
    """The first day of the month n months before month's."""
    index = month.year * 12 + month.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def find_area(session: Session, code: str) -> AreaOut:
    """The area with this code ('' is the city)."""
    if code == "":
        return CITY
    row = session.execute(
        text("SELECT code, name, level FROM area WHERE code = :c"), {"c": code}
    ).one_or_none()
    if row is None:
        raise UnknownAreaError(code)
    return AreaOut(code=row[0], name=row[1], level=row[2])


def area_path(session: Session, area: AreaOut) -> list[AreaOut]:
    """The city, then each ancestor of the area, then the area."""
    codes = [area.code[:n] for n in (6, 9) if len(area.code) > n]
    rows = session.execute(
        text("SELECT code, name, level FROM area WHERE code = ANY(:c) ORDER BY length(code)"), {"c": codes}
    )
    return [CITY, *(AreaOut(code=c, name=n, level=lv) for c, n, lv in rows), *([area] if area.code else [])]


def child_areas(session: Session, area: AreaOut) -> list[AreaOut]:
    """The areas one level down, by code."""
    if area.level == "community":
        return []
    if area.code == "":
        sql, params = "SELECT code, name, level FROM area WHERE level = 'district' ORDER BY code", {}
    else:
        sql, params = (
            "SELECT code, name, level FROM area WHERE parent_code = :c ORDER BY code",
            {"c": area.code},
        )
    return [AreaOut(code=c, name=n, level=lv) for c, n, lv in session.execute(text(sql), params)]


@dataclass
class Grid:
    """A table under construction: its cells as keys; values and suppression come later."""

    key: str
    title: str
    row_header: str
    columns: list[str]
    rows: list[GridRow]
    row_totals: list[Key] | None = None
    col_totals: list[Key] | None = None
    grand_total: Key | None = None
    total_label: str | None = "合计"
    note: str | None = None

    def lines(self) -> list[list[Key]]:
        """Rows with their totals, columns with their totals, and the margins."""
        out: list[list[Key]] = []
        if self.row_totals is not None:
            out += [[*keys, total] for (_, _, keys), total in zip(self.rows, self.row_totals, strict=True)]
            if self.grand_total is not None:
                out.append([*self.row_totals, self.grand_total])
        if self.col_totals is not None:
            out += [[r[2][j] for r in self.rows] + [total] for j, total in enumerate(self.col_totals)]
            if self.grand_total is not None:
                out.append([*self.col_totals, self.grand_total])
        return out

    def cell_keys(self) -> Iterable[Key]:
        """Every key shown."""
        for _, _, keys in self.rows:
            yield from keys
        yield from self.row_totals or ()
        yield from self.col_totals or ()
        if self.grand_total is not None:
            yield self.grand_total


@dataclass
class Page:
    """The values of one area on one date and the grids that publish them."""

    pop: dict[tuple[str, str, int], int]
    values: dict[Key, int] = field(default_factory=dict)
    grids: list[Grid] = field(default_factory=list)
    extra_lines: list[list[Key]] = field(default_factory=list)

    def value(self, key: Key) -> int:
        """The count behind a key (computed from the population cells for 'pop' keys)."""
        if key not in self.values and key[0] == "pop":
            _, population_type, sex, bands = key
            total = 0
            for (t, s, b), n in self.pop.items():
                if population_type in (ALL, t) and sex in (ALL, s) and (bands == ALL or b in bands):  # type: ignore[operator]
                    total += n
            self.values[key] = total
        return self.values.get(key, 0)


def pop_key(
    population_type: str = ALL, sex: str = ALL, ages: AgeRange | tuple[int, ...] | None = None
) -> Key:
    """The key of a resident count; ages as a range, a tuple of band indexes, or None for all ages."""
    bands = ALL if ages is None else (ages.bands if isinstance(ages, AgeRange) else ages)
    return ("pop", population_type, sex, bands)


def _age_lines(sexes: list[str]) -> tuple[list[list[Key]], set[Key]]:
    """Relations between age ranges, per sex: a range is the sum of its five-year groups, and the
    ranges that cut groups are sums of single bands (hidden unless published)."""
    lines: list[list[Key]] = []
    singles: set[Key] = set()
    for sex in [*sexes, ALL]:
        for rng in (CHILDREN, WORKING, OLD, *ELDERLY):
            groups = [g for g in FIVE_YEAR_GROUPS if set(g.bands) <= set(rng.bands)]
            lines.append([*(pop_key(ALL, sex, g) for g in groups), pop_key(ALL, sex, rng)])
        for rng in (*FIVE_YEAR_GROUPS[:4], *SCHOOL_AGES):
            if len(rng.bands) > 1:
                parts = [pop_key(ALL, sex, (b,)) for b in rng.bands]
                singles.update(parts)
                lines.append([*parts, pop_key(ALL, sex, rng)])
    return lines, singles


def _cell(value: int | float | None, suppressed: bool) -> StatCell:
    if suppressed:
        return StatCell(value=None, suppressed=True, display=SUPPRESSED_MARK)
    if value is None:
        return StatCell(value=None, display="—")
    if isinstance(value, float):
        return StatCell(value=round(value, 1), display=f"{value:.1f}")
    return StatCell(value=value, display=str(value))


def build_dashboard(
    *, session: Session, area_code: str, as_of: date, threshold: int = DEFAULT_THRESHOLD, months: int = 12
) -> Dashboard:
    """Every indicator of an area on a date, suppressed for publication."""
    window = aggregates.read_window(session)
    if window is None:
        raise NotBuiltError("决策分析汇总表尚未生成")
    if not window.epoch <= as_of < window.horizon:
        raise OutOfWindowError(f"日期须在 {window.epoch} 至 {window.horizon - timedelta(days=1)} 之间")
    area = find_area(session, area_code)
    children = child_areas(session, area)
    earlier = year_earlier(as_of)
    has_earlier = earlier >= window.epoch

    pop_rows = aggregates.cells_at(session, cube="pop", areas=[area.code], day=as_of, epoch=window.epoch)[
        area.code
    ]
    page = Page(pop={parse_pop_cell(c): n for c, n in pop_rows.items()})
    child_rows = aggregates.cells_at(
        session, cube="type", areas=[c.code for c in children], day=as_of, epoch=window.epoch
    )
    origin_rows = aggregates.cells_at(
        session, cube="origin", areas=[area.code], day=as_of, epoch=window.epoch
    )[area.code]
    earlier_rows = (
        aggregates.cells_at(session, cube="type", areas=[area.code], day=earlier, epoch=window.epoch)[
            area.code
        ]
        if has_earlier
        else {}
    )
    this_month = as_of.replace(day=1)
    first_month = month_back(this_month, months - 1)
    trend_rows = aggregates.month_end_totals(
        session,
        area=area.code,
        first=month_back(this_month, months),
        last=month_back(this_month, 1),
        epoch=window.epoch,
    )
    flow_rows = aggregates.flows_between(session, area=area.code, first=first_month, last=this_month)

    types = [*POPULATION_TYPES, *([""] if any(t == "" for t, _, _ in page.pop) else [])]
    sexes = [*SEXES, *([""] if any(s == "" for _, s, _ in page.pop) else [])]
    type_label = {**POPULATION_TYPES, "": UNKNOWN}
    sex_label = {**SEXES, "": UNKNOWN}
    total = pop_key()

    page.grids.append(
        Grid(
            "type_sex",
            "常住人口：类型与性别",
            "人口类型",
            [sex_label[s] for s in sexes],
            [(type_label[t], None, [pop_key(t, s) for s in sexes]) for t in types],
            row_totals=[pop_key(t) for t in types],
            col_totals=[pop_key(ALL, s) for s in sexes],
            grand_total=total,
        )
    )
    groups: list[tuple[str, tuple[int, ...]]] = [(g.label, g.bands) for g in FIVE_YEAR_GROUPS]
    if page.value(pop_key(ages=(UNKNOWN_BAND,))):
        groups.append(("年龄不详", (UNKNOWN_BAND,)))
    page.grids.append(
        Grid(
            "pyramid",
            "年龄金字塔（5岁组）",
            "年龄组",
            [sex_label[s] for s in sexes],
            [(label, None, [pop_key(ALL, s, bands) for s in sexes]) for label, bands in groups],
            row_totals=[pop_key(ALL, ALL, bands) for _, bands in groups],
            col_totals=[pop_key(ALL, s) for s in sexes],
            grand_total=total,
        )
    )
    special = [(SCHOOL_AGE_LABELS[r.key], r) for r in SCHOOL_AGES] + [(r.label, r) for r in ELDERLY]
    page.grids.append(
        Grid(
            "school_elderly",
            "学龄人口与老年人口",
            "年龄段",
            [sex_label[s] for s in sexes],
            [(label, None, [pop_key(ALL, s, r) for s in sexes]) for label, r in special],
            row_totals=[pop_key(ALL, ALL, r) for _, r in special],
        )
    )
    structure = [
        ("少儿人口（0-14岁）", CHILDREN.bands),
        ("劳动年龄人口（15-64岁）", WORKING.bands),
        ("老年人口（65岁及以上）", OLD.bands),
    ]
    if page.value(pop_key(ages=(UNKNOWN_BAND,))):
        structure.append(("年龄不详", (UNKNOWN_BAND,)))
    page.grids.append(
        Grid(
            "age_structure",
            "年龄结构",
            "年龄段",
            ["人数"],
            [(label, None, [pop_key(ALL, ALL, bands)]) for label, bands in structure],
            col_totals=[total],
        )
    )
    provinces = sorted(origin_rows, key=lambda p: (-origin_rows[p], p))
    for p in provinces:
        page.values["origin", p] = origin_rows[p]
    page.grids.append(
        Grid(
            "origin",
            "流动人口来源地（省份）",
            "户籍地省份",
            ["人数"],
            [(province_name(p), None, [("origin", p)]) for p in provinces],
            col_totals=[pop_key("floating")],
            note="按身份证号前两位，或流动人口登记的户籍地区划代码",
        )
    )
    if children:
        rest = {
            t: page.value(pop_key(t)) - sum(child_rows[c.code].get(t, 0) for c in children) for t in types
        }
        sub_rows: list[GridRow] = [(c.name, c.code, [("child", c.code, t) for t in types]) for c in children]
        for c in children:
            for t in types:
                page.values["child", c.code, t] = child_rows[c.code].get(t, 0)
            page.values["child", c.code, ALL] = sum(child_rows[c.code].values())
        if any(rest.values()):
            sub_rows.append(("区划不明", None, [("child", "~", t) for t in types]))
            for t in types:
                page.values["child", "~", t] = rest[t]
            page.values["child", "~", ALL] = sum(rest.values())
        level_name = LEVEL_NAMES[children[0].level]
        page.grids.append(
            Grid(
                "sub_areas",
                f"下辖{level_name}常住人口",
                level_name,
                [type_label[t] for t in types],
                sub_rows,
                row_totals=[("child", r[1] or "~", ALL) for r in sub_rows],
                col_totals=[pop_key(t) for t in types],
                grand_total=total,
            )
        )
    trend_months = [
        m for m in sorted(trend_rows) if aggregates.next_month(m) - timedelta(days=1) >= window.epoch
    ]
    for m in trend_months:
        for t in types:
            page.values["trend", m, t] = trend_rows[m].get(t, 0)
        page.values["trend", m, ALL] = sum(trend_rows[m].values())
    trend_grid_rows: list[GridRow] = [
        (f"{m:%Y-%m}月末", None, [("trend", m, t) for t in types]) for m in trend_months
    ]
    trend_grid_rows.append((f"{as_of:%Y-%m-%d}", None, [pop_key(t) for t in types]))
    page.grids.append(
        Grid(
            "trend",
            "常住人口月末趋势",
            "时点",
            [type_label[t] for t in types],
            trend_grid_rows,
            row_totals=[*(("trend", m, ALL) for m in trend_months), total],
        )
    )
    flow_months = [month_back(this_month, i) for i in range(months - 1, -1, -1)]
    flow_months = [m for m in flow_months if aggregates.next_month(m) > window.epoch]
    for m in flow_months:
        for kind in FLOW_KINDS:
            page.values["flow", m, kind] = flow_rows.get(m, {}).get(kind, 0)
    for kind in FLOW_KINDS:
        page.values["flow", ALL, kind] = sum(page.values["flow", m, kind] for m in flow_months)
    page.grids.append(
        Grid(
            "flows",
            "人口变动（按月）",
            "月份",
            list(FLOW_KINDS.values()),
            [(f"{m:%Y-%m}", None, [("flow", m, k) for k in FLOW_KINDS]) for m in flow_months],
            col_totals=[("flow", ALL, k) for k in FLOW_KINDS],
            note="迁入、迁出按本区域边界计；注销合并指重复记录合并等注销",
        )
    )
    if has_earlier:
        for t in types:
            page.values["earlier", t] = earlier_rows.get(t, 0)
        page.values["earlier", ALL] = sum(earlier_rows.values())
        page.extra_lines.append([*(("earlier", t) for t in types), ("earlier", ALL)])

    age_lines, singles = _age_lines(sexes)
    lines = [line for g in page.grids for line in g.lines()] + age_lines + page.extra_lines
    published = {k for g in page.grids for k in g.cell_keys()} | {
        ("earlier", t) for t in [*types, ALL] if has_earlier
    }
    hidden = singles - published
    for line in lines:
        for k in line:
            page.value(k)
    result = suppress(page.values, lines, hidden=hidden, threshold=threshold)
    hide = result.suppressed

    def cell(key: Key) -> StatCell:
        return _cell(page.value(key), key in hide)

    tables = [_table(g, cell) for g in page.grids]
    change = _change_table(types, type_label, page, hide, has_earlier, earlier)
    ratios, kpis = _ratios(page, hide, has_earlier)
    tables.insert(3, ratios)
    tables.insert(4, change)
    return Dashboard(
        area=area,
        path=area_path(session, area),
        children=children,
        as_of=as_of,
        year_earlier=earlier,
        epoch=window.epoch,
        horizon=window.horizon,
        threshold=threshold,
        kpis=kpis,
        tables=tables,
    )


def _table(grid: Grid, cell: Callable[[Key], StatCell]) -> StatTable:
    rows = [
        StatRow(
            label=label,
            code=code,
            cells=[cell(k) for k in keys],
            total=cell(grid.row_totals[i]) if grid.row_totals is not None else None,
        )
        for i, (label, code, keys) in enumerate(grid.rows)
    ]
    total_row = None
    if grid.col_totals is not None:
        total_row = StatRow(
            label="合计",
            cells=[cell(k) for k in grid.col_totals],
            total=cell(grid.grand_total)
            if grid.grand_total is not None and grid.row_totals is not None
            else None,
        )
    return StatTable(
        key=grid.key,
        title=grid.title,
        row_header=grid.row_header,
        columns=grid.columns,
        rows=rows,
        total_label=grid.total_label if grid.row_totals is not None else None,
        total_row=total_row,
        note=grid.note,
    )


def _ratio(
    page: Page, hide: frozenset[Hashable], numerator: list[Key], denominator: list[Key], scale: float = 100.0
) -> StatCell:
    """A ratio is published only when every count it is made of is published and the denominator is not 0."""
    if any(k in hide for k in (*numerator, *denominator)):
        return _cell(None, True)
    den = sum(page.value(k) for k in denominator)
    return _cell(scale * sum(page.value(k) for k in numerator) / den if den else None, False)


def _ratios(page: Page, hide: frozenset[Hashable], has_earlier: bool) -> tuple[StatTable, list[Kpi]]:
    children, working, old, total = (
        pop_key(ages=CHILDREN),
        pop_key(ages=WORKING),
        pop_key(ages=OLD),
        pop_key(),
    )
    male, female = pop_key(ALL, "1"), pop_key(ALL, "2")
    over60 = pop_key(ages=ELDERLY[0])
    figures = [
        ("dependency", "总抚养比", _ratio(page, hide, [children, old], [working]), "%"),
        ("dependency_child", "少儿抚养比", _ratio(page, hide, [children], [working]), "%"),
        ("dependency_old", "老年抚养比", _ratio(page, hide, [old], [working]), "%"),
        ("sex_ratio", "性别比（女=100）", _ratio(page, hide, [male], [female]), ""),
        ("ageing_60", "60岁及以上人口占比", _ratio(page, hide, [over60], [total]), "%"),
        ("ageing_65", "65岁及以上人口占比", _ratio(page, hide, [old], [total]), "%"),
    ]
    table = StatTable(
        key="ratios",
        title="抚养比、性别比与老龄化",
        row_header="指标",
        columns=["数值"],
        rows=[
            StatRow(label=label + (f"（{unit}）" if unit else ""), cells=[c]) for _, label, c, unit in figures
        ],
        note="抚养比 = 非劳动年龄人口 / 15-64岁人口 × 100；任一组成人数被抑制时不发布",
    )
    change = _ratio(page, hide, [total], [("earlier", ALL)]) if has_earlier else _cell(None, False)
    kpis = [
        Kpi(key="population", label="常住人口", cell=_cell(page.value(total), total in hide), unit="人"),
        *(
            Kpi(
                key=t, label=f"{label}人口", cell=_cell(page.value(pop_key(t)), pop_key(t) in hide), unit="人"
            )
            for t, label in POPULATION_TYPES.items()
        ),
        Kpi(
            key="change",
            label="较上年同期",
            cell=_cell(None if change.value is None else float(change.value) - 100.0, change.suppressed),
            unit="%",
        ),
        *(
            Kpi(key=k, label=label, cell=c, unit=unit)
            for k, label, c, unit in figures
            if k in ("sex_ratio", "dependency", "ageing_60")
        ),
    ]
    return table, kpis


def _change_table(
    types: list[str],
    type_label: dict[str, str],
    page: Page,
    hide: frozenset[Hashable],
    has_earlier: bool,
    earlier: date,
) -> StatTable:
    rows = []
    for t in [*types, ALL]:
        now_key, before_key = pop_key(t), ("earlier", t)
        now = _cell(page.value(now_key), now_key in hide)
        if not has_earlier:
            cells = [now, _cell(None, False), _cell(None, False), _cell(None, False)]
        else:
            before = _cell(page.value(before_key), before_key in hide)
            either = now.suppressed or before.suppressed
            diff = page.value(now_key) - page.value(before_key)
            pct = 100.0 * diff / page.value(before_key) if page.value(before_key) else None
            cells = [now, before, _cell(diff, either), _cell(pct, either)]
        rows.append(StatRow(label="常住人口合计" if t == ALL else type_label[t], cells=cells))
    return StatTable(
        key="change",
        title="较上年同期变化",
        row_header="人口类型",
        columns=["本期", f"上年同期（{earlier:%Y-%m-%d}）", "增减", "增减率（%）"],
        rows=rows,
        note=None if has_earlier else "上年同期早于统计起始日，无可比数据",
    )


# Lineage can be asked for these subgroups: label, type, sex, ages from, ages to.
LINEAGE_INDICATORS: dict[str, tuple[str, str | None, str | None, int | None, int | None]] = {
    "population": ("常住人口", None, None, None, None),
    **{t: (f"{label}人口", t, None, None, None) for t, label in POPULATION_TYPES.items()},
    **{f"sex-{s}": (f"{label}性", None, s, None, None) for s, label in SEXES.items()},
    **{r.key: (r.label, None, None, r.lo, r.hi) for r in (CHILDREN, WORKING, *SCHOOL_AGES, *ELDERLY)},
}


def build_lineage(
    *, session: Session, area_code: str, as_of: date, indicator: str, threshold: int = DEFAULT_THRESHOLD
) -> Lineage:
    """Departments → feeds → batches behind a number, as record counts, suppressed like any table."""
    label, population_type, sex, age_from, age_to = LINEAGE_INDICATORS[indicator]
    area = find_area(session, area_code)
    population, rows = service.lineage(
        session=session,
        area=area.code,
        as_of=as_of,
        population_type=population_type,
        sex=sex,
        age_from=age_from,
        age_to=age_to,
    )
    values: dict[Key, int] = {("population",): population}
    lines: list[list[Key]] = []
    departments: dict[str, dict[str, list[service.LineageRow]]] = {}
    for row in rows:
        departments.setdefault(row.department_code, {}).setdefault(row.source, []).append(row)
        values["batch", row.batch_id] = row.records
        values["versions", row.batch_id] = row.versions
    for dept, sources in departments.items():
        for source, batches in sources.items():
            values["source", source] = sum(b.records for b in batches)
            lines.append([*(("batch", b.batch_id) for b in batches), ("source", source)])
        values["dept", dept] = sum(values["source", s] for s in sources)
        lines.append([*(("source", s) for s in sources), ("dept", dept)])
    hide = suppress(values, lines, threshold=threshold).suppressed

    def cell(key: Key) -> StatCell:
        return _cell(values[key], key in hide)

    return Lineage(
        area=area,
        as_of=as_of,
        indicator=label,
        population=cell(("population",)),
        departments=[
            LineageDepartment(
                code=dept,
                name=next(iter(sources.values()))[0].department_name or dept,
                records=cell(("dept", dept)),
                sources=[
                    LineageSource(
                        source=source,
                        title=batches[0].feed_title,
                        records=cell(("source", source)),
                        batches=[
                            LineageBatch(
                                batch_id=b.batch_id,
                                file_name=b.file_name,
                                as_of_date=b.as_of_date,
                                records=cell(("batch", b.batch_id)),
                                versions=cell(("versions", b.batch_id)),
                            )
                            for b in batches
                        ],
                    )
                    for source, batches in sources.items()
                ],
            )
            for dept, sources in departments.items()
        ],
    )
