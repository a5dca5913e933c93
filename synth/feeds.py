"""The eight sources of the exchange standard and how each turns people of the world into rows."""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

import numpy as np

from synth import reference as ref
from synth.dates import NODATE, ymd
from synth.population import RESIDENT_ID, YEAR, World


@dataclass(frozen=True)
class Feed:
    """One source: its columns, format, and which columns hold IDs, names, dates and sex."""

    name: str
    columns: tuple[str, ...]
    ext: str
    encoding: str
    ids: tuple[str, ...]
    names: tuple[str, ...]
    dates: tuple[str, ...]
    sex: str | None
    date_style: str
    sex_style: str


def _feed(
    name: str, columns: str, ext: str, encoding: str, ids: str, names: str, dates: str, styles: str
) -> Feed:
    """A Feed from comma-separated column lists (dates style and sex style as 'dates,sex')."""
    cols = tuple(columns.split(","))
    date_style, sex_style = styles.split(",")
    return Feed(
        name=name,
        columns=cols,
        ext=ext,
        encoding=encoding,
        ids=tuple(ids.split(",")),
        names=tuple(names.split(",")),
        dates=tuple(dates.split(",")),
        sex="性别" if "性别" in cols else None,
        date_style=date_style,
        sex_style=sex_style,
    )


FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        _feed(
            "gaj_hj",
            "记录编号,公民身份号码,姓名,曾用名,性别,民族,出生日期,户号,与户主关系,户籍地址,户籍地区划代码,变动类型,变动日期",
            "csv", "gb18030", "公民身份号码", "姓名", "出生日期,变动日期", "compact,code",
        ),
        _feed(
            "gaj_ld",
            "记录编号,证件类型,证件号码,姓名,性别,出生日期,户籍地区划代码,现住地址,现住地社区代码,登记日期,注销日期,居住事由",
            "csv", "utf-8", "证件号码", "姓名", "出生日期,登记日期,注销日期", "iso,cn",
        ),
        _feed(
            "wjw_cs",
            "出生医学证明编号,新生儿姓名,性别,出生日期,出生地点,母亲姓名,母亲身份证号,父亲姓名,父亲身份证号",
            "xlsx", "", "母亲身份证号,父亲身份证号", "新生儿姓名,母亲姓名,父亲姓名", "出生日期", "excel,cn",
        ),
        _feed(
            "wjw_sw",
            "死亡证明编号,姓名,身份证号,性别,出生日期,死亡日期,死亡地点",
            "csv", "utf-8", "身份证号", "姓名", "出生日期,死亡日期", "iso,cn",
        ),
        _feed(
            "rsj_cb",
            "社会保障号码,姓名,性别,出生日期,参保状态,参保单位,联系电话,变更日期",
            "csv", "utf-8-sig", "社会保障号码", "姓名", "出生日期,变更日期", "iso,code",
        ),
        _feed(
            "jyj_xj",
            "全国学籍号,学生姓名,证件类型,证件号码,性别,出生日期,学校名称,年级,家庭住址,监护人姓名,监护人身份证号",
            "csv", "utf-8", "证件号码,监护人身份证号", "学生姓名,监护人姓名", "出生日期", "slash,cn",
        ),
        _feed(
            "mzj_hy",
            "登记证号,登记类型,当事人身份证号,当事人姓名,配偶身份证号,配偶姓名,登记日期",
            "csv", "utf-8", "当事人身份证号,配偶身份证号", "当事人姓名,配偶姓名", "登记日期", "iso,cn",
        ),
        _feed(
            "sq_cj",
            "姓名,身份证号,性别,出生日期,民族,联系电话,现住址,社区代码,人口类型,居住状态,采集日期,信息员工号,备注",
            "xlsx", "", "身份证号", "姓名", "出生日期,采集日期", "excel,cn",
        ),
    )
}  # fmt: skip
ELDERLY_NO_ID = 0.3  # share of people aged 70 and over that officers write down without an ID number

_ETHNIC = np.array([e for e, _ in ref.ETHNICITIES] + [""], dtype=object)  # index -1 is blank
_DOC_TYPES = np.array(ref.DOC_TYPES, dtype=object)


@dataclass
class Table:
    """Rows of one source before the mess: str columns as lists, dates and sex as numpy arrays."""

    feed: Feed
    persons: np.ndarray
    cols: dict[str, Any]

    def __len__(self) -> int:
        return len(self.persons)

    @staticmethod
    def concat(feed: Feed, tables: Sequence["Table"]) -> "Table":
        """All rows of several tables of one source, in order."""
        cols: dict[str, Any] = {}
        for c in feed.columns:
            parts = [t.cols[c] for t in tables]
            if c in feed.dates or c == feed.sex:
                cols[c] = np.concatenate(
                    [np.zeros(0, dtype=np.int32 if c in feed.dates else np.int8), *parts]
                )
            else:
                cols[c] = list(chain.from_iterable(parts))
        return Table(feed, np.concatenate([np.zeros(0, dtype=np.int64), *(t.persons for t in tables)]), cols)


def _padded(numbers: np.ndarray, width: int) -> np.ndarray:
    """Numbers as zero-padded strings."""
    text = np.asarray(numbers).astype(str)
    return np.strings.zfill(text, width) if len(text) else text


def _dates(value: np.ndarray | int, n: int) -> np.ndarray:
    """A date column of n rows from an array or one day for all."""
    return np.broadcast_to(np.asarray(value, dtype=np.int32), (n,)).copy()


def _strs(value: np.ndarray | str, n: int) -> list[str]:
    """A text column of n rows from an array or one value for all."""
    # numpy types tolist() as Any; an object array of str gives its str elements.
    return cast(list[str], np.broadcast_to(np.asarray(value, dtype=object), (n,)).tolist())


class Extracts:
    """Builds each source's rows from the world; keeps the running record numbers."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.counters = dict.fromkeys(("gaj_hj", "gaj_ld", "wjw_cs", "wjw_sw", "mzj_hy"), 0)

    def _numbers(self, feed: str, k: int) -> np.ndarray:
        """The next k record numbers of a source."""
        start = self.counters[feed]
        self.counters[feed] += k
        return np.arange(start + 1, start + k + 1)

    def _table(self, feed: str, persons: np.ndarray, values: dict[str, Any]) -> Table:
        """A table of the source's columns in order, each value an array or one value for all rows."""
        n = len(persons)
        spec = FEEDS[feed]
        cols: dict[str, Any] = {}
        for c in spec.columns:
            v = values[c]
            if c in spec.dates:
                cols[c] = _dates(v, n)
            elif c == spec.sex:
                cols[c] = np.asarray(v, dtype=np.int8)
            else:
                cols[c] = _strs(v, n)
        return Table(spec, np.asarray(persons, dtype=np.int64), cols)

    def _district(self, idx: np.ndarray) -> np.ndarray:
        """District codes of where the people live."""
        a = self.w.areas
        # numpy types indexing a plain ndarray as Any
        codes: np.ndarray = np.array(a.district_codes, dtype=object)[
            a.community_district[self.w.community[idx]]
        ]
        return codes

    def _place(self, rng: np.random.Generator, idx: np.ndarray, places: tuple[str, ...]) -> np.ndarray:
        """A place (hospital, home ...) for each person, hospitals named after the person's district."""
        a = self.w.areas
        names = np.array(a.district_names)[a.community_district[self.w.community[idx]]]
        choice = rng.integers(0, len(places), len(idx))
        return np.array([places[c].format(d=d) for c, d in zip(choice, names, strict=True)], dtype=object)

    def gaj_hj(self, idx: np.ndarray, kind: str, when: np.ndarray | int) -> Table:
        """Household registration rows (变动类型 kind) of registered residents."""
        w = self.w
        return self._table("gaj_hj", idx, {
            "记录编号": np.strings.add("HJ", _padded(self._numbers("gaj_hj", len(idx)), 10)),
            "公民身份号码": w.doc_no[idx], "姓名": w.name[idx], "曾用名": w.former[idx], "性别": w.sex[idx],
            "民族": _ETHNIC[w.ethnic[idx]], "出生日期": w.birth[idx], "户号": w.hh_no[idx],
            "与户主关系": np.array(ref.RELATIONS, dtype=object)[w.relation[idx]], "户籍地址": w.address[idx],
            "户籍地区划代码": w.areas.community_codes[w.community[idx]], "变动类型": kind, "变动日期": when,
        })  # fmt: skip

    def gaj_ld(self, idx: np.ndarray, left: np.ndarray | int = NODATE) -> Table:
        """Floating population registrations; a filled 注销日期 (left) means the person has gone."""
        w = self.w
        return self._table("gaj_ld", idx, {
            "记录编号": np.strings.add("LD", _padded(self._numbers("gaj_ld", len(idx)), 10)),
            "证件类型": _DOC_TYPES[w.doc_type[idx]], "证件号码": w.doc_no[idx], "姓名": w.name[idx],
            "性别": w.sex[idx], "出生日期": w.birth[idx], "户籍地区划代码": w.origin[idx],
            "现住地址": w.address[idx], "现住地社区代码": w.areas.community_codes[w.community[idx]],
            "登记日期": w.since[idx], "注销日期": left,
            "居住事由": np.array((*ref.REASONS, ""), dtype=object)[w.reason[idx]],
        })  # fmt: skip

    def _parent(self, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Names and resident ID numbers of the given parents (blank where there is none)."""
        w = self.w
        has = parent >= 0
        p = np.where(has, parent, 0)
        resident = has & (w.doc_type[p] == RESIDENT_ID)
        return np.where(has, w.name[p], ""), np.where(resident, w.doc_no[p], "")

    def wjw_cs(self, rng: np.random.Generator, babies: np.ndarray, named: np.ndarray) -> Table:
        """Birth certificates: the baby has no ID number yet and often no name; the mother's ID links."""
        w = self.w
        numbers = self._numbers("wjw_cs", len(babies))
        m_name, m_id = self._parent(w.mother[babies])
        f_name, f_id = self._parent(w.father[babies])
        return self._table("wjw_cs", babies, {
            "出生医学证明编号": np.strings.add("Q33", _padded(numbers % 10**7, 7)),
            "新生儿姓名": np.where(named, w.name[babies], ""), "性别": w.sex[babies], "出生日期": w.birth[babies],
            "出生地点": self._place(rng, babies, ref.BIRTH_PLACES), "母亲姓名": m_name, "母亲身份证号": m_id,
            "父亲姓名": f_name, "父亲身份证号": f_id,
        })  # fmt: skip

    def wjw_sw(self, rng: np.random.Generator, idx: np.ndarray, day: int) -> Table:
        """Death certificates."""
        w = self.w
        numbers = _padded(self._numbers("wjw_sw", len(idx)), 6)
        year = str(int(ymd(np.array([day]))[0][0]))
        return self._table("wjw_sw", idx, {
            "死亡证明编号": np.strings.add(np.strings.add(self._district(idx).astype(str), year), numbers),
            "姓名": w.name[idx], "身份证号": w.doc_no[idx], "性别": w.sex[idx], "出生日期": w.birth[idx],
            "死亡日期": w.death[idx], "死亡地点": self._place(rng, idx, ref.DEATH_PLACES),
        })  # fmt: skip

    def rsj_cb(self, idx: np.ndarray, when: np.ndarray | int) -> Table:
        """Social insurance: current status and employer; the number is the resident ID number."""
        w = self.w
        employers = np.array([*w.employers, ""], dtype=object)
        return self._table("rsj_cb", idx, {
            "社会保障号码": w.doc_no[idx], "姓名": w.name[idx], "性别": w.sex[idx], "出生日期": w.birth[idx],
            "参保状态": np.array(ref.INSURANCE, dtype=object)[w.insured[idx]], "参保单位": employers[w.employer[idx]],
            "联系电话": w.phone[idx], "变更日期": when,
        })  # fmt: skip

    def grades(self, idx: np.ndarray, day: int) -> np.ndarray:
        """School grade index (reference.GRADES) by the 31 August cut-off; -1 outside ages 3 to 17."""
        y, m, _ = ymd(np.array([day]))
        school_year = int(y[0]) - (1 if m[0] < 9 else 0)
        by, bm, _ = ymd(self.w.birth[idx])
        grade = school_year - by - (bm >= 9) - 3
        return np.where((grade >= 0) & (grade < len(ref.GRADES)), grade, -1)

    def jyj_xj(self, rng: np.random.Generator, idx: np.ndarray, day: int) -> Table:
        """Student enrolment: school by home street and grade, guardian a parent."""
        w = self.w
        grade = self.grades(idx, day)
        mother, father = w.mother[idx], w.father[idx]
        guardian = np.where((mother >= 0) & ((father < 0) | (rng.random(len(idx)) < 0.6)), mother, father)
        g_name, g_id = self._parent(guardian)
        resident = w.doc_type[idx] == RESIDENT_ID
        local_no = _padded((idx * 7919 + 1234567) % 10**10, 10)
        street = w.areas.community_street[w.community[idx]]
        return self._table("jyj_xj", idx, {
            "全国学籍号": np.where(resident, np.strings.add("G", w.doc_no[idx].astype(str)),
                                  np.strings.add("L33", local_no)),
            "学生姓名": w.name[idx], "证件类型": _DOC_TYPES[w.doc_type[idx]], "证件号码": w.doc_no[idx],
            "性别": w.sex[idx], "出生日期": w.birth[idx], "学校名称": w.areas.schools[street, grade],
            "年级": np.array(ref.GRADES, dtype=object)[grade], "家庭住址": w.address[idx],
            "监护人姓名": g_name, "监护人身份证号": g_id,
        })  # fmt: skip

    def mzj_hy(self, a: np.ndarray, b: np.ndarray, kind: str, day: int) -> Table:
        """Marriage or divorce registrations, one row per party."""
        w = self.w
        year = str(int(ymd(np.array([day]))[0][0]))
        numbers = _padded(self._numbers("mzj_hy", len(a)), 6)
        cert = np.strings.add(np.strings.add(("J" if kind == "结婚" else "L") + self._district(a).astype(str),
                                             f"-{year}-"), numbers)  # fmt: skip
        one, other = np.concatenate([a, b]), np.concatenate([b, a])
        return self._table("mzj_hy", one, {
            "登记证号": np.concatenate([cert, cert]).astype(object), "登记类型": kind,
            "当事人身份证号": w.doc_no[one], "当事人姓名": w.name[one], "配偶身份证号": w.doc_no[other],
            "配偶姓名": w.name[other], "登记日期": day,
        })  # fmt: skip

    def sq_cj(
        self,
        rng: np.random.Generator,
        idx: np.ndarray,
        state: np.ndarray | int,
        community: np.ndarray,
        address: np.ndarray,
        remark: np.ndarray | str,
        day: int,
    ) -> Table:
        """Community officers' records; elderly people are often written down without an ID number."""
        w = self.w
        elderly_no_id = ((day - w.birth[idx]) / YEAR >= 70) & (rng.random(len(idx)) < ELDERLY_NO_ID)
        a = w.areas
        officer = a.community_rank[community] * 2 - rng.integers(0, 2, len(idx))
        district = np.array(a.district_codes)[a.community_district[community]]
        return self._table("sq_cj", idx, {
            "姓名": w.name[idx], "身份证号": np.where(elderly_no_id, "", w.doc_no[idx]), "性别": w.sex[idx],
            "出生日期": w.birth[idx], "民族": _ETHNIC[w.ethnic[idx]], "联系电话": w.phone[idx], "现住址": address,
            "社区代码": a.community_codes[community], "人口类型": np.array(ref.POP_TYPES, dtype=object)[w.ptype[idx]],
            "居住状态": np.array(ref.STATES, dtype=object)[state], "采集日期": day,
            "信息员工号": np.strings.add(np.strings.add("XX", district), _padded(officer, 3)),
            "备注": remark,
        })  # fmt: skip
