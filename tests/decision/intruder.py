"""An intruder's linear-programming audit of everything the decision platform publishes for one date.

The intruder collects every count published for the date (each area's dashboard in several months
variants, and the lineage of every indicator), writes each as a linear expression over unknown
counts (the residents of each community by type, sex and age band; each community's floating
residents by province; type counts on other days; flows; lineage record counts), adds what the method
publicly tells about a published number (protection.true_range), and then, for each protected cell
(true count 1..threshold-1), minimises and maximises its expression with HiGHS: the
interval of true values consistent with everything published.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise

import highspy
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from decision import aggregates, indicators, protection
from decision.dimensions import AGE_BAND_LOWER, POPULATION_TYPES, SEXES, UNKNOWN_BAND, parse_pop_cell
from decision.indicators import ALL, LINEAGE_INDICATORS, Key, month_back, year_earlier
from decision.schemas import StatCell

Atom = tuple[Hashable, ...]
Expr = dict[int, int]  # variable index -> coefficient
TYPES = [*POPULATION_TYPES, ""]
SEX_CODES = [*SEXES, ""]
BANDS = [*range(len(AGE_BAND_LOWER)), UNKNOWN_BAND]


@dataclass
class Audit:
    """The unknowns, the published numbers as constraints, and the protected cells."""

    communities: list[str]
    # The largest noise the intruder allows for (the method's, unless he bets the rarest draws away).
    max_noise: int
    # The types, sexes and bands the city's page shows (one it does not show is known to be empty).
    types: list[str]
    sexes: list[str]
    bands: list[int]
    variables: dict[Atom, int] = field(default_factory=dict)
    rows: list[tuple[Expr, float, float]] = field(default_factory=list)  # lo <= expr <= hi
    row_names: list[str] = field(default_factory=list)  # the published number behind each row, as shown
    equalities: list[Expr] = field(default_factory=list)  # expr == 0 (relations the intruder knows)
    protected: dict[tuple[tuple[int, int], ...], tuple[str, Hashable, int]] = field(default_factory=dict)
    published: int = 0
    balances: int = (
        0  # relations between flows and stocks or up the hierarchy, added (_balance, _flow_hierarchy)
    )
    unbalanced: int = 0  # such relations left out: they do not hold on the true counts

    def var(self, atom: Atom) -> int:
        """The index of an unknown (created on first use)."""
        return self.variables.setdefault(atom, len(self.variables))

    def members(self, area: str) -> list[str]:
        """The community-level units an area's counts sum: its communities, and for the city also
        the residents of no known community ('')."""
        inside = [c for c in self.communities if c.startswith(area)]
        return [*inside, ""] if area == "" else inside

    def over(self, area: str, family: str, details: Iterable[Hashable]) -> Expr:
        """The sum of a family's unknowns over an area's units and the given details."""
        out: Expr = defaultdict(int)
        for unit in self.members(area):
            for d in details:
                out[self.var((family, unit, d))] += 1
        return out

    def pop(self, area: str, ptype: str, sex: str, bands: object) -> Expr:
        """Residents of an area on the date by type, sex and bands (ALL for any)."""
        details = [
            (t, s, b)
            for t in self.types
            for s in self.sexes
            for b in self.bands
            if ptype in (ALL, t) and sex in (ALL, s) and (bands == ALL or b in bands)  # type: ignore[operator]
        ]
        return self.over(area, "x", details)

    def types_on(self, area: str, day: date, ptype: str) -> Expr:
        """Residents of an area by type on another day than the date (one unknown per type, unit, day)."""
        return self.over(area, ("type", day), self.types if ptype == ALL else [ptype])  # type: ignore[arg-type]

    def publish(self, name: str, expr: Expr, cell: StatCell, true: int, threshold: int) -> None:
        """A published number: what it tells about the true count, and whether that count is protected."""
        self.published += 1
        bounds = protection.true_range(cell, threshold, self.max_noise)
        if bounds is not None:
            self.rows.append((dict(expr), bounds[0], bounds[1]))
            self.row_names.append(f"{name} 显示 {cell.display}")
        if 0 < true < threshold:
            self.protected.setdefault(tuple(sorted(expr.items())), (name, cell.display, true))


def expression(audit: Audit, area: str, key: Hashable, as_of: date) -> Expr:
    """A dashboard key of an area as an expression over the unknowns."""
    assert isinstance(key, tuple)
    kind = key[0]
    if kind == "pop":
        return audit.pop(area, key[1], key[2], key[3])
    if kind == "origin":
        return audit.over(area, "origin", [key[1]])
    if kind == "earlier":
        return audit.types_on(area, year_earlier(as_of), key[1])
    if kind == "trend":
        return audit.types_on(area, aggregates.next_month(key[1]) - timedelta(days=1), key[2])
    if kind == "child":
        code, ptype = key[1], key[2]
        if code != "~":
            return audit.pop(code, ptype, ALL, ALL)
        rest = audit.pop(area, ptype, ALL, ALL)
        length = indicators.CHILD_LENGTH[len(area)]
        for child in {c[:length] for c in audit.communities if c.startswith(area)}:
            for i, v in audit.pop(child, ptype, ALL, ALL).items():
                rest[i] = rest.get(i, 0) - v
        return {i: v for i, v in rest.items() if v}
    if kind == "flow":
        return {audit.var(("flow", area, key[1], key[2])): 1}
    raise AssertionError(f"unknown key {key}")


def relations(audit: Audit) -> None:
    """What the intruder knows holds between the unknowns: each unit's floating residents are the sum
    of their provinces of origin."""
    provinces = {a[2] for a in audit.variables if a[0] == "origin"}
    for unit in [*audit.communities, ""]:
        expr: Expr = {audit.var(("x", unit, ("floating", s, b))): 1 for s in audit.sexes for b in audit.bands}
        for p in provinces:
            expr[audit.var(("origin", unit, p))] = -1
        audit.equalities.append(expr)


def collect(
    session: Session,
    *,
    as_of: date,
    threshold: int,
    months: Iterable[int] = (1, 12, 60),
    max_noise: int = protection.MAX_NOISE,
) -> Audit:
    """Every count published for the date, at every area level, months variant and lineage indicator,
    read with bounds of +-max_noise."""
    communities = list(session.scalars(text("SELECT code FROM area WHERE level = 'community' ORDER BY code")))
    areas = [
        "",
        *session.scalars(text("SELECT code FROM area WHERE level <> 'community' ORDER BY code")),
        *communities,
    ]
    # Every type, sex and age band is an unknown: a page leaves out the column of unknown type (or sex),
    # the row of unknown age or of no known area below it only when its count is suppressed (below).
    audit = Audit(communities, max_noise, types=TYPES, sexes=SEX_CODES, bands=BANDS)
    window = aggregates.read_window(session)
    assert window is not None
    truth = _truth(session, audit, as_of, window.epoch)
    truths: dict[tuple[str, Key], int] = {}
    for area in areas:
        for m in months:
            flow_months: dict[Hashable, list[int]] = defaultdict(list)
            window_totals = []
            counts = indicators.published_counts(
                session=session, area_code=area, as_of=as_of, threshold=threshold, months=m
            )
            for count in counts:
                key = count.key
                truths[area, key] = count.true
                if key[0] == "flow" and key[1] == ALL:  # the window's total: a sum of the months shown
                    first = month_back(as_of.replace(day=1), m - 1)
                    expr = {audit.var(("flowsum", area, key[2], first)): 1}
                    window_totals.append((expr, key[2]))
                else:
                    expr = expression(audit, area, key, as_of)
                    if key[0] == "flow":
                        flow_months[key[2]].append(audit.var(("flow", area, key[1], key[2])))
                audit.publish(f"{area or '全市'} {key}", expr, count.cell, count.true, threshold)
            shown = {count.key for count in counts}
            for key in OPTIONAL:
                if key not in shown and (key[0] != "child" or len(area) < len(communities[0])):
                    hidden = StatCell(value=None, suppressed=True, display="（未列出）")
                    audit.publish(
                        f"{area or '全市'} {key}", expression(audit, area, key, as_of), hidden, -1, threshold
                    )
            for expr, kind in window_totals:
                audit.equalities.append({**expr, **{i: -1 for i in flow_months[kind]}})
            if m == max(months):
                _balance(audit, area, as_of, truths)
        for indicator, (label, ptype, sex, lo, hi) in LINEAGE_INDICATORS.items():
            lineage = indicators.build_lineage(
                session=session, area_code=area, as_of=as_of, indicator=indicator, threshold=threshold
            )
            bands = (
                ALL
                if lo is None
                else tuple(i for i, b in enumerate(AGE_BAND_LOWER) if b >= lo and (hi is None or b <= hi))
            )
            expr = audit.pop(area, ptype or ALL, sex or ALL, bands)
            true = sum(v * truth.get(i, 0) for i, v in expr.items())
            audit.publish(f"{area or '全市'} 溯源 {label}", expr, lineage.population, true, threshold)
            _lineage_records(audit, area, indicator, lineage, threshold)
    relations(audit)
    _flow_hierarchy(audit, areas, truths)
    return audit


# The counts of a page's optional rows and columns: residents of unknown type, sex or age, and those of
# no known area one level down (pages with areas below). Left out, they are known to be suppressed.
OPTIONAL: tuple[Key, ...] = (
    ("pop", "", ALL, ALL),
    ("pop", ALL, "", ALL),
    ("pop", ALL, ALL, (UNKNOWN_BAND,)),
    ("child", "~", ALL),
)

SIGNS = {"birth": 1, "in": 1, "death": -1, "out": -1, "other": -1}


def _balance(audit: Audit, area: str, as_of: date, truths: dict[tuple[str, Key], int]) -> None:
    """Residents change by the month's flows: an intruder's relation between the trend's month ends and
    the flows of consecutive months with data, and between the last month end and the date (whose
    month's flows run to it). Added where it holds on the true counts; audit.unbalanced counts where it
    does not (e.g. a backdated correction)."""
    stocks: list[tuple[date, Key]] = sorted(
        (k[1], k)
        for (a, k) in truths
        if a == area and k[0] == "trend" and k[2] == ALL and isinstance(k[1], date)
    )
    stocks.append((as_of.replace(day=1), indicators.pop_key()))
    for (_, before), (month, now) in pairwise(stocks):
        flows = [("flow", month, kind) for kind in SIGNS]
        if any((area, k) not in truths for k in [before, now, *flows]):
            continue
        change = truths[area, now] - truths[area, before]
        if change != sum(SIGNS[str(k[2])] * truths[area, k] for k in flows):
            audit.unbalanced += 1
            continue
        expr: Expr = defaultdict(int)
        for i, v in expression(audit, area, now, as_of).items():
            expr[i] += v
        for i, v in expression(audit, area, before, as_of).items():
            expr[i] -= v
        for k in flows:
            expr[audit.var(("flow", area, month, k[2]))] -= SIGNS[str(k[2])]
        audit.equalities.append(dict(expr))
        audit.balances += 1


ADDITIVE_FLOWS = ("birth", "death", "other")


def _flow_hierarchy(audit: Audit, areas: list[str], truths: dict[tuple[str, Key], int]) -> None:
    """Flows up the area hierarchy: an area's births, deaths and other removals in a month are its
    sub-areas', and so is its net move (a move between two sub-areas is in for one and out for the
    other); the city's also those of residents of no known community (unknowns of their own). Added
    where they hold on the true counts (audit.unbalanced counts where they do not)."""
    months = {k[1] for (_, k) in truths if k[0] == "flow" and isinstance(k[1], date)}
    for area in areas:
        if len(area) not in indicators.CHILD_LENGTH:
            continue
        length = indicators.CHILD_LENGTH[len(area)]
        children = [c for c in areas if len(c) == length and c.startswith(area)]
        for month in sorted(months):
            keys = {kind: ("flow", month, kind) for kind in SIGNS}
            if any((a, k) not in truths for a in [area, *children] for k in keys.values()):
                continue
            for kinds in [*(((k, 1),) for k in ADDITIVE_FLOWS), (("in", 1), ("out", -1))]:
                expr: Expr = defaultdict(int)
                total = 0
                for kind, sign in kinds:
                    expr[audit.var(("flow", area, month, kind))] += sign
                    total += sign * truths[area, keys[kind]]
                    for child in children:
                        expr[audit.var(("flow", child, month, kind))] -= sign
                        total -= sign * truths[child, keys[kind]]
                    if area == "":
                        expr[audit.var(("flow", "~", month, kind))] -= sign
                if area != "" and total != 0:
                    audit.unbalanced += 1
                    continue
                audit.equalities.append(dict(expr))
                audit.balances += 1


def _truth(session: Session, audit: Audit, as_of: date, epoch: date) -> dict[int, int]:
    """The true residents of each unit by type, sex and band (to tell which lineage numbers are protected)."""
    cells = aggregates.cells_at(session, cube="pop", areas=["", *audit.communities], day=as_of, epoch=epoch)
    truth: dict[int, int] = defaultdict(int)
    for area, counts in cells.items():
        for cell, n in counts.items():
            t, s, b = parse_pop_cell(cell)
            if area:
                truth[audit.var(("x", area, (t, s, b)))] += n
            truth[audit.var(("x", "", (t, s, b)))] += n if not area else -n
    return truth


def _lineage_records(audit: Audit, area: str, indicator: str, lineage: object, threshold: int) -> None:
    """Record counts per batch, feed and department: unknowns of their own, summing up the tree."""
    for dept in lineage.departments:  # type: ignore[attr-defined]
        dept_var = audit.var(("lin", area, indicator, "dept", dept.code))
        dept_sum: Expr = {dept_var: -1}
        for source in dept.sources:
            source_var = audit.var(("lin", area, indicator, "source", source.source))
            dept_sum[source_var] = 1
            source_sum: Expr = {source_var: -1}
            for b in source.batches:
                batch_var = audit.var(("lin", area, indicator, "batch", b.batch_id))
                source_sum[batch_var] = 1
                audit.publish(f"{area} 溯源批次 {b.batch_id}", {batch_var: 1}, b.records, -1, threshold)
                audit.publish(
                    f"{area} 溯源版本 {b.batch_id}",
                    {audit.var(("lin", area, indicator, "versions", b.batch_id)): 1},
                    b.versions,
                    -1,
                    threshold,
                )
            audit.equalities.append(source_sum)
            audit.publish(f"{area} 溯源数据源", {source_var: 1}, source.records, -1, threshold)
        audit.equalities.append(dept_sum)
        audit.publish(f"{area} 溯源部门", {dept_var: 1}, dept.records, -1, threshold)


@dataclass(frozen=True)
class Finding:
    """A protected cell and the interval of true values the intruder derives for it."""

    name: str
    shown: Hashable
    true: int
    low: float
    high: float
    # For a cell narrowed to one count: the published numbers whose bounds the two programs end on
    # (nonzero duals), and how many of the intruder's own relations (equalities) take part.
    binding: tuple[str, ...] = ()
    relations: int = 0

    @property
    def feasible(self) -> bool:
        """Whether any true counts fit the intruder's bounds (not when he took the noise to be smaller than it is)."""
        return self.low <= self.high

    @property
    def holds_truth(self) -> bool:
        """Whether the interval holds the true count: only then has the intruder learnt something true."""
        return self.low - 1e-6 <= self.true <= self.high + 1e-6

    @property
    def width(self) -> float:
        """How wide the interval is (0: the cell is recovered exactly)."""
        return self.high - self.low

    @property
    def candidates(self) -> int:
        """How many whole counts the interval holds (1: recovered exactly, counts being whole; 0: none)."""
        if not self.feasible:
            return 0
        return int(min(self.high, 10**6) + 1e-6) - int(np.ceil(self.low - 1e-6)) + 1


def attack(audit: Audit) -> list[Finding]:
    """The feasible interval of every protected cell: two linear programs each (HiGHS, the model of the
    cell's connected block of unknowns built once and re-solved from the last basis with the cell's
    objective; the relations split the unknowns into independent blocks)."""
    parent = list(range(len(audit.variables)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(expr: Iterable[int]) -> None:
        members = list(expr)
        for i in members[1:]:
            parent[find(i)] = find(members[0])

    for expr, _, _ in audit.rows:
        join(expr)
    for expr in audit.equalities:
        join(expr)
    for items in audit.protected:
        join(i for i, _ in items)
    blocks: dict[int, list[int]] = defaultdict(list)
    for i in range(len(parent)):
        blocks[find(i)].append(i)
    solvers: dict[int, Block] = {}
    findings: list[Finding] = []
    for items, (name, shown, true) in audit.protected.items():
        root = find(items[0][0])
        if root not in solvers:
            solvers[root] = Block(audit, blocks[root], root, find)
        block = solvers[root]
        low, low_binding = block.solve(items, 1.0)
        if low is None:  # no true counts fit his bounds: the noise is larger than he took it to be
            findings.append(Finding(name, shown, true, np.inf, -np.inf))
            continue
        high, high_binding = block.solve(items, -1.0)
        assert high is not None
        if len(findings) % 10 == 0:  # every tenth cell solved again from scratch: the warm solves must agree
            assert np.isclose(low, block.cold(items, 1.0), atol=1e-6), name
            assert np.isclose(high, block.cold(items, -1.0), atol=1e-6), name
        finding = Finding(name, shown, true, low, -high)
        if finding.candidates < 2:
            names = {
                f"{audit.row_names[r]} ⇒ [{audit.rows[r][1]:g}, {audit.rows[r][2]:g}]": None
                for r in (*low_binding, *high_binding)
                if r >= 0
            }
            relations = sum(r < 0 for r in (*low_binding, *high_binding))
            finding = Finding(name, shown, true, low, -high, tuple(names), relations)
        findings.append(finding)
    return findings


class Block:
    """One block's linear program (HiGHS): its unknowns (>= 0), the published numbers' rows (lo <= expr
    <= hi) and the relations (expr == 0), solved for one objective after another."""

    def __init__(self, audit: Audit, members: list[int], root: int, find: Callable[[int], int]) -> None:
        self.local = {v: k for k, v in enumerate(members)}
        rows: list[tuple[Expr, float, float, int]] = []  # expr, lo, hi, audit row (-1: a relation)
        for r, (expr, lo, hi) in enumerate(audit.rows):
            if expr and find(next(iter(expr))) == root:
                rows.append((expr, lo, hi, r))
        for expr in audit.equalities:
            if expr and find(next(iter(expr))) == root:
                rows.append((expr, 0.0, 0.0, -1))
        self.sources = [r for *_, r in rows]
        lp = highspy.HighsLp()
        lp.num_col_ = len(members)
        lp.num_row_ = len(rows)
        lp.col_cost_ = np.zeros(len(members))
        lp.col_lower_ = np.zeros(len(members))
        lp.col_upper_ = np.full(len(members), highspy.kHighsInf)
        lp.row_lower_ = np.array([lo if np.isfinite(lo) else -highspy.kHighsInf for _, lo, _, _ in rows])
        lp.row_upper_ = np.array([hi if np.isfinite(hi) else highspy.kHighsInf for _, _, hi, _ in rows])
        starts, index, value = [0], [], []
        for expr, *_ in rows:
            for i, v in expr.items():
                index.append(self.local[i])
                value.append(float(v))
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value)
        self.lp = lp  # kept with its arrays for the checks from scratch
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        # Each solve starts from the last basis, which stays feasible when only the objective changes:
        # the primal simplex, without presolve.
        self.highs.setOptionValue("presolve", "off")
        self.highs.setOptionValue("simplex_strategy", 4)
        self.highs.passModel(lp)
        self.costed = np.zeros(0, dtype=np.int32)  # the columns the last objective set

    def _objective(self, items: tuple[tuple[int, int], ...], sign: float) -> tuple[np.ndarray, np.ndarray]:
        """The block's columns of an expression and their costs (sign * coefficient)."""
        columns = np.array([self.local[i] for i, _ in items], dtype=np.int32)
        return columns, np.array([sign * v for _, v in items], dtype=float)

    def cold(self, items: tuple[tuple[int, int], ...], sign: float) -> float:
        """The same minimum, solved from scratch with HiGHS's defaults (a check on the warm solves)."""
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.passModel(self.lp)
        columns, costs = self._objective(items, sign)
        highs.changeColsCost(len(columns), columns, costs)
        highs.run()
        if highs.getModelStatus() == highspy.HighsModelStatus.kUnbounded:
            return -np.inf
        return float(highs.getInfo().objective_function_value)

    def solve(self, items: tuple[tuple[int, int], ...], sign: float) -> tuple[float | None, list[int]]:
        """The minimum of sign * the expression, and the rows that bind it (nonzero duals; -1: a relation);
        None when the bounds contradict each other."""
        columns, costs = self._objective(items, sign)
        self.highs.changeColsCost(len(self.costed), self.costed, np.zeros(len(self.costed)))
        self.highs.changeColsCost(len(columns), columns, costs)
        self.costed = columns
        self.highs.run()
        status = self.highs.getModelStatus()
        if status == highspy.HighsModelStatus.kUnbounded:
            return -np.inf, []
        if status == highspy.HighsModelStatus.kInfeasible:
            return None, []
        assert status == highspy.HighsModelStatus.kOptimal, self.highs.modelStatusToString(status)
        duals = np.asarray(self.highs.getSolution().row_dual)
        binding = [self.sources[j] for j in np.nonzero(np.abs(duals) > 1e-9)[0]]
        return float(self.highs.getInfo().objective_function_value), binding
