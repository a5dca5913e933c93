"""Load the area hierarchy (reference data) from the exchange standard's CSV.

The file may also be written as the national statistical division code tables (统计用区划代码) publish
it: every code padded to 12 digits (district 320205000000, street 320205001000), the province and city
rows included and named as the districts' parents. Codes are shortened to their level's length;
province and city rows are read (as parents) but not stored: the platform's areas start at the district.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.audit import record_audit
from registry.models import Area

LEVEL_LENGTH = {"district": 6, "street": 9, "community": 12}
PARENT_LEVEL = {"street": "district", "community": "street"}
UPPER_LEVELS = ("province", "city")  # read as the districts' parents, not stored
# Levels as the division tables and people write them.
LEVEL_ALIASES = {
    "省": "province",
    "省级": "province",
    "市": "city",
    "地级": "city",
    "地市": "city",
    "区县": "district",
    "县": "district",
    "区": "district",
    "县级": "district",
    "街道": "street",
    "乡镇": "street",
    "乡级": "street",
    "社区": "community",
    "村": "community",
    "村级": "community",
}
HEADER = ["code", "name", "level", "parent_code"]


class AreaFileError(Exception):
    """The area file has bad rows; nothing was loaded."""

    def __init__(self, file: str, errors: list[str]) -> None:
        self.file = file
        self.errors = errors
        super().__init__(f"{file}: {len(errors)} 处错误，未导入任何数据：\n" + "\n".join(errors))


@dataclass(frozen=True)
class AreaLoadResult:
    """What a load did."""

    rows: int
    inserted: int
    updated: int
    unchanged: int


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", data, 0, 1, "文件编码既不是 UTF-8 也不是 GB18030")


def parse_area_file(path: Path, known: dict[str, str]) -> list[dict[str, str | None]]:
    """Read and check every row; known maps codes already loaded to their level."""
    rows: list[dict[str, str | None]] = []
    errors: list[str] = []
    levels = dict(known)
    seen: dict[str, int] = {}
    for line_no, cells in enumerate(_body(path), start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 4:
            errors.append(f"第{line_no}行：应有4列，实际{len(cells)}列")
            continue
        code, name, level, parent = _padded(c.strip() for c in cells)
        problems = _row_problems(code, name, level, parent, seen)
        if problems:
            errors.append(f"第{line_no}行：" + "；".join(problems))
            continue
        seen[code] = line_no
        levels[code] = level
        if level in UPPER_LEVELS:
            continue
        rows.append({"code": code, "name": name, "level": level, "parent_code": parent or None})
    errors += _parent_errors(rows, levels, seen)
    if errors:
        raise AreaFileError(path.name, errors)
    return rows


def _body(path: Path) -> Iterator[list[str]]:
    """The file's rows after a header that must be exactly HEADER."""
    try:
        content = _decode(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise AreaFileError(path.name, [str(exc.reason)]) from exc
    reader = csv.reader(io.StringIO(content))
    header = [h.strip() for h in next(reader, [])]
    if header != HEADER:
        raise AreaFileError(path.name, [f"第1行：表头应为 {','.join(HEADER)}，实际为 {','.join(header)}"])
    return reader


def _padded(cells: Iterator[str]) -> tuple[str, str, str, str]:
    """(code, name, level, parent) with the level in English and 12-digit padded codes shortened to their
    level's length; a district's parent (its city or province) becomes '' once checked to be one."""
    code, name, level, parent = cells
    level = LEVEL_ALIASES.get(level, level)
    code = _short(code, level)
    if level == "district" and parent:
        short = _short(parent, "city")
        parent = "" if short in (code[:4] + "00", code[:2] + "0000") else short
    elif level in PARENT_LEVEL:
        parent = _short(parent, PARENT_LEVEL[level])
    elif level in UPPER_LEVELS:
        parent = ""
    return code, name, level, parent


def _short(code: str, level: str) -> str:
    """A 12-digit code padded with zeros, cut to its level's length (province and city: 6 digits)."""
    length = LEVEL_LENGTH.get(level, 6)
    if len(code) == 12 and length < 12 and code.isdigit() and code.endswith("0" * (12 - length)):
        return code[:length]
    return code


def _row_problems(code: str, name: str, level: str, parent: str, seen: dict[str, int]) -> list[str]:
    """What is wrong with one row on its own (seen: the codes of the good rows before it, by line)."""
    problems = []
    if level in UPPER_LEVELS:
        if not (code.isdigit() and len(code) == 6):
            problems.append(f"代码“{code}”应为6位数字（或补零到12位）")
    elif level not in LEVEL_LENGTH:
        problems.append(f"层级“{level}”无效（应为 district/street/community，或 province/city）")
    elif not (code.isdigit() and len(code) == LEVEL_LENGTH[level]):
        problems.append(f"代码“{code}”应为{LEVEL_LENGTH[level]}位数字")
    if not name:
        problems.append("名称为空")
    if code in seen:
        problems.append(f"代码“{code}”与第{seen[code]}行重复")
    if level == "district" and parent:
        problems.append(f"区县的上级代码“{parent}”不是其所在的市或省")
    if level in PARENT_LEVEL and not parent:
        problems.append("缺少上级代码")
    if parent and level in PARENT_LEVEL and not code.startswith(parent):
        problems.append(f"代码“{code}”不以上级代码“{parent}”开头")
    return problems


def _parent_errors(
    rows: list[dict[str, str | None]], levels: dict[str, str], seen: dict[str, int]
) -> list[str]:
    """Rows whose parent is neither in the file nor loaded before, or is not one level up."""
    errors = []
    for row in rows:
        parent_code = row["parent_code"]
        if parent_code and levels.get(parent_code) != PARENT_LEVEL[str(row["level"])]:
            errors.append(f"第{seen[str(row['code'])]}行：上级代码“{parent_code}”不存在或层级不符")
    return errors


def load_areas(*, session: Session, path: Path, actor: str = "operator") -> AreaLoadResult:
    """Load the file in one transaction: all rows or none; loading again changes nothing."""
    known = dict(session.execute(select(Area.code, Area.level)).tuples().all())
    rows = parse_area_file(path, known)
    before = {a.code: (a.name, a.level, a.parent_code) for a in session.scalars(select(Area))}
    inserted = sum(1 for r in rows if r["code"] not in before)
    updated = sum(
        1
        for r in rows
        if r["code"] in before and before[str(r["code"])] != (r["name"], r["level"], r["parent_code"])
    )
    if rows:
        session.execute(
            text(
                "INSERT INTO area (code, name, level, parent_code) VALUES (:code, :name, :level, :parent_code) "
                "ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level, "
                "parent_code = excluded.parent_code "
                "WHERE (area.name, area.level, area.parent_code) IS DISTINCT FROM "
                "(excluded.name, excluded.level, excluded.parent_code)"
            ),
            rows,
        )
    result = AreaLoadResult(len(rows), inserted, updated, len(rows) - inserted - updated)
    record_audit(
        session=session,
        actor=actor,
        action="areas.load",
        object_type="file",
        object_id=path.name,
        detail=result.__dict__,
    )
    return result
