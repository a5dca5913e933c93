"""Bad input through the whole pipeline: a clear error naming the file, nothing lost, nothing half-loaded."""

import os
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from base.tabular import safe_cell
from exchange import flows, service
from registry.models import AuditLog, Batch, Person, SourceRecord
from schemas.feed_spec import get_feed_spec
from tests.feedfiles import hj, write_feed

DAY = date(2026, 11, 1)
HJ_HEADER = ",".join(get_feed_spec("gaj_hj").column_names)
GOOD_ROW = "H1,330102198001010018,张伟,,男,汉族,1980-01-01,,,清波街1号,330102001001,在册,2026-11-01"


def mixed_encoding(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    lines = [HJ_HEADER.encode(), GOOD_ROW.encode()] + [
        GOOD_ROW.replace("H1", f"H{i}").encode() for i in range(2, 40)
    ]
    lines.append(GOOD_ROW.replace("H1", "H99").replace("张伟", "李娜").encode("gb18030"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def utf16(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    path.write_bytes(f"{HJ_HEADER}\n{GOOD_ROW}\n".encode("utf-16"))
    return path


def missing_column(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    header = HJ_HEADER.replace(",变动日期", "")
    path.write_text(f"{header}\n{GOOD_ROW.rsplit(',', 1)[0]}\n", encoding="utf-8")
    return path


def renamed_column(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    path.write_text(f"{HJ_HEADER.replace('公民身份号码', '身份证号码')}\n{GOOD_ROW}\n", encoding="utf-8")
    return path


def empty(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    path.write_bytes(b"")
    return path


def truncated_xlsx(folder: Path) -> Path:
    path = write_feed(folder, "sq_cj", DAY, [{"姓名": "张伟", "身份证号": "330102198001010018"}], fmt="xlsx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def zip_bomb(folder: Path) -> Path:
    path = folder / "sq_cj_20261101.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"<row/>" * 170_000
            for _ in range(30):
                sheet.write(block)
    return path


def garbage(folder: Path) -> Path:
    path = folder / "gaj_hj_20261101.csv"
    path.write_bytes(os.urandom(1024 * 1024))
    return path


@pytest.mark.parametrize(
    ("make", "code", "words"),
    [
        (mixed_encoding, "FILE_ENCODING", "无法按 UTF-8 解码"),
        (utf16, "FILE_ENCODING", "gaj_hj_20261101.csv"),
        (missing_column, "HEADER_MISSING_COLUMNS", "变动日期"),
        (renamed_column, "HEADER_MISSING_COLUMNS", "身份证号码"),
        (empty, "FILE_EMPTY", "gaj_hj_20261101.csv"),
        (truncated_xlsx, "FILE_TRUNCATED", "sq_cj_20261101.xlsx"),
        (zip_bomb, "ZIP_BOMB", "sq_cj_20261101.xlsx"),
        (garbage, "FILE_FORMAT", "gaj_hj_20261101.csv"),
    ],
)
def test_bad_file_is_rejected_whole_with_its_reason_and_kept(
    session, factory, areas, tmp_path, archive_dir, make, code, words
) -> None:
    path = make(tmp_path)
    result = flows.ingest_file(factory, path)
    batch = session.get(Batch, result.batch_id)
    assert batch.state == "rejected"
    assert batch.error.startswith(f"[{code}]") and words in batch.error, batch.error
    assert session.scalar(select(func.count()).select_from(SourceRecord)) == 0  # nothing half-loaded
    archived = Path(batch.archive_path)
    assert archived.exists() and archived.stat().st_size == path.stat().st_size  # nothing lost
    assert service.file_sha256(archived) == batch.sha256
    actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions[-2:] == ["file.received", "batch.rejected"]
    assert service.build_receipt(session=session, batch_id=batch.id).error == batch.error


def test_formula_cell_is_stored_as_text_and_never_exported_as_a_formula(
    session, factory, areas, tmp_path
) -> None:
    path = tmp_path / "sq_cj_20261102.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(get_feed_spec("sq_cj").column_names)
    sheet.append(
        [
            '=HYPERLINK("http://x","张三")',
            "330102198001010018",
            "男",
            "1980-01-01",
            "汉族",
            "13800138000",
            "=1+2",
            "330102001001",
            "户籍",
            "在住",
            "2026-11-02",
            "G001",
            "=cmd|' /C calc'!A0",
        ]
    )
    book.save(path)
    result = flows.ingest_file(factory, path)
    record = session.scalars(select(SourceRecord).where(SourceRecord.batch_id == result.batch_id)).one()
    assert record.raw["现住址"] == "=1+2" and record.raw["备注"] == "=cmd|' /C calc'!A0"
    assert record.address == "=1+2"
    receipt_csv = service.build_receipt(session=session, batch_id=result.batch_id).csv_text()
    assert not any(cell.startswith("=") for line in receipt_csv.splitlines() for cell in line.split(","))
    assert safe_cell("=1+2") == "'=1+2"


def test_sql_in_a_name_is_just_a_name(session, factory, areas, tmp_path) -> None:
    evil = "Robert'); DROP TABLE person;--"
    rows = [hj("H1", "330102198001010018", evil, "男", "1980-01-01")]
    result = flows.ingest_file(factory, write_feed(tmp_path, "gaj_hj", DAY, rows))
    assert result.state == "completed"
    person = session.scalars(select(Person)).one()
    assert person.name == "ROBERT'); DROP TABLE PERSON;--"
    record = session.scalars(select(SourceRecord)).one()
    assert record.raw["姓名"] == evil


def test_a_2gb_file_of_garbage_is_refused_before_it_is_copied(
    session, factory, tmp_path, archive_dir
) -> None:
    path = tmp_path / "gaj_hj_20261101.csv"
    with path.open("wb") as fh:
        fh.write(os.urandom(64 * 1024))
        fh.truncate(2 * 1024**3)  # sparse: 2 GB on paper, no disk used
    with pytest.raises(service.FeedFileError) as info:
        flows.ingest_file(factory, path)
    assert info.value.code == "FILE_TOO_LARGE" and "gaj_hj_20261101.csv" in info.value.message
    assert "2,048 MiB" in info.value.message and "POPEX_MAX_UPLOAD_BYTES" in info.value.message
    assert path.exists() and not archive_dir.exists()  # left where it was sent, nothing copied
    refused = session.scalars(select(AuditLog).where(AuditLog.action == "file.refused")).one()
    assert refused.detail["size"] == 2 * 1024**3
