"""Feed files as departments send them, for tests: the standard's header, then the rows."""

import csv
import io
import json
from datetime import date
from pathlib import Path

import openpyxl

from schemas.feed_spec import get_feed_spec

Rows = list[dict[str, str]]


def write_feed(
    folder: Path,
    source: str,
    day: date,
    rows: Rows,
    *,
    fmt: str = "csv",
    encoding: str = "utf-8",
    seq: int | None = None,
) -> Path:
    """A feed file as a department sends it: the standard's header, then the rows (missing cells blank)."""
    header = get_feed_spec(source).column_names
    name = f"{source}_{day:%Y%m%d}{f'_{seq}' if seq else ''}.{fmt}"
    path = folder / name
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[row.get(h, "") for h in header] for row in rows])
        path.write_bytes(out.getvalue().encode(encoding))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(header)
        for row in rows:
            sheet.append([row.get(h, "") for h in header])
        book.save(path)
    return path


def hj(
    key: str,
    id_no: str,
    name: str,
    sex: str,
    birth: str,
    event: str = "在册",
    when: str = "2026-11-01",
    community: str = "330102001001",
) -> dict[str, str]:
    """A gaj_hj row."""
    return {
        "记录编号": key,
        "公民身份号码": id_no,
        "姓名": name,
        "性别": sex,
        "民族": "汉族",
        "出生日期": birth,
        "户籍地址": "清波街1号",
        "户籍地区划代码": community,
        "变动类型": event,
        "变动日期": when,
    }
