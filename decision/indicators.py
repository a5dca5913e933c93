"""Indicators of one area on one date, as published tables: read the aggregates, perturb, format.

Every number of a page is a cell with a key; a key names what it counts, and the same quantity gets
the same published value wherever it appears (decision/protection.py: the cell-key perturbation
hashes its definition and count), on this page and on every other.
"""

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from decision import aggregates, protection, service
from decision.dimensions import (
    AGE_BAND_LOWER,
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
from decision.protection import DEFAULT_THRESHOLD
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
from schemas.canonical import AreaLevel, FlowKind, PopulationType, Sex

Key = tuple[Hashable, ...]
GridRow = tuple[str, str | None, list[Key]]  # label, area code to drill into, interior keys
ALL = "*"
LEVEL_OF_LENGTH = {0: "city", 6: "district", 9: "street", 12: "community"}
LEVEL_NAMES = {level.value: level.label for level in AreaLevel}
CHILD_LENGTH = {0: 6, 6: 9, 9: 12}
FLOW_KINDS = {kind.value: kind.label for kind in FlowKind}
CITY = AreaOut(code="", name="全市", level="city")
ALL_BANDS = frozenset({*range(len(AGE_BAND_LOWER)), UNKNOWN_BAND})
NO_DATA: tuple[str] = ("nodata",)  # a cell of a month before the data begin


class OutOfWindowError(ValueError):
    """The date is outside the days the aggregates cover."""


class NotBuiltError(RuntimeError):
    """The aggregates have never been built."""


class UnknownAreaError(LookupError):
    """No area has this code."""


class AfterDataError(ValueError):
    """The date is after the data: what happened since has not been delivered yet."""


def data_until(session: Session) -> date | None:
    """The day the statistics are complete to: the latest data date of a batch in the aggregates (or,
    when none came in batches, the latest day a version starts); None before any data."""
    until: date | None = session.scalar(
        text(
            "SELECT coalesce((SELECT max(b.as_of_date) FROM decision.applied_batch a"
            " JOIN batch b ON b.id = a.batch_id), (SELECT max(valid_from) FROM person_version))"
        )
    )
    return until


def data_since(session: Session) -> date | None:
    """The first day the statistics can tell: the data date of the first batch in the aggregates (a
    department's first extract lists who was there, not who had left before), or an earlier day a
    version written outside any batch starts (a clerk's); None before any data."""
    since: date | None = session.scalar(
        text(
            "SELECT least((SELECT min(b.as_of_date) FROM decision.applied_batch a JOIN batch b ON b.id = a.batch_id),"
            " (SELECT min(valid_from) FROM person_version WHERE batch_id IS NULL))"
        )
    )
    return since


def check_not_after_data(day: date, until: date | None) -> None:
    """Refuse a date after the data (AfterDataError, with the reason in Chinese)."""
    if until is not None and day > until:
        raise AfterDataError(
            f"统计日期 {day} 晚于数据截至日 {until}：此后的出生、死亡、迁入迁出尚未报送，无法统计。"
            f"请选择 {until} 或更早的日期。"
        )


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
    """A table under construction: its cells as keys; values and their protection come later."""

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
    """The counts of one area on one date by key: residents by type, sex and age band, and what the
    tables add (origins, sub-areas, trend, flows, a year before)."""

    pop: dict[tuple[str, str, int], int]
    values: dict[Key, int] = field(default_factory=dict)

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


def _cell(value: int | float | None, suppressed: bool) -> StatCell:
    if suppressed:
        return StatCell(value=None, suppressed=True, display=SUPPRESSED_MARK)
    if value is None:
        return StatCell(value=None, display="—")
    if isinstance(value, float):
        return StatCell(value=round(value, 1), display=f"{value:.1f}")
    return StatCell(value=value, display=str(value))


TYPE_LABELS = {**POPULATION_TYPES, "": UNKNOWN}
SEX_LABELS = {**SEXES, "": UNKNOWN}


@dataclass(frozen=True)
class Scope:
    """What a dashboard is of: an area and the areas one level down, on a date inside the aggregates' window,
    with the population types and sexes its residents have ('' last when some are not known)."""

    area: AreaOut
    children: list[AreaOut]
    as_of: date
    window: aggregates.Window
    months: int
    types: list[str]
    sexes: list[str]
    secret: str  # the cell keys' (decision.publication)
    threshold: int  # counts perturbed below it are shown suppressed
    data_since: date | None = None

    def shows(self, page: "Page", key: Key) -> bool:
        """Whether a count is published as a number (perturbed to the threshold or more). An optional row
        or column (unknown type, sex or age, area not known) is shown only then: its absence tells no
        more than a suppressed cell would."""
        return not Published(self, page).hidden(key)

    @property
    def earlier(self) -> date:
        """The same day a year before."""
        return year_earlier(self.as_of)

    @property
    def has_earlier(self) -> bool:
        """Whether the data reach back to the day a year before."""
        return self.earlier >= self.since

    @property
    def since(self) -> date:
        """The first day with data: the later of the aggregates' epoch and the first batch's date."""
        return max(self.window.epoch, self.data_since or self.window.epoch)

    @property
    def this_month(self) -> date:
        """The first day of the date's month."""
        return self.as_of.replace(day=1)


@dataclass(frozen=True)
class Published:
    """The page's counts as published: each perturbed by its cell key, shown as suppressed below the threshold."""

    scope: Scope
    page: Page

    def count(self, key: Key) -> int:
        """The published (perturbed) count behind a key."""
        area_code, definition = _definition(self.scope, key)
        n = self.page.value(key)
        return protection.perturb(n, protection.cell_key(self.scope.secret, area_code, definition, n))

    def hidden(self, key: Key) -> bool:
        """Whether the count is shown as suppressed: perturbed below the threshold, a true 0 included,
        so that a suppressed cell never tells that someone is there."""
        return self.count(key) < self.scope.threshold

    def cell(self, key: Key) -> StatCell:
        """The count behind a key, as shown ("无数据" before the data begin)."""
        if key == NO_DATA:
            return StatCell(value=None, display="无数据")
        return _cell(self.count(key), self.hidden(key))

    def ratio(self, numerator: Sequence[Key], denominator: Sequence[Key], scale: float = 100.0) -> StatCell:
        """A ratio of published counts, shown only when none of them is suppressed and the denominator is not 0."""
        if any(self.hidden(k) for k in (*numerator, *denominator)):
            return _cell(None, True)
        den = sum(self.count(k) for k in denominator)
        return _cell(scale * sum(self.count(k) for k in numerator) / den if den else None, False)


def _definition(scope: Scope, key: Key) -> tuple[str, Key]:
    """What a key counts, as (area, definition): the same definition wherever the quantity appears
    (a year-earlier or month-end count of a type is that type's count on another day; a sub-area's
    count is that area's own), so that it gets the same cell key and published value."""
    area, kind = scope.area.code, key[0]
    if kind == "pop":
        bands = key[3]
        if isinstance(bands, tuple) and set(bands) >= ALL_BANDS:
            bands = ALL
        return area, ("pop", key[1], key[2], bands)
    if kind == "trend":
        return area, pop_key(str(key[2]))
    if kind == "earlier":
        return area, pop_key(str(key[1]))
    if kind == "child" and key[1] != "~":
        return str(key[1]), pop_key(str(key[2]))
    if kind == "flow" and key[1] == ALL:
        # The window's total sums the months with data in it: defined by those months, so that every
        # months variant summing the same months, and a total of one month and that month's own cell,
        # are one quantity with one published value (not two draws an intruder could intersect).
        first = max(month_back(scope.this_month, scope.months - 1), scope.since.replace(day=1))
        if first == scope.this_month:
            return area, ("flow", first, key[2])
        return area, ("flow", (first, scope.this_month), key[2])
    return area, key


@dataclass(frozen=True)
class Ratio:
    """A published ratio of counts: numerator / denominator × 100."""

    key: str
    label: str
    numerator: tuple[Key, ...]
    denominator: tuple[Key, ...]
    unit: str = "%"


RATIOS = (
    Ratio("dependency", "总抚养比", (pop_key(ages=CHILDREN), pop_key(ages=OLD)), (pop_key(ages=WORKING),)),
    Ratio("dependency_child", "少儿抚养比", (pop_key(ages=CHILDREN),), (pop_key(ages=WORKING),)),
    Ratio("dependency_old", "老年抚养比", (pop_key(ages=OLD),), (pop_key(ages=WORKING),)),
    Ratio(
        "sex_ratio",
        "性别比（女=100）",
        (pop_key(ALL, Sex.MALE.value),),
        (pop_key(ALL, Sex.FEMALE.value),),
        "",
    ),
    Ratio("ageing_60", "60岁及以上人口占比", (pop_key(ages=ELDERLY[0]),), (pop_key(),)),
    Ratio("ageing_65", "65岁及以上人口占比", (pop_key(ages=OLD),), (pop_key(),)),
)
HEADLINE_RATIOS = ("dependency", "sex_ratio", "ageing_60")


def build_dashboard(
    *,
    session: Session,
    area_code: str,
    as_of: date,
    threshold: int = DEFAULT_THRESHOLD,
    months: int = 12,
    until: date | None = None,
) -> Dashboard:
    """Every indicator of an area on a date, protected for publication (until: the data's last day,
    shown with it; a later date is refused)."""
    return _build(session, area_code, as_of, threshold, months, until)[0]


@dataclass(frozen=True)
class PublishedCount:
    """A count the dashboard publishes (in a table or a headline), by key: its true value and what is shown."""

    key: Key
    true: int
    cell: StatCell


def published_counts(
    *, session: Session, area_code: str, as_of: date, threshold: int = DEFAULT_THRESHOLD, months: int = 12
) -> list[PublishedCount]:
    """Every count of the dashboard with its true value: what a disclosure audit attacks."""
    _, published, keys = _build(session, area_code, as_of, threshold, months, None)
    return [PublishedCount(k, published.page.value(k), published.cell(k)) for k in keys if k != NO_DATA]


def _build(
    session: Session, area_code: str, as_of: date, threshold: int, months: int, until: date | None
) -> tuple[Dashboard, "Published", list[Key]]:
    check_not_after_data(as_of, until)
    window = _window(session, as_of)
    area = find_area(session, area_code)
    secret = protection.cell_key_secret(session)
    scope, page = _read_scope(session, area, as_of, window, months, secret, threshold)
    grids = {g.key: g for build in GRIDS if (g := build(session, scope, page)) is not None}
    earlier_line = _earlier_line(session, scope, page)
    published = Published(scope, page)
    tables = {key: _table(grid, published.cell) for key, grid in grids.items()}
    tables.update((t.key, t) for t in (build(scope, published) for build in DERIVED_TABLES))
    board = Dashboard(
        area=area,
        path=area_path(session, area),
        children=scope.children,
        as_of=as_of,
        year_earlier=scope.earlier,
        epoch=window.epoch,
        horizon=window.horizon,
        data_since=scope.since,
        data_until=until,
        threshold=threshold,
        max_noise=protection.MAX_NOISE,
        kpis=_kpis(scope, published),
        tables=[tables[key] for key in TABLE_ORDER if key in tables],
    )
    keys = list(dict.fromkeys([*(k for g in grids.values() for k in g.cell_keys()), *earlier_line]))
    return board, published, keys


def _window(session: Session, as_of: date) -> aggregates.Window:
    """The aggregates' window, which must hold the date."""
    window = aggregates.read_window(session)
    if window is None:
        raise NotBuiltError("决策分析汇总表尚未生成")
    if not window.epoch <= as_of < window.horizon:
        raise OutOfWindowError(f"日期须在 {window.epoch} 至 {window.horizon - timedelta(days=1)} 之间")
    return window


def _read_scope(
    session: Session,
    area: AreaOut,
    as_of: date,
    window: aggregates.Window,
    months: int,
    secret: str,
    threshold: int,
) -> tuple[Scope, Page]:
    """The area's residents on the date by type, sex and age band, and the scope they give the dashboard:
    the column of residents of unknown type (or sex) only when its published count is a number."""
    cells = aggregates.cells_at(session, cube="pop", areas=[area.code], day=as_of, epoch=window.epoch)
    page = Page(pop={parse_pop_cell(c): n for c, n in cells[area.code].items()})
    scope = Scope(
        area=area,
        children=child_areas(session, area),
        as_of=as_of,
        window=window,
        months=months,
        types=[*POPULATION_TYPES, ""],
        sexes=[*SEXES, ""],
        data_since=data_since(session),
        secret=secret,
        threshold=threshold,
    )
    return replace(
        scope,
        types=[t for t in scope.types if t or scope.shows(page, pop_key(t))],
        sexes=[s for s in scope.sexes if s or scope.shows(page, pop_key(ALL, s))],
    ), page


def _unknown_age(scope: Scope, page: Page) -> list[tuple[str, tuple[int, ...]]]:
    """The row of residents whose age is not known, when its published count is a number."""
    key = pop_key(ages=(UNKNOWN_BAND,))
    return [("年龄不详", (UNKNOWN_BAND,))] if scope.shows(page, key) else []


def _type_sex(session: Session, scope: Scope, page: Page) -> Grid:
    """Residents by population type and sex."""
    return Grid(
        "type_sex",
        "常住人口：类型与性别",
        "人口类型",
        [SEX_LABELS[s] for s in scope.sexes],
        [(TYPE_LABELS[t], None, [pop_key(t, s) for s in scope.sexes]) for t in scope.types],
        row_totals=[pop_key(t) for t in scope.types],
        col_totals=[pop_key(ALL, s) for s in scope.sexes],
        grand_total=pop_key(),
    )


def _pyramid(session: Session, scope: Scope, page: Page) -> Grid:
    """Residents by five-year age group and sex."""
    groups = [(g.label, g.bands) for g in FIVE_YEAR_GROUPS] + _unknown_age(scope, page)
    return Grid(
        "pyramid",
        "年龄金字塔（5岁组）",
        "年龄组",
        [SEX_LABELS[s] for s in scope.sexes],
        [(label, None, [pop_key(ALL, s, bands) for s in scope.sexes]) for label, bands in groups],
        row_totals=[pop_key(ALL, ALL, bands) for _, bands in groups],
        col_totals=[pop_key(ALL, s) for s in scope.sexes],
        grand_total=pop_key(),
    )


def _school_elderly(session: Session, scope: Scope, page: Page) -> Grid:
    """Residents of school age and the elderly, by sex."""
    special = [(SCHOOL_AGE_LABELS[r.key], r) for r in SCHOOL_AGES] + [(r.label, r) for r in ELDERLY]
    return Grid(
        "school_elderly",
        "学龄人口与老年人口",
        "年龄段",
        [SEX_LABELS[s] for s in scope.sexes],
        [(label, None, [pop_key(ALL, s, r) for s in scope.sexes]) for label, r in special],
        row_totals=[pop_key(ALL, ALL, r) for _, r in special],
    )


def _age_structure(session: Session, scope: Scope, page: Page) -> Grid:
    """Children, working age and old."""
    structure = [
        ("少儿人口（0-14岁）", CHILDREN.bands),
        ("劳动年龄人口（15-64岁）", WORKING.bands),
        ("老年人口（65岁及以上）", OLD.bands),
        *_unknown_age(scope, page),
    ]
    return Grid(
        "age_structure",
        "年龄结构",
        "年龄段",
        ["人数"],
        [(label, None, [pop_key(ALL, ALL, bands)]) for label, bands in structure],
        col_totals=[pop_key()],
    )


def _origin(session: Session, scope: Scope, page: Page) -> Grid:
    """The floating population by the province of their household registration, the largest first."""
    code = scope.area.code
    counts = aggregates.cells_at(
        session, cube="origin", areas=[code], day=scope.as_of, epoch=scope.window.epoch
    )
    origin = counts[code]
    provinces = sorted(origin, key=lambda p: (-origin[p], p))
    for p in provinces:
        page.values["origin", p] = origin[p]
    return Grid(
        "origin",
        "流动人口来源地（省份）",
        "户籍地省份",
        ["人数"],
        [(province_name(p), None, [("origin", p)]) for p in provinces],
        col_totals=[pop_key(PopulationType.FLOATING.value)],
        note="按身份证号前两位，或流动人口登记的户籍地区划代码",
    )


def _sub_areas(session: Session, scope: Scope, page: Page) -> Grid | None:
    """Residents of each area one level down by type, and those whose area is not known below this one."""
    if not scope.children:
        return None
    types = scope.types
    counts = aggregates.cells_at(
        session,
        cube="type",
        areas=[c.code for c in scope.children],
        day=scope.as_of,
        epoch=scope.window.epoch,
    )
    rest = {t: page.value(pop_key(t)) - sum(counts[c.code].get(t, 0) for c in scope.children) for t in types}
    rows: list[GridRow] = [(c.name, c.code, [("child", c.code, t) for t in types]) for c in scope.children]
    for c in scope.children:
        page.values.update({("child", c.code, t): counts[c.code].get(t, 0) for t in types})
        page.values["child", c.code, ALL] = sum(counts[c.code].values())
    page.values.update({("child", "~", t): rest[t] for t in types})
    page.values["child", "~", ALL] = sum(rest.values())
    if scope.shows(page, ("child", "~", ALL)):
        rows.append(("区划不明", None, [("child", "~", t) for t in types]))
    level_name = LEVEL_NAMES[scope.children[0].level]
    return Grid(
        "sub_areas",
        f"下辖{level_name}常住人口",
        level_name,
        [TYPE_LABELS[t] for t in types],
        rows,
        row_totals=[("child", r[1] or "~", ALL) for r in rows],
        col_totals=[pop_key(t) for t in types],
        grand_total=pop_key(),
    )


def _trend(session: Session, scope: Scope, page: Page) -> Grid:
    """Residents by type at the end of each month before the date's (within the window), and on the date."""
    counts = aggregates.month_end_totals(
        session,
        area=scope.area.code,
        first=month_back(scope.this_month, scope.months),
        last=month_back(scope.this_month, 1),
        epoch=scope.window.epoch,
    )
    months = [m for m in sorted(counts) if aggregates.next_month(m) - timedelta(days=1) >= scope.window.epoch]
    for m in months:
        page.values.update({("trend", m, t): counts[m].get(t, 0) for t in scope.types})
        page.values["trend", m, ALL] = sum(counts[m].values())
    rows: list[GridRow] = [
        (f"{m:%Y-%m}月末", None, [("trend", m, t) if _has_data(scope, m) else NO_DATA for t in scope.types])
        for m in months
    ]
    rows.append((f"{scope.as_of:%Y-%m-%d}", None, [pop_key(t) for t in scope.types]))
    return Grid(
        "trend",
        "常住人口月末趋势",
        "时点",
        [TYPE_LABELS[t] for t in scope.types],
        rows,
        row_totals=[*(("trend", m, ALL) if _has_data(scope, m) else NO_DATA for m in months), pop_key()],
        note=None if scope.since <= scope.window.epoch else f"数据始于 {scope.since}，此前各月无数据",
    )


def _has_data(scope: Scope, month: date) -> bool:
    """Whether the data reach the end of the month (a month that ended before they begin has none)."""
    return aggregates.next_month(month) > scope.since


def _flows(session: Session, scope: Scope, page: Page) -> Grid:
    """Births, deaths, moves in and out and other removals in each month up to the date's (within the window)."""
    first = month_back(scope.this_month, scope.months - 1)
    counts = aggregates.flows_between(session, area=scope.area.code, first=first, last=scope.this_month)
    months = [month_back(scope.this_month, i) for i in range(scope.months - 1, -1, -1)]
    months = [m for m in months if aggregates.next_month(m) > scope.window.epoch]
    for m in months:
        page.values.update({("flow", m, kind): counts.get(m, {}).get(kind, 0) for kind in FLOW_KINDS})
    for kind in FLOW_KINDS:
        page.values["flow", ALL, kind] = sum(
            page.values["flow", m, kind] for m in months if _has_data(scope, m)
        )
    return Grid(
        "flows",
        "人口变动（按月）",
        "月份",
        list(FLOW_KINDS.values()),
        [
            (f"{m:%Y-%m}", None, [("flow", m, k) if _has_data(scope, m) else NO_DATA for k in FLOW_KINDS])
            for m in months
        ],
        col_totals=[("flow", ALL, k) for k in FLOW_KINDS],
        note="迁入、迁出按本区域边界计；注销合并指重复记录合并等注销",
    )


# The count tables, each built by its own function (None: nothing to show), in the order they are built.
GRIDS: tuple[Callable[[Session, Scope, Page], Grid | None], ...] = (
    _type_sex,
    _pyramid,
    _school_elderly,
    _age_structure,
    _origin,
    _sub_areas,
    _trend,
    _flows,
)


def _earlier_line(session: Session, scope: Scope, page: Page) -> list[Key]:
    """The residents by type a year before and their total (published in the change table), as a line;
    empty when the aggregates do not reach back that far."""
    if not scope.has_earlier:
        return []
    code = scope.area.code
    counts = aggregates.cells_at(
        session, cube="type", areas=[code], day=scope.earlier, epoch=scope.window.epoch
    )
    page.values.update({("earlier", t): counts[code].get(t, 0) for t in scope.types})
    page.values["earlier", ALL] = sum(counts[code].values())
    return [*(("earlier", t) for t in scope.types), ("earlier", ALL)]


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


def _ratios(scope: Scope, published: Published) -> StatTable:
    """Dependency ratios, the sex ratio and the elderly's shares."""
    return StatTable(
        key="ratios",
        title="抚养比、性别比与老龄化",
        row_header="指标",
        columns=["数值"],
        rows=[
            StatRow(
                label=r.label + (f"（{r.unit}）" if r.unit else ""),
                cells=[published.ratio(r.numerator, r.denominator)],
            )
            for r in RATIOS
        ],
        note="抚养比 = 非劳动年龄人口 / 15-64岁人口 × 100；任一组成人数被抑制时不发布",
    )


def _change(scope: Scope, published: Published) -> StatTable:
    """Residents by type now and a year before, the difference and its rate."""
    return StatTable(
        key="change",
        title="较上年同期变化",
        row_header="人口类型",
        columns=["本期", f"上年同期（{scope.earlier:%Y-%m-%d}）", "增减", "增减率（%）"],
        rows=[_change_row(scope, published, t) for t in [*scope.types, ALL]],
        note=None if scope.has_earlier else f"上年同期早于数据起始日 {scope.since}，无可比数据",
    )


def _change_row(scope: Scope, published: Published, population_type: str) -> StatRow:
    label = "常住人口合计" if population_type == ALL else TYPE_LABELS[population_type]
    now_key, before_key = pop_key(population_type), ("earlier", population_type)
    now = published.cell(now_key)
    if not scope.has_earlier:
        return StatRow(label=label, cells=[now, _cell(None, False), _cell(None, False), _cell(None, False)])
    before = published.cell(before_key)
    either = now.suppressed or before.suppressed
    now_count, before_count = published.count(now_key), published.count(before_key)
    diff = now_count - before_count
    pct = 100.0 * diff / before_count if before_count else None
    return StatRow(label=label, cells=[now, before, _cell(diff, either), _cell(pct, either)])


# The tables computed from published (perturbed) counts, each by its own function.
DERIVED_TABLES: tuple[Callable[[Scope, Published], StatTable], ...] = (_ratios, _change)
# The dashboard's tables by key, in the order it shows them ("sub_areas" only above the community).
TABLE_ORDER = (
    "type_sex",
    "pyramid",
    "school_elderly",
    "ratios",
    "change",
    "age_structure",
    "origin",
    "sub_areas",
    "trend",
    "flows",
)


def _kpis(scope: Scope, published: Published) -> list[Kpi]:
    """The headline figures: residents, each population type, the change on a year before, three ratios."""
    ratios = {r.key: r for r in RATIOS}
    return [
        _count_kpi(published, "population", "常住人口", pop_key()),
        *(_count_kpi(published, t, f"{label}人口", pop_key(t)) for t, label in POPULATION_TYPES.items()),
        _change_kpi(scope, published),
        *(_ratio_kpi(published, ratios[key]) for key in HEADLINE_RATIOS),
    ]


def _count_kpi(published: Published, key: str, label: str, count: Key) -> Kpi:
    return Kpi(key=key, label=label, cell=published.cell(count), unit="人")


def _change_kpi(scope: Scope, published: Published) -> Kpi:
    """Residents against a year before, in per cent more (or less)."""
    change = published.ratio([pop_key()], [("earlier", ALL)]) if scope.has_earlier else _cell(None, False)
    value = None if change.value is None else float(change.value) - 100.0
    return Kpi(key="change", label="较上年同期", cell=_cell(value, change.suppressed), unit="%")


def _ratio_kpi(published: Published, ratio: Ratio) -> Kpi:
    return Kpi(
        key=ratio.key,
        label=ratio.label,
        cell=published.ratio(ratio.numerator, ratio.denominator),
        unit=ratio.unit,
    )


# Lineage can be asked for these subgroups: label, type, sex, ages from, ages to.
LINEAGE_INDICATORS: dict[str, tuple[str, str | None, str | None, int | None, int | None]] = {
    "population": ("常住人口", None, None, None, None),
    **{t: (f"{label}人口", t, None, None, None) for t, label in POPULATION_TYPES.items()},
    **{f"sex-{s}": (f"{label}性", None, s, None, None) for s, label in SEXES.items()},
    **{r.key: (r.label, None, None, r.lo, r.hi) for r in (CHILDREN, WORKING, *SCHOOL_AGES, *ELDERLY)},
}


def build_lineage(
    *,
    session: Session,
    area_code: str,
    as_of: date,
    indicator: str,
    threshold: int = DEFAULT_THRESHOLD,
    until: date | None = None,
) -> Lineage:
    """Departments → feeds → batches behind a number, as record counts, suppressed like any table."""
    check_not_after_data(as_of, until)
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
    departments: dict[str, dict[str, list[service.LineageRow]]] = {}
    for row in rows:
        departments.setdefault(row.department_code, {}).setdefault(row.source, []).append(row)
        values["batch", row.batch_id] = row.records
        values["versions", row.batch_id] = row.versions
    for dept, sources in departments.items():
        for source, batches in sources.items():
            values["source", source] = sum(b.records for b in batches)
        values["dept", dept] = sum(values["source", s] for s in sources)
    secret = protection.cell_key_secret(session)
    # The population is the dashboard's count of the same subgroup: same definition, same published value.
    ages = None if age_from is None else AgeRange("", "", age_from, age_to)
    population_definition = pop_key(population_type or ALL, sex or ALL, ages)

    def cell(key: Key) -> StatCell:
        definition = population_definition if key == ("population",) else ("lineage", indicator, *key)
        n = protection.perturb(values[key], protection.cell_key(secret, area.code, definition, values[key]))
        return _cell(n, n < threshold)

    return Lineage(
        area=area,
        as_of=as_of,
        data_until=until,
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
