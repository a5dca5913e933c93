"""Plain zh-CN sentences for the issue codes, for receipts to departments and officers' screens."""

MESSAGES: dict[str, str] = {
    "ID_EMPTY": "身份证号码为空",
    "ID_FORMAT": "身份证号码格式错误，应为18位（或15位）数字，最后一位可为X",
    "ID_REGION": "身份证号码前两位不是有效的省级行政区划代码",
    "ID_BIRTH_DATE": "身份证号码中的出生日期无效",
    "ID_CHECKSUM": "身份证号码校验位错误",
    "ID_BIRTH_MISMATCH": "出生日期与身份证号码不一致",
    "ID_SEX_MISMATCH": "性别与身份证号码不一致",
    "DOC_TYPE": "证件类型无法识别",
    "DOC_EMPTY": "证件号码为空",
    "DOC_FORMAT": "证件号码格式与证件类型不符",
    "DATE_FORMAT": "日期格式无法识别",
    "DATE_INVALID": "日期不存在",
    "DATE_TOO_OLD": "日期过早，不可能是真实日期",
    "DATE_FUTURE": "日期晚于当前日期",
    "SEX_CODE": "性别应填写男、女或代码1、2",
    "ETHNICITY_CODE": "民族名称或代码无法识别",
    "PHONE_FORMAT": "联系电话不是有效的手机或固定电话号码",
    "AREA_FORMAT": "区划代码应为6位、9位或12位数字",
    "AREA_UNKNOWN": "区划代码不在行政区划参考数据中",
}


def describe(code: str) -> str:
    """The sentence for an issue code; an unknown code is shown as itself so nothing is hidden."""
    return MESSAGES.get(code, f"未知问题（{code}）")
