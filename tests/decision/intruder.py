"""An intruder's linear-programming audit of everything the decision platform publishes for one date.

The intruder collects every count published for the date (each area's dashboard in several months
variants, and the lineage of every indicator), writes each as a linear expression over unknown
counts (the residents of each community by type, sex and age band; each community's floating
residents by province; type counts on other days; flows; lineage record counts), adds what the method
publicly tells about a published number (protection.true_range), and then, for each protected cell
(true count 1..threshold-1), minimises and maximises its expression with scipy's linprog: the
interval of true values consistent with everything published.
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array
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
    balances: int = 0  # relations month-end change = flows added
    unbalanced: int = 0  # month pairs where that relation does not hold on the true counts

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
        bounds = protection.true_range(cell, threshold)
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


def collect(session: Session, *, as_of: date, threshold: int, months: Iterable[int] = (1, 12, 60)) -> Audit:
    """Every count published for the date, at every area level, months variant and lineage indicator."""
    communities = list(session.scalars(text("SELECT code FROM area WHERE level = 'community' ORDER BY code")))
    areas = [
        "",
        *session.scalars(text("SELECT code FROM area WHERE level <> 'community' ORDER BY code")),
        *communities,
    ]
    # Every type, sex and age band is an unknown: a page leaves out the column of unknown type (or sex),
    # the row of unknown age or of no known area below it only when its count is suppressed (below).
    audit = Audit(communities, types=TYPES, sexes=SEX_CODES, bands=BANDS)
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
    """Month-end residents change by the month's flows: an intruder's relation between the trend and the
    flows of consecutive months with data (added where it holds on the true counts; audit.unbalanced
    counts where it does not, e.g. a backdated correction)."""
    months: list[date] = sorted(
        k[1] for (a, k) in truths if a == area and k[0] == "trend" and k[2] == ALL and isinstance(k[1], date)
    )
    for before, month in pairwise(months):
        flows = [("flow", month, kind) for kind in SIGNS]
        if any((area, k) not in truths for k in flows):
            continue
        change = truths[area, ("trend", month, ALL)] - truths[area, ("trend", before, ALL)]
        if change != sum(SIGNS[str(k[2])] * truths[area, k] for k in flows):
            audit.unbalanced += 1
            continue
        expr: Expr = defaultdict(int)
        for i, v in expression(audit, area, ("trend", month, ALL), as_of).items():
            expr[i] += v
        for i, v in expression(audit, area, ("trend", before, ALL), as_of).items():
            expr[i] -= v
        for k in flows:
            expr[audit.var(("flow", area, month, k[2]))] -= SIGNS[str(k[2])]
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
    def width(self) -> float:
        """How wide the interval is (0: the cell is recovered exactly)."""
        return self.high - self.low

    @property
    def candidates(self) -> int:
        """How many whole counts the interval holds (1: recovered exactly, counts being whole)."""
        return int(min(self.high, 10**6) + 1e-6) - int(np.ceil(self.low - 1e-6)) + 1


def attack(audit: Audit) -> list[Finding]:
    """The feasible interval of every protected cell: two linear programs each, over the connected
    block of unknowns it belongs to (the relations split into independent blocks: residents, each
    other day's type counts, each area's flows, each lineage tree)."""
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
    systems: dict[int, System] = {}
    findings = []
    for items, (name, shown, true) in audit.protected.items():
        root = find(items[0][0])
        if root not in systems:
            systems[root] = _system(audit, blocks[root], root, find)
        local, a_ub, b_ub, a_eq, _ = systems[root]
        c = np.zeros(len(local))
        for i, v in items:
            c[local[i]] = v
        eq = {"A_eq": a_eq, "b_eq": np.zeros(a_eq.shape[0])} if a_eq is not None else {}  # type: ignore[attr-defined]
        low = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs", **eq)
        high = linprog(-c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs", **eq)
        assert low.status == 0 and high.status in (0, 3), (name, low.message, high.message)
        finding = Finding(name, shown, true, low.fun, np.inf if high.status == 3 else -high.fun)
        if finding.candidates < 2:
            finding = _binding(audit, finding, systems[root], low, high)
        findings.append(finding)
    return findings


def _binding(audit: Audit, finding: Finding, system: "System", low: object, high: object) -> Finding:
    """The finding with the published numbers and relations that pin it (nonzero duals of either program)."""
    rows = system[4]
    names: dict[str, None] = {}
    relations = 0
    for res in (low, high):
        for j in np.nonzero(np.abs(res.ineqlin.marginals) > 1e-9)[0]:  # type: ignore[attr-defined]
            r = rows[j // 2]
            names[f"{audit.row_names[r]} ⇒ [{audit.rows[r][1]:g}, {audit.rows[r][2]:g}]"] = None
        if getattr(res, "eqlin", None) is not None and len(res.eqlin.marginals):  # type: ignore[attr-defined]
            relations += int(np.count_nonzero(np.abs(res.eqlin.marginals) > 1e-9))  # type: ignore[attr-defined]
    return Finding(
        finding.name, finding.shown, finding.true, finding.low, finding.high, tuple(names), relations
    )


# One block's unknowns (global -> local index), A_ub, b_ub, A_eq, and the audit row behind each pair of A_ub rows.
System = tuple[dict[int, int], object, np.ndarray, object, list[int]]


def _system(audit: Audit, members: list[int], root: int, find: object) -> System:
    """The constraints of one block, over its own unknowns numbered from 0."""
    local = {v: k for k, v in enumerate(members)}
    ub_rows: list[Expr] = []
    ub_rhs: list[float] = []
    sources: list[int] = []
    for r, (expr, lo, hi) in enumerate(audit.rows):
        if expr and find(next(iter(expr))) == root:  # type: ignore[operator]
            sources.append(r)
            ub_rows.append({local[i]: v for i, v in expr.items()})
            ub_rhs.append(hi)
            ub_rows.append({local[i]: -v for i, v in expr.items()})
            ub_rhs.append(-lo)
    eq_rows = [
        {local[i]: v for i, v in expr.items()}
        for expr in audit.equalities
        if expr and find(next(iter(expr))) == root  # type: ignore[operator]
    ]
    n = len(members)
    a_eq = _matrix(eq_rows, n) if eq_rows else None
    return local, _matrix(ub_rows, n), np.array(ub_rhs), a_eq, sources


def _matrix(rows: list[Expr], n: int) -> csr_array:
    data, cols, ptr = [], [], [0]
    for row in rows:
        for i, v in row.items():
            cols.append(i)
            data.append(float(v))
        ptr.append(len(cols))
    return csr_array((np.array(data), np.array(cols, dtype=np.int64), np.array(ptr)), shape=(len(rows), n))
