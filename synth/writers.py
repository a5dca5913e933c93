"""Landing files (CSV in the source's encoding, JSON Lines, XLSX) and the ground truth beside them."""

import csv
import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import numpy as np
from openpyxl import Workbook

from synth.feeds import Feed, Table
from synth.mess import MESS, dirty_rows
from synth.streams import stream

BUFFER = 1 << 20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CORE_TIMES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], encoding: str) -> None:
    """A CSV file with a header row."""
    with path.open("w", encoding=encoding, newline="", buffering=BUFFER) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_jsonl(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """One JSON object per row, keys the column names."""
    with path.open("w", encoding="utf-8", newline="\n", buffering=BUFFER) as f:
        f.writelines(
            json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) + "\n" for row in rows
        )


def write_xlsx(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], as_of: date) -> None:
    """A one-sheet workbook; zip entry times and document times are fixed so the bytes are reproducible."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    raw = io.BytesIO()
    wb.save(raw)
    stamp = datetime(as_of.year, as_of.month, as_of.day, 18).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = _CORE_TIMES.sub(rb"\g<1>" + stamp + rb"\g<2>", body)
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, body)
    path.write_bytes(out.getvalue())


class Landing:
    """Writes each source's daily files into landing/, with their rows' true persons in truth/rows.csv."""

    def __init__(self, out: Path, seed: int) -> None:
        self.dir = out / "landing"
        self.duplicates = self.dir / "duplicates"
        self.duplicates.mkdir(parents=True, exist_ok=True)
        (out / "truth").mkdir(exist_ok=True)
        self.seed = seed
        self.files: dict[str, int] = {}
        self.copied: list[str] = []
        self._truth = (out / "truth" / "rows.csv").open("w", encoding="utf-8", newline="", buffering=BUFFER)
        self._rows = csv.writer(self._truth)
        self._rows.writerow(("file", "row", "person"))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._truth.close()

    def deliver(self, table: Table, day: int, as_of: date) -> None:
        """Write one source's rows of one day: the mess, maybe a second delivery, maybe a copy."""
        feed = table.feed
        rng = stream(self.seed, f"deliver:{feed.name}", day)
        rows, persons = dirty_rows(rng, table)
        ext = (
            "jsonl" if feed.name == "rsj_cb" and day > 0 and rng.random() < MESS["rsj_cb_jsonl"] else feed.ext
        )
        parts = [(rows, persons)]
        if day > 0 and len(rows) >= 2 and rng.random() < MESS["second_delivery"]:
            cut = int(len(rows) * rng.uniform(0.5, 0.9))
            parts = [(rows[:cut], persons[:cut]), (rows[cut:], persons[cut:])]
        for n, (part, who) in enumerate(parts, start=1):
            name = f"{feed.name}_{as_of:%Y%m%d}{'' if n == 1 else f'_{n}'}.{ext}"
            self._write(self.dir / name, feed, ext, part, as_of)
            self._rows.writerows(zip([name] * len(who), range(1, len(who) + 1), person_ids(who), strict=True))
            self.files[name] = len(part)
            if rng.random() < MESS["file_twice"]:
                shutil.copyfile(self.dir / name, self.duplicates / name)
                self.copied.append(name)

    @staticmethod
    def _write(path: Path, feed: Feed, ext: str, rows: list[tuple[Any, ...]], as_of: date) -> None:
        if ext == "xlsx":
            write_xlsx(path, feed.columns, rows, as_of)
        elif ext == "jsonl":
            write_jsonl(path, feed.columns, rows)
        else:
            write_csv(path, feed.columns, rows, feed.encoding)


def person_ids(persons: list[int]) -> list[str]:
    """True person ids as written in the truth (numbered from 1; blank for nobody)."""
    # numpy types tolist() as Any; a str array gives str elements.
    return cast(
        list[str], np.where(np.asarray(persons) < 0, "", (np.asarray(persons) + 1).astype(str)).tolist()
    )
