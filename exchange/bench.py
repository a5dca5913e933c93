"""Benchmark of reading received files: rows per second through `exchange.readers.read_rows`.

    .venv/bin/python -m exchange.bench --rows 200000

Writes one household-register (HJ) CSV of N rows in UTF-8 and one in GB18030 to a temporary directory,
reads each `repeats` times through the same reader the pipeline uses (decoding, header check, row
shaping) and prints rows/s per encoding: the best and the median run. Figures go to BENCHMARKS.md.
"""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from exchange.readers import read_rows
from schemas.feed_spec import get_feed_spec

HEADER = "记录编号,公民身份号码,姓名,曾用名,性别,民族,出生日期,户号,与户主关系,户籍地址,户籍地区划代码,变动类型,变动日期"
ROW = "R{i:07d},110101199001011234,张三,,男,汉族,1990-01-01,H001,户主,北京市东城区东华门街道1号,110101001001,迁入,2026-01-02"


def write_feed(path: Path, *, rows: int, encoding: str) -> Path:
    """One HJ file of `rows` rows in `encoding`, CRLF line ends as departments send them."""
    body = "".join(ROW.format(i=i) + "\r\n" for i in range(rows))
    path.write_bytes((HEADER + "\r\n" + body).encode(encoding))
    return path


def rows_per_second(path: Path) -> float:
    """Reads the whole file once; rows per second."""
    spec = get_feed_spec("gaj_hj")
    started = time.perf_counter()
    read = sum(1 for _ in read_rows(path, spec))
    return read / (time.perf_counter() - started)


def main(
    rows: Annotated[int, typer.Option(help="rows per file")] = 200_000,
    repeats: Annotated[int, typer.Option(help="reads per encoding")] = 3,
) -> None:
    """Prints rows/s for UTF-8 and GB18030."""
    with tempfile.TemporaryDirectory() as tmp:
        for encoding in ("utf-8", "gb18030"):
            path = write_feed(Path(tmp) / "gaj_hj_20260102.csv", rows=rows, encoding=encoding)
            rates = [rows_per_second(path) for _ in range(repeats)]
            print(
                f"{encoding:8} {rows:,} rows: best {max(rates):,.0f} rows/s, "
                f"median {statistics.median(rates):,.0f} rows/s over {repeats} reads"
            )


if __name__ == "__main__":
    typer.run(main)
