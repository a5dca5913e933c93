"""Reading received files: every kind of bad input is refused with a stable code, good input reads exactly."""

import json
import os
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from exchange.exceptions import FeedFileError, IssueCode
from exchange.readers import (
    SAMPLE_BYTES,
    FileName,
    Note,
    Row,
    detect_encoding,
    identify_file,
    open_feed_file,
    parse_file_name,
    read_rows,
)
from schemas.feed_spec import FeedSpec, get_feed_spec

HJ_HEADER = "记录编号,公民身份号码,姓名,曾用名,性别,民族,出生日期,户号,与户主关系,户籍地址,户籍地区划代码,变动类型,变动日期"
HJ_ROW = "R001,110101199001011234,张三,,男,汉族,1990-01-01,H001,户主,北京市东城区东华门街道1号,110101001001,迁入,2026-01-02"
HJ_ROW_2 = "R002,110101199202022345,李四,,女,回族,1992-02-02,H002,户主,北京市东城区景山街道2号,110101002001,迁出,2026-01-02"
SQ_HEADER = [
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "民族",
    "联系电话",
    "现住址",
    "社区代码",
    "人口类型",
    "居住状态",
    "采集日期",
    "信息员工号",
    "备注",
]


def hj() -> FeedSpec:
    return get_feed_spec("gaj_hj")


def write_text(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode(encoding))
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _bytes_read() -> int:
    """What this process has read so far, in bytes (Linux counts every read call)."""
    io = Path("/proc/self/io").read_text()
    return int(io.split("rchar:")[1].split()[0])


def refused(path: Path, spec: FeedSpec, **kwargs: int) -> FeedFileError:
    with pytest.raises(FeedFileError) as caught:
        list(read_rows(path, spec, **kwargs))
    assert caught.value.file == path.name
    return caught.value


# File names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gaj_hj_20260102.csv", FileName("gaj_hj", date(2026, 1, 2), 1, "csv")),
        ("rsj_cb_20260102_2.JSONL", FileName("rsj_cb", date(2026, 1, 2), 2, "jsonl")),
        ("sq_cj_20261231_12.xlsx", FileName("sq_cj", date(2026, 12, 31), 12, "xlsx")),
    ],
)
def test_file_name_parts(name: str, expected: FileName) -> None:
    assert parse_file_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "gaj_hj_2026012.csv",
        "gaj_hj-20260102.csv",
        "gaj_hj_20260230.csv",
        "gaj_hj_20260102_1.csv",
        "gaj_hj_20260102.xls",
        "GAJ_HJ_20260102.csv",
        "gaj_hj_20260102.csv.zip",
        "20260102.csv",
    ],
)
def test_file_name_that_does_not_match(name: str) -> None:
    with pytest.raises(FeedFileError) as caught:
        parse_file_name(name)
    assert caught.value.code == IssueCode.FILE_NAME
    assert caught.value.file == name
    assert str(caught.value).startswith(f"文件名「{name}」")


def test_identify_file_finds_the_spec_or_names_the_unknown_source() -> None:
    parsed, spec = identify_file("wjw_cs_20260102.xlsx")
    assert (parsed.source, spec.title) == ("wjw_cs", "出生医学证明")
    with pytest.raises(FeedFileError) as caught:
        identify_file("tjj_rk_20260102.csv")
    assert caught.value.code == IssueCode.UNKNOWN_SOURCE
    assert "未知的数据来源「tjj_rk」" in str(caught.value)


# Encodings


def test_gb18030_file_with_chinese_reads_correctly(tmp_path: Path) -> None:
    # 䶮 is outside GBK: only a GB18030 decoder gets it right.
    row = HJ_ROW.replace("张三", "刘䶮")
    path = write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, row, HJ_ROW_2], "gb18030")
    feed = open_feed_file(path, hj())
    assert feed.encoding == "gb18030"
    assert feed.header == tuple(HJ_HEADER.split(","))
    rows = list(feed.rows())
    assert [r.number for r in rows] == [1, 2]
    assert rows[0].values["姓名"] == "刘䶮"
    assert rows[0].values["户籍地址"] == "北京市东城区东华门街道1号"
    assert rows[0].values["曾用名"] is None
    assert rows[1].values == dict(
        zip(HJ_HEADER.split(","), [v or None for v in HJ_ROW_2.split(",")], strict=True)
    )


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    quoted = ",".join(f'"{h}"' for h in HJ_HEADER.split(","))
    path = write_text(tmp_path / "gaj_hj_20260102.csv", [quoted, HJ_ROW], "utf-8-sig")
    assert detect_encoding(path) == "utf-8-sig"
    feed = open_feed_file(path, hj())
    assert feed.header[0] == "记录编号"
    assert next(feed.rows()).values["记录编号"] == "R001"


def test_utf16_is_refused_as_wrong_encoding(tmp_path: Path) -> None:
    path = write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, HJ_ROW], "utf-16")
    error = refused(path, hj())
    assert error.code == IssueCode.FILE_ENCODING
    assert "UTF-16" in str(error)


def test_multibyte_character_across_the_sample_boundary_is_still_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a" * (SAMPLE_BYTES - 1) + "张三".encode())  # 张 straddles the sample's end
    assert detect_encoding(path) == "utf-8"


def test_utf8_file_with_a_gbk_line_names_that_line(tmp_path: Path) -> None:
    path = tmp_path / "gaj_hj_20260102.csv"
    path.write_bytes(
        (HJ_HEADER + "\n" + HJ_ROW + "\n" + HJ_ROW_2 + "\n").encode()
        + (HJ_ROW.replace("R001", "R003").replace("张三", "王五") + "\n").encode("gbk")
        + (HJ_ROW.replace("R001", "R004") + "\n").encode()
    )
    feed = open_feed_file(path, hj())
    assert feed.encoding == "utf-8"
    rows: list[Row] = []
    with pytest.raises(FeedFileError) as caught:
        rows.extend(feed.rows())
    assert [r.values["记录编号"] for r in rows] == ["R001", "R002"]
    assert (caught.value.code, caught.value.row) == (IssueCode.FILE_ENCODING, 3)
    assert str(caught.value) == (
        "文件 gaj_hj_20260102.csv 第 3 行数据（文件第 4 行）无法按 UTF-8 解码（同一文件中混用了多种编码？）"
    )


def test_gbk_line_after_the_sample_is_found_while_streaming(tmp_path: Path) -> None:
    path = tmp_path / "gaj_hj_20260102.csv"
    good = (HJ_ROW + "\n").encode()
    count = SAMPLE_BYTES // len(good) + 10
    path.write_bytes((HJ_HEADER + "\n").encode() + good * count + (HJ_ROW + "\n").encode("gbk"))
    assert detect_encoding(path) == "utf-8"
    error = refused(path, hj())
    assert (error.code, error.row) == (IssueCode.FILE_ENCODING, count + 1)


def test_gb18030_file_with_a_utf8_line_names_that_line(tmp_path: Path) -> None:
    path = tmp_path / "gaj_hj_20260102.csv"
    path.write_bytes(
        (HJ_HEADER + "\n" + HJ_ROW + "\n" + HJ_ROW_2 + "\n").encode("gb18030")
        + (HJ_ROW + "\n").encode("utf-8")
    )
    assert detect_encoding(path) == "gb18030"
    error = refused(path, hj())
    assert (error.code, error.row) == (IssueCode.FILE_ENCODING, 3)
    assert "是 UTF-8 编码，而文件其余部分是 GB18030" in str(error)


def test_mostly_utf8_sample_with_one_gbk_line_is_utf8_and_fails_on_that_line(tmp_path: Path) -> None:
    path = tmp_path / "gaj_hj_20260102.csv"
    path.write_bytes((HJ_HEADER + "\n").encode("gbk") + (HJ_ROW + "\n" + HJ_ROW_2 + "\n").encode("utf-8"))
    assert detect_encoding(path) == "utf-8"
    error = refused(path, hj())
    assert error.code == IssueCode.FILE_ENCODING
    assert error.row is None  # the header line itself is the GBK one
    assert "表头（文件第 1 行）无法按 UTF-8 解码" in str(error)


# Headers


def test_missing_required_column(tmp_path: Path) -> None:
    header = HJ_HEADER.replace(",民族", "")
    row = HJ_ROW.replace(",汉族", "")
    error = refused(write_text(tmp_path / "gaj_hj_20260102.csv", [header, row]), hj())
    assert (error.code, error.field) == (IssueCode.HEADER_MISSING_COLUMNS, "民族")
    assert str(error) == "文件 gaj_hj_20260102.csv 缺少必填列：民族。"


def test_renamed_column_gets_a_suggestion(tmp_path: Path) -> None:
    header = HJ_HEADER.replace("公民身份号码", "身份证号码")
    error = refused(write_text(tmp_path / "gaj_hj_20260102.csv", [header, HJ_ROW]), hj())
    assert error.code == IssueCode.HEADER_MISSING_COLUMNS
    assert (
        str(error)
        == "文件 gaj_hj_20260102.csv 缺少必填列：公民身份号码。表头中的「身份证号码」是否就是「公民身份号码」？"
    )


def test_unknown_columns_are_dropped_and_reported_and_optional_ones_read_as_empty(tmp_path: Path) -> None:
    header = " " + HJ_HEADER.replace(",曾用名", "") + ",备注 ,"  # stray spaces and a trailing empty cell
    row = HJ_ROW.replace("张三,,", "张三,") + ",迁入复核,"
    feed = open_feed_file(write_text(tmp_path / "gaj_hj_20260102.csv", [header, row]), hj())
    assert feed.header[0] == "记录编号" and feed.header[-1] == "备注"
    assert [(w.code, w.message) for w in feed.warnings] == [
        (IssueCode.HEADER_OPTIONAL_MISSING, "文件 gaj_hj_20260102.csv 缺少可选列：曾用名，按空值处理。"),
        (IssueCode.HEADER_UNKNOWN_COLUMNS, "文件 gaj_hj_20260102.csv 有标准之外的列，已忽略：备注"),
    ]
    (only,) = feed.rows()
    assert set(only.values) == set(HJ_HEADER.split(","))
    assert only.values["曾用名"] is None
    assert only.values["变动日期"] == "2026-01-02"
    assert only.notes == ()


def test_duplicate_column_is_refused(tmp_path: Path) -> None:
    error = refused(
        write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER + ",姓名", HJ_ROW + ",张三"]), hj()
    )
    assert error.code == IssueCode.HEADER_DUPLICATE_COLUMNS
    assert str(error).endswith("表头有重复的列：姓名")


# Empty and odd shapes


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "gaj_hj_20260102.csv"
    path.write_bytes(b"")
    assert refused(path, hj()).code == IssueCode.FILE_EMPTY


def test_header_only_file_is_a_day_without_changes(tmp_path: Path) -> None:
    feed = open_feed_file(write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, "", ",,,"]), hj())
    assert [w.code for w in feed.warnings] == [IssueCode.FILE_NO_ROWS]
    assert feed.warnings[0].message == "文件 gaj_hj_20260102.csv 只有表头，没有数据行（视为当日无变动）"
    assert list(feed.rows()) == []


def test_blank_lines_only(tmp_path: Path) -> None:
    error = refused(write_text(tmp_path / "gaj_hj_20260102.csv", ["", "  ", ",,"]), hj())
    assert (error.code, str(error)) == (IssueCode.FILE_EMPTY, "文件 gaj_hj_20260102.csv 没有表头")


def test_row_numbers_skip_blank_rows_and_count_records_not_lines(tmp_path: Path) -> None:
    multiline = HJ_ROW_2.replace("北京市东城区景山街道2号", '"北京市东城区\n景山街道2号"')
    path = write_text(
        tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, HJ_ROW, "", multiline, HJ_ROW.replace("R001", "R004")]
    )
    rows = list(read_rows(path, hj()))
    assert [(r.number, r.values["记录编号"]) for r in rows] == [(1, "R001"), (3, "R002"), (4, "R004")]
    assert rows[1].values["户籍地址"] == "北京市东城区\n景山街道2号"


def test_rows_with_too_few_or_too_many_cells_are_fitted_with_a_note(tmp_path: Path) -> None:
    short = ",".join(HJ_ROW.split(",")[:11])
    path = write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, short, HJ_ROW + ",多余", HJ_ROW + ",,"])
    rows = list(read_rows(path, hj()))
    assert rows[0].values["户籍地区划代码"] == "110101001001"
    assert rows[0].values["变动类型"] is None and rows[0].values["变动日期"] is None
    assert rows[0].notes == (
        Note(
            IssueCode.ROW_CELL_COUNT,
            "第 1 行只有 11 个单元格，表头有 13 列，缺少的按空值处理",
        ),
    )
    assert rows[1].values["变动日期"] == "2026-01-02"
    assert [n.message for n in rows[1].notes] == ["第 2 行有 14 个单元格，表头只有 13 列，多出的已忽略"]
    assert rows[2].notes == ()


def test_untrusted_text_is_kept_verbatim(tmp_path: Path) -> None:
    names = [
        "Robert'); DROP TABLE person;--",
        "=cmd|' /C calc'!A0",
        "-1+1",
        "@SUM(A1)",
        "张 三",
        "阿依古丽·买买提",
    ]
    lines = [HJ_HEADER] + [
        HJ_ROW.replace("R001", f"R{i}").replace("张三", f'"{n}"') for i, n in enumerate(names)
    ]
    rows = list(read_rows(write_text(tmp_path / "gaj_hj_20260102.csv", lines), hj()))
    assert [r.values["姓名"] for r in rows] == names


def test_format_not_accepted_for_the_source(tmp_path: Path) -> None:
    path = write_text(tmp_path / "gaj_hj_20260102.jsonl", ["{}"])
    error = refused(path, hj())
    assert error.code == IssueCode.FILE_FORMAT
    assert str(error) == "来源 gaj_hj 不接受 jsonl 文件（接受：csv、xlsx）"


def test_too_large_before_reading(tmp_path: Path) -> None:
    path = write_text(tmp_path / "gaj_hj_20260102.csv", [HJ_HEADER, HJ_ROW])
    error = refused(path, hj(), max_bytes=100)
    assert error.code == IssueCode.FILE_TOO_LARGE


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_two_gigabytes_of_garbage_is_refused_from_a_small_sample(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"gaj_hj_20260102.{suffix}"
    with path.open("wb") as f:
        f.write(os.urandom(64 * 1024))
        f.truncate(2 * 1024**3)  # sparse: no disk used, nothing to read beyond the sample
    before = _bytes_read()
    error = refused(path, hj(), max_bytes=4 * 1024**3)
    assert _bytes_read() - before < 16 * 1024**2  # of 2 GiB: a sample, not the file
    assert error.code == IssueCode.FILE_FORMAT
    assert str(error) in {
        "文件 gaj_hj_20260102.csv 不是文本文件（含有二进制内容）",
        "文件 gaj_hj_20260102.xlsx 不是 XLSX 文件",
    }


# JSON Lines


def test_jsonl_values_become_text(tmp_path: Path) -> None:
    spec = get_feed_spec("rsj_cb")
    first = {
        "社会保障号码": 110101199001011234,
        "姓名": "张三",
        "性别": 1,
        "出生日期": "1990-01-01",
        "参保状态": "参保缴费",
    }
    first |= {"参保单位": None, "联系电话": 13800000000.0, "变更日期": "2026-01-02", "来源系统": "核心"}
    second = {
        "社会保障号码": "110101900101123",
        "姓名": "李四",
        "参保状态": "暂停缴费",
        "变更日期": "2026-01-02",
        "新键": 1,
    }
    path = write_text(
        tmp_path / "rsj_cb_20260102.jsonl",
        [json.dumps(first, ensure_ascii=False), "", json.dumps(second, ensure_ascii=False)],
    )
    feed = open_feed_file(path, spec)
    assert feed.format == "jsonl" and feed.encoding == "utf-8"
    assert [w.message for w in feed.warnings] == [
        "文件 rsj_cb_20260102.jsonl 有标准之外的列，已忽略：来源系统"
    ]
    one, two = feed.rows()
    assert one.number == 1 and two.number == 3
    assert one.values == {
        "社会保障号码": "110101199001011234",
        "姓名": "张三",
        "性别": "1",
        "出生日期": "1990-01-01",
        "参保状态": "参保缴费",
        "参保单位": None,
        "联系电话": "13800000000",
        "变更日期": "2026-01-02",
    }
    assert one.notes == ()
    assert two.values["性别"] is None and two.values["社会保障号码"] == "110101900101123"
    assert [(n.code, n.message) for n in two.notes] == [
        (IssueCode.ROW_UNKNOWN_KEYS, "第 3 行有标准之外的键，已忽略：新键")
    ]


def test_jsonl_bad_line_names_the_line(tmp_path: Path) -> None:
    good = json.dumps(
        {
            "社会保障号码": "110101199001011234",
            "姓名": "张三",
            "参保状态": "参保缴费",
            "变更日期": "2026-01-02",
        }
    )
    path = write_text(tmp_path / "rsj_cb_20260102.jsonl", [good, good, '{"姓名": "王五",', good])
    error = refused(path, get_feed_spec("rsj_cb"))
    assert (error.code, error.row) == (IssueCode.FILE_FORMAT, 3)
    assert str(error).startswith("文件 rsj_cb_20260102.jsonl 第 3 行不是合法的 JSON")
    path = write_text(tmp_path / "rsj_cb_20260102.jsonl", [good, "[1, 2]"])
    error = refused(path, get_feed_spec("rsj_cb"))
    assert (error.code, error.row, str(error)) == (
        IssueCode.FILE_FORMAT,
        2,
        "文件 rsj_cb_20260102.jsonl 第 2 行不是 JSON 对象",
    )


# XLSX


def sq_row(**values: object) -> list[object]:
    base: dict[str, object] = dict.fromkeys(SQ_HEADER)
    base |= {
        "姓名": "张三",
        "性别": "男",
        "现住址": "东华门街道1号",
        "社区代码": "110101001001",
        "人口类型": "户籍",
    }
    base |= {"居住状态": "在住", "采集日期": "2026-01-02", "信息员工号": "G001"}
    merged = base | values
    return [merged[h] for h in SQ_HEADER]


def test_excel_cells_become_text(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "sq_cj_20260102.xlsx",
        [
            SQ_HEADER,
            sq_row(出生日期=date(1990, 1, 2), 采集日期=datetime(2026, 1, 2), 社区代码=110101001001, 性别=1),
            sq_row(采集日期=datetime(2026, 1, 2, 8, 30), 联系电话=13800000000, 身份证号=110101900101123),
            sq_row(身份证号=110101199001011234, 备注=1.5),
        ],
    )
    feed = open_feed_file(path, get_feed_spec("sq_cj"))
    assert (feed.format, feed.encoding, feed.warnings) == ("xlsx", None, [])
    one, two, three = feed.rows()
    assert (one.values["出生日期"], one.values["采集日期"], one.values["社区代码"], one.values["性别"]) == (
        "1990-01-02",
        "2026-01-02",
        "110101001001",
        "1",
    )
    assert (two.values["采集日期"], two.values["联系电话"], two.values["身份证号"]) == (
        "2026-01-02 08:30:00",
        "13800000000",
        "110101900101123",
    )
    assert one.notes == two.notes == ()
    # An 18-digit ID stored as a number has already lost digits: kept as the number's text, never as digits.
    assert three.values["身份证号"] == "1.101011990010112e+17"
    assert three.values["备注"] == "1.5"
    assert [(n.code, n.field) for n in three.notes] == [(IssueCode.CELL_PRECISION, "身份证号")]


def test_formula_cells_are_read_as_their_text_and_never_evaluated(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for column, header in enumerate(SQ_HEADER, start=2):  # the table starts at B3, as templates often do
        sheet.cell(row=3, column=column, value=header)
    for row in (4, 5, 6):
        for column, value in enumerate(sq_row(), start=2):
            sheet.cell(row=row, column=column, value=value)
    sheet["B4"] = '=HYPERLINK("http://example.com","张三")'
    sheet["B5"] = "=B4"
    text_cell = sheet["B6"]
    text_cell.value = "=1+2"
    text_cell.data_type = "s"  # text that merely looks like a formula
    path = tmp_path / "sq_cj_20260102.xlsx"
    book.save(path)
    rows = list(read_rows(path, get_feed_spec("sq_cj")))
    assert [r.values["姓名"] for r in rows] == ['=HYPERLINK("http://example.com","张三")', "=B4", "=1+2"]
    assert [r.values["信息员工号"] for r in rows] == ["G001"] * 3
    assert rows[1].notes == (
        Note(IssueCode.CELL_FORMULA, "第 2 行「姓名」是公式单元格，按公式原文读取，未计算：=B4", "姓名"),
    )
    assert rows[2].notes == ()


def test_truncated_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "sq_cj_20260102.xlsx", [SQ_HEADER, sq_row()])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    error = refused(path, get_feed_spec("sq_cj"))
    assert error.code == IssueCode.FILE_TRUNCATED
    assert str(error).startswith("文件 sq_cj_20260102.xlsx 已损坏或不完整")


def test_corrupted_entry_inside_an_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "sq_cj_20260102.xlsx", [SQ_HEADER, sq_row()])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as book:
        entry = book.getinfo("xl/worksheets/sheet1.xml")
    data[entry.header_offset + 60] ^= 0xFF  # a byte inside the compressed sheet
    path.write_bytes(bytes(data))
    assert refused(path, get_feed_spec("sq_cj")).code == IssueCode.FILE_TRUNCATED


def _bomb(path: Path, sheet_bytes: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
        with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"<row/>" * (1024**2 // 6)
            for _ in range(sheet_bytes // len(block)):
                sheet.write(block)
    return path


@pytest.mark.parametrize(
    ("size", "complaint"),
    [(20 * 1024**2, "压缩比为"), (210 * 1024**2, "解压后有")],
)
def test_xlsx_zip_bomb(tmp_path: Path, size: int, complaint: str) -> None:
    path = _bomb(tmp_path / "sq_cj_20260102.xlsx", size)
    assert path.stat().st_size < 1024**2
    error = refused(path, get_feed_spec("sq_cj"))
    assert error.code == IssueCode.ZIP_BOMB
    assert complaint in str(error)


def test_old_xls_renamed_to_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "sq_cj_20260102.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1024)
    error = refused(path, get_feed_spec("sq_cj"))
    assert error.code == IssueCode.FILE_FORMAT
    assert "旧版 .xls" in str(error)


def test_xlsx_header_only(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "sq_cj_20260102.xlsx", [SQ_HEADER, [None] * len(SQ_HEADER)])
    feed = open_feed_file(path, get_feed_spec("sq_cj"))
    assert [w.code for w in feed.warnings] == [IssueCode.FILE_NO_ROWS] and list(feed.rows()) == []


# Export safety
