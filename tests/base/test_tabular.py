"""The spreadsheet formula guard every export and receipt uses."""

import pytest

from base.tabular import safe_cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+8613800000000", "'+8613800000000"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("张三", "张三"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_safe_cell(value: str, expected: str) -> None:
    assert safe_cell(value) == expected
