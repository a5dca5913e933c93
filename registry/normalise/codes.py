"""Coded fields: sex (GB/T 2261.1), ethnicity (GB 3304-1991), phone numbers, area division codes."""

import re
import unicodedata
from collections.abc import Container

ETHNICITIES: dict[str, str] = {
    "01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族", "06": "苗族",
    "07": "彝族", "08": "壮族", "09": "布依族", "10": "朝鲜族", "11": "满族", "12": "侗族",
    "13": "瑶族", "14": "白族", "15": "土家族", "16": "哈尼族", "17": "哈萨克族", "18": "傣族",
    "19": "黎族", "20": "傈僳族", "21": "佤族", "22": "畲族", "23": "高山族", "24": "拉祜族",
    "25": "水族", "26": "东乡族", "27": "纳西族", "28": "景颇族", "29": "柯尔克孜族", "30": "土族",
    "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族", "35": "撒拉族", "36": "毛南族",
    "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族", "41": "塔吉克族", "42": "怒族",
    "43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族", "46": "德昂族", "47": "保安族",
    "48": "裕固族", "49": "京族", "50": "塔塔尔族", "51": "独龙族", "52": "鄂伦春族", "53": "赫哲族",
    "54": "门巴族", "55": "珞巴族", "56": "基诺族", "97": "其他", "98": "外国血统中国籍人士",
}  # fmt: skip
# Names without 族 (汉, 维吾尔), the codes without their leading zero, and spellings still in use.
_ETHNICITY_CODES = {
    **{alias: code for code, name in ETHNICITIES.items() for alias in (code, code.lstrip("0"), name)},
    **{name.removesuffix("族"): code for code, name in ETHNICITIES.items() if name.endswith("族")},
    "崩龙族": "46", "崩龙": "46", "其它": "97", "其他民族": "97", "外国血统": "98",
}  # fmt: skip
_SEX_CODES = {
    **dict.fromkeys(("1", "男", "男性", "m", "male"), "1"),
    **dict.fromkeys(("2", "女", "女性", "f", "female"), "2"),
    **dict.fromkeys(("0", "9", "未知", "未知的性别", "未说明", "未说明的性别"), None),
}
_PHONE_SEPARATORS = re.compile(r"[\s\-()]+")
_COUNTRY_PREFIX = re.compile(r"^(?:\+|00)?86(?=\d{10,11}$)", re.ASCII)
_MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
# Area codes are 010 and 02X followed by 8 digits, or 0 and three digits followed by 7 or 8; local
# numbers never start with 0 or 1.
_FIXED_LINE = re.compile(r"0(?:10|2\d)[2-9]\d{7}|0[3-9]\d\d[2-9]\d{6,7}", re.ASCII)
_AREA = re.compile(r"\d{6}|\d{9}|\d{12}", re.ASCII)


def _text(raw: object) -> str:
    """A cell as stripped half-width text; whole floats from spreadsheets lose their '.0'."""
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return unicodedata.normalize("NFKC", str(raw)).strip()


def normalise_sex(raw: object) -> tuple[str | None, str | None]:
    """Sex as '1' male or '2' female; unknown or blank gives no value and no issue."""
    text = _text(raw).lower()
    if not text:
        return None, None
    if text in _SEX_CODES:
        return _SEX_CODES[text], None
    return None, "SEX_CODE"


def normalise_ethnicity(raw: object) -> tuple[str | None, str | None]:
    """Ethnicity as its two-digit GB 3304 code, from a name (汉族, 汉) or a code (01, 1)."""
    text = "".join(_text(raw).split())
    if not text:
        return None, None
    code = _ETHNICITY_CODES.get(text)
    return (code, None) if code else (None, "ETHNICITY_CODE")


def normalise_phone(raw: object) -> tuple[str | None, str | None]:
    """A mainland mobile (11 digits) or fixed line (0, area code, 7-8 digits) as bare digits."""
    digits = _PHONE_SEPARATORS.sub("", _text(raw))
    if not digits:
        return None, None
    local = _COUNTRY_PREFIX.sub("", digits, count=1)
    if _MOBILE.fullmatch(local) or _FIXED_LINE.fullmatch(local):
        return local, None
    if local != digits and _FIXED_LINE.fullmatch("0" + local):  # written internationally: +86 10 …
        return "0" + local, None
    return None, "PHONE_FORMAT"


def normalise_area_code(raw: object, known: Container[str] | None = None) -> tuple[str | None, str | None]:
    """A district (6), street (9) or community (12 digits) division code, checked against known if given."""
    text = _text(raw)
    if not text:
        return None, None
    if not _AREA.fullmatch(text):
        return None, "AREA_FORMAT"
    if known is not None and text not in known:
        return None, "AREA_UNKNOWN"
    return text, None
