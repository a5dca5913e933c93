"""Response models of the decision API (the dashboard page renders the same objects)."""

from datetime import date

from pydantic import BaseModel, Field

SUPPRESSED_MARK = "*"


class StatCell(BaseModel):
    """One published number: its value, or None when suppressed or not defined."""

    value: int | float | None
    suppressed: bool = False
    display: str = Field(description="the value as shown: '*' when suppressed, '—' when not defined")


class StatRow(BaseModel):
    """A row of a table: label, optional area code to drill into, cells, optional row total."""

    label: str
    code: str | None = None
    cells: list[StatCell]
    total: StatCell | None = None


class StatTable(BaseModel):
    """A published table: every cell already checked for small counts."""

    key: str
    title: str
    row_header: str
    columns: list[str]
    rows: list[StatRow]
    total_label: str | None = Field(
        default=None, description="header of the row-total column, when there is one"
    )
    total_row: StatRow | None = None
    note: str | None = None


class AreaOut(BaseModel):
    """An area of the hierarchy; the city has code ''."""

    code: str
    name: str
    level: str


class Kpi(BaseModel):
    """A headline figure of the dashboard."""

    key: str
    label: str
    cell: StatCell
    unit: str = ""


class Dashboard(BaseModel):
    """Every indicator of one area on one date."""

    area: AreaOut
    path: list[AreaOut]
    children: list[AreaOut]
    as_of: date
    year_earlier: date
    epoch: date
    horizon: date
    data_since: date | None = Field(
        default=None, description="数据起始日：首批数据的日期；此前的月份显示为“无数据”，同比不跨越此日"
    )
    data_until: date | None = Field(
        default=None, description="数据截至日：已计入统计的最近一批数据的日期，此后的日期不予统计"
    )
    threshold: int
    max_noise: int = Field(description="扰动上限：每个公布数值与真实值之差不超过此数")
    kpis: list[Kpi]
    tables: list[StatTable]

    def table(self, key: str) -> StatTable:
        """The table with this key."""
        return next(t for t in self.tables if t.key == key)


class LineageBatch(BaseModel):
    """One batch behind a number: its linked source records and the versions in force it wrote."""

    batch_id: int
    file_name: str
    as_of_date: date
    records: StatCell
    versions: StatCell


class LineageSource(BaseModel):
    """One feed of a department."""

    source: str
    title: str
    records: StatCell
    batches: list[LineageBatch]


class LineageDepartment(BaseModel):
    """One member department and its feeds."""

    code: str
    name: str
    records: StatCell
    sources: list[LineageSource]


class Lineage(BaseModel):
    """Where the resident population of an area on a date (optionally a subgroup) comes from."""

    area: AreaOut
    as_of: date
    data_until: date | None = None
    indicator: str
    population: StatCell
    departments: list[LineageDepartment]


class ErrorOut(BaseModel):
    """An error with a stable code."""

    code: str
    message: str
