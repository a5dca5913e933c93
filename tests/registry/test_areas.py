"""Loading the area hierarchy: all or nothing, line-numbered errors, idempotent."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry.areas import AreaFileError, load_areas
from registry.models import Area, AuditLog

GOOD = """code,name,level,parent_code
330102,上城区,district,
330102001,清波街道,street,330102
330102001001,清波社区,community,330102001
330102001002,柳翠社区,community,330102001
"""


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "areas.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_load_then_load_again_changes_nothing(session, tmp_path) -> None:
    path = write(tmp_path, GOOD)
    first = load_areas(session=session, path=path)
    assert (first.rows, first.inserted, first.updated) == (4, 4, 0)
    second = load_areas(session=session, path=path)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 4)
    assert session.scalar(select(func.count()).select_from(Area)) == 4
    assert session.get(Area, "330102001002").parent_code == "330102001"
    assert session.scalar(select(func.count()).where(AuditLog.action == "areas.load")) == 2


def test_renamed_area_is_updated(session, tmp_path) -> None:
    load_areas(session=session, path=write(tmp_path, GOOD))
    result = load_areas(session=session, path=write(tmp_path, GOOD.replace("柳翠社区", "柳翠新社区")))
    assert (result.inserted, result.updated) == (0, 1)
    assert session.get(Area, "330102001002").name == "柳翠新社区"


def test_gb18030_file_is_read(session, tmp_path) -> None:
    load_areas(session=session, path=write(tmp_path, GOOD, "gb18030"))
    assert session.get(Area, "330102").name == "上城区"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("33010200100,短码社区,community,330102001", "应为12位数字"),
        ("330102001003,孤儿社区,community,330199001", "不以上级代码"),
        ("330102001004,,community,330102001", "名称为空"),
        ("330102001001,重复社区,community,330102001", "与第4行重复"),
        ("330102001005,某社区,village,330102001", "层级“village”无效"),
        ("330102002,缺上级街道,street,", "缺少上级代码"),
        ("330102009001,上级不存在,community,330102009", "不存在或层级不符"),
    ],
)
def test_bad_row_is_reported_with_its_line_and_nothing_is_loaded(
    session, tmp_path, bad_line, message
) -> None:
    path = write(tmp_path, GOOD + bad_line + "\n")
    with pytest.raises(AreaFileError) as info:
        load_areas(session=session, path=path)
    assert any(e.startswith("第6行") and message in e for e in info.value.errors), info.value.errors
    assert session.scalar(select(func.count()).select_from(Area)) == 0


def test_wrong_header_is_rejected(session, tmp_path) -> None:
    with pytest.raises(AreaFileError, match="表头"):
        load_areas(session=session, path=write(tmp_path, "代码,名称,层级,上级\n"))


NATIONAL = """code,name,level,parent_code
320000000000,江苏省,province,
320200000000,无锡市,city,320000000000
320205000000,锡山区,district,320200000000
320205001000,东亭街道,street,320205000000
320205001001,东亭社区,community,320205001000
320206,惠山区,区县,320200
320206001,堰桥街道,街道,320206
320206001002,堰桥村,村,320206001
"""


def test_the_national_division_code_table_loads(session, tmp_path) -> None:
    """Province and city rows, codes padded to 12 digits, the city named as the districts' parent."""
    result = load_areas(session=session, path=write(tmp_path, NATIONAL))
    assert (result.rows, result.inserted) == (6, 6)
    stored = {a.code: (a.level, a.parent_code) for a in session.scalars(select(Area))}
    assert stored == {
        "320205": ("district", None),
        "320205001": ("street", "320205"),
        "320205001001": ("community", "320205001"),
        "320206": ("district", None),
        "320206001": ("street", "320206"),
        "320206001002": ("community", "320206001"),
    }


def test_a_district_under_another_city_is_refused(session, tmp_path) -> None:
    path = write(tmp_path, NATIONAL + "320301000000,鼓楼区,district,320200000000\n")
    with pytest.raises(AreaFileError) as info:
        load_areas(session=session, path=path)
    assert info.value.errors == ["第10行：区县的上级代码“320200”不是其所在的市或省"]
