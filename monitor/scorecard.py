"""Scorecards for the monthly and yearly evaluation of member units, per department and per community.

Department: on-time rate of its feeds' daily files, rejection rate of their rows, corrections (a day's
file sent again with other content) and duplicates (the same file delivered again, plus rows repeating
an earlier line of their file). Community: its records across all feeds, the rejection rate, corrections
(records of changes, 信息变更) and duplicate rows; on-time clearance awaits the collection platform.
"""

import io
from dataclasses import dataclass
from datetime import date, datetime

import openpyxl
from openpyxl.styles import Font
from sqlalchemy import text
from sqlalchemy.orm import Session

from base.tabular import safe_cell
from monitor import timeliness


@dataclass(frozen=True)
class Period:
    """A month (2026-11) or a year (2026)."""

    start: date
    end: date
    label: str

    @classmethod
    def parse(cls, value: str) -> "Period":
        """'YYYY' or 'YYYY-MM'; ValueError otherwise."""
        if len(value) == 4:
            year = int(value)
            return cls(date(year, 1, 1), date(year, 12, 31), f"{year}年")
        year, month = (int(p) for p in value.split("-"))
        first = date(year, month, 1)
        last = date(year + month // 12, month % 12 + 1, 1).toordinal() - 1
        return cls(first, date.fromordinal(last), f"{year}年{month}月")


@dataclass
class DepartmentScore:
    """One department's figures over the period."""

    code: str
    name: str
    tally: timeliness.Tally
    rows_received: int = 0
    rows_rejected: int = 0
    corrections: int = 0
    duplicates: int = 0

    @property
    def rejection_rate(self) -> float | None:
        """Rejected share of the rows received."""
        return self.rows_rejected / self.rows_received if self.rows_received else None


@dataclass(frozen=True)
class CommunityScore:
    """One community's records over the period."""

    code: str
    name: str
    records: int
    rejected: int
    corrections: int
    duplicates: int

    @property
    def rejection_rate(self) -> float | None:
        """Rejected share of the community's records."""
        return self.rejected / self.records if self.records else None


@dataclass
class Scorecard:
    """Both tables of a period."""

    period: Period
    departments: list[DepartmentScore]
    communities: list[CommunityScore]


def build(*, session: Session, period: Period, now: datetime, expected_from: date | None = None) -> Scorecard:
    """The scorecard of a period as known at `now` (days whose deadline is still ahead, or before
    expected_from, are not counted)."""
    start = max(period.start, expected_from) if expected_from else period.start
    days = timeliness.feed_days(session=session, start=start, end=period.end, now=now)
    departments = {d.code: DepartmentScore(d.code, d.name, d.total) for d in timeliness.by_department(days)}
    dept_of = {fd.source: fd.department_code for fd in days}
    params = {"start": period.start, "end": period.end, "now": now}
    rows = session.execute(
        text(
            """
            WITH b AS (
                SELECT b.* FROM batch b
                WHERE b.as_of_date BETWEEN :start AND :end
                  AND EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.received_at <= :now)
            ), per_day AS (
                SELECT source, as_of_date, count(*) FILTER (WHERE NOT duplicate) AS distinct_files,
                       count(*) FILTER (WHERE duplicate) AS dup_files
                FROM delivery WHERE as_of_date BETWEEN :start AND :end AND received_at <= :now
                GROUP BY source, as_of_date
            )
            SELECT s.source,
                   coalesce((SELECT sum(rows_received) FROM b WHERE b.source = s.source), 0) AS rows_received,
                   coalesce((SELECT sum(rows_rejected) FROM b WHERE b.source = s.source), 0) AS rows_rejected,
                   coalesce((SELECT sum(greatest(distinct_files - 1, 0)) FROM per_day p WHERE p.source = s.source), 0)
                       AS corrections,
                   coalesce((SELECT sum(dup_files) FROM per_day p WHERE p.source = s.source), 0)
                   + (SELECT count(*) FROM source_record r JOIN b ON b.id = r.batch_id
                      WHERE b.source = s.source AND r.reasons::text LIKE '%DUPLICATE_ROW%') AS duplicates
            FROM feed s
            """
        ),
        params,
    )
    for r in rows:
        dept = departments.get(dept_of.get(r.source, ""))
        if dept is None:
            continue
        dept.rows_received += int(r.rows_received)
        dept.rows_rejected += int(r.rows_rejected)
        dept.corrections += int(r.corrections)
        dept.duplicates += int(r.duplicates)
    communities = [
        CommunityScore(r.code, r.name, r.records, r.rejected, r.corrections, r.duplicates)
        for r in session.execute(
            text(
                """
                SELECT a.code, a.name, count(r.id) AS records,
                       count(r.id) FILTER (WHERE r.status = 'rejected') AS rejected,
                       count(r.id) FILTER (WHERE r.event = 'update') AS corrections,
                       count(r.id) FILTER (WHERE r.reasons::text LIKE '%DUPLICATE_ROW%') AS duplicates
                FROM area a
                -- The community's own uploads (社区采集, through the collection platform or as files): the
                -- other departments' records of its residents are theirs, not the community's work.
                LEFT JOIN source_record r ON r.community_code = a.code AND r.source = 'sq_cj' AND r.batch_id IN (
                    SELECT b.id FROM batch b WHERE b.as_of_date BETWEEN :start AND :end
                      AND EXISTS (SELECT 1 FROM delivery d WHERE d.batch_id = b.id AND d.received_at <= :now))
                WHERE a.level = 'community'
                GROUP BY a.code, a.name ORDER BY a.code
                """
            ),
            params,
        )
    ]
    return Scorecard(period, list(departments.values()), communities)


def _pct(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def to_xlsx(card: Scorecard) -> bytes:
    """Both tables as a workbook (text cells made formula-safe, rates as numbers formatted as %)."""
    book = openpyxl.Workbook()
    sheets = [
        (
            "部门",
            [
                "部门代码",
                "部门",
                "应报",
                "按时",
                "迟报",
                "缺报",
                "按时率",
                "接收行数",
                "拒收行数",
                "拒收率",
                "更正",
                "重复",
            ],
            [
                [
                    d.code,
                    d.name,
                    d.tally.expected,
                    d.tally.on_time,
                    d.tally.late,
                    d.tally.missing,
                    _pct(d.tally.on_time_rate),
                    d.rows_received,
                    d.rows_rejected,
                    _pct(d.rejection_rate),
                    d.corrections,
                    d.duplicates,
                ]
                for d in card.departments
            ],
            (7, 10),
        ),
        (
            "社区",
            ["社区代码", "社区", "记录数", "拒收", "拒收率", "更正", "重复"],
            [
                [c.code, c.name, c.records, c.rejected, _pct(c.rejection_rate), c.corrections, c.duplicates]
                for c in card.communities
            ],
            (5,),
        ),
    ]
    first = True
    for title, header, rows, pct_columns in sheets:
        sheet = book.active if first else book.create_sheet()
        first = False
        assert sheet is not None
        sheet.title = title
        sheet.append([f"{card.period.label}考核（{card.period.start} 至 {card.period.end}）"])
        sheet.append(header)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([safe_cell(v) if isinstance(v, str) else v for v in row])
        for col in pct_columns:
            for (cell,) in sheet.iter_rows(min_row=3, min_col=col, max_col=col):
                cell.number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
