"""Tests for registry/linkage.py: comparison levels, the score and its explanation, bands, runner-up rule."""

import math
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import linkage
from registry.linkage import LINK_BITS, REVIEW_BITS, RUNNER_UP_BITS, Model, band, compare, decide, score
from registry.normalise.names import name_pinyin

FIELDS = ("name", "name_pinyin", "sex", "birth_date", "id_type", "id_no", "community_code", "phone")


def record(**fields: Any) -> dict[str, Any]:
    """A record's comparison fields (pinyin from the name); blanks where not given."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    out.update(fields)
    if out["name_pinyin"] is None:
        out["name_pinyin"] = name_pinyin(out["name"])
    return out


def pair(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    return {**{f"r_{k}": v for k, v in r.items()}, **{f"p_{k}": v for k, v in p.items()}}


def model(**kw: Any) -> Model:
    return Model(
        **{"m": linkage.default_m(), "log2_prior_odds": -10.0, "name_freq": {}, "population": 1000, **kw}
    )


WANG = record(
    name="王小明",
    sex="1",
    birth_date=date(1990, 3, 7),
    id_no="330102199003070035",
    community_code="330102001001",
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"name": "exact", "birth_date": "exact", "sex": "same", "id_no": "exact", "community": "same"}),
        ({"name": "王晓明"}, {"name": "same_sound"}),
        ({"name": "王小名"}, {"name": "same_sound"}),
        ({"name": "王小军"}, {"name": "similar"}),
        ({"name": "李娜"}, {"name": "different"}),
        ({"birth_date": date(1990, 7, 3)}, {"birth_date": "day_month_swapped"}),
        ({"birth_date": date(1991, 3, 7)}, {"birth_date": "one_part_differs"}),
        ({"birth_date": date(1985, 1, 1)}, {"birth_date": "different"}),
        ({"sex": "2"}, {"sex": "different"}),
        ({"id_no": "330102199003070053"}, {"id_no": "one_or_two_edits"}),
        ({"id_no": "110101199003070031"}, {"id_no": "different"}),
        ({"community_code": "330102001002"}, {"community": "same_street"}),
        ({"community_code": "330102002001"}, {"community": "same_district"}),
        ({"community_code": "330105001001"}, {"community": "different"}),
        ({"phone": "13900000000"}, {}),  # blank on one side: not compared
    ],
)
def test_the_first_level_that_holds_decides(changes: dict[str, Any], expected: dict[str, str]) -> None:
    other = record(**{**WANG, "name_pinyin": None, **changes})
    levels = compare(pair(other, WANG))
    assert {k: v for k, v in levels.items() if k in expected or not changes} == expected
    assert "phone" not in levels


@pytest.mark.parametrize(
    ("r_type", "p_type", "expected"),
    [
        ("RID", "RID", "same_kind"),
        ("PASSPORT", "HKMO", "same_kind"),  # a foreigner's passport and residence card, a compatriot's passes
        ("FPR", "PASSPORT", "same_kind"),
        ("PASSPORT", "RID", "resident_and_other"),
        ("RID", "TW", "resident_and_other"),
        ("RID", None, None),  # a person known without a document: not compared
    ],
)
def test_a_resident_id_card_against_another_document_is_weighed(
    r_type: str, p_type: str | None, expected: str | None
) -> None:
    levels = compare(pair(record(**{**WANG, "id_type": r_type}), {**WANG, "id_type": p_type}))
    assert levels.get("id_kind") == expected


def test_a_foreigner_born_the_day_a_resident_of_their_community_was_born_is_somebody_new() -> None:
    """The pair the bench's city sent to review 218 times (5 % of its foreigners): a passport, another
    name, another number, the same birth date, sex and community, among 100,000 persons."""
    foreigner = record(
        name="詹姆斯·贝尔纳", sex="1", birth_date=date(1970, 9, 28), id_type="PASSPORT", id_no="912595496",
        community_code="330106001001",
    )  # fmt: skip
    resident = record(
        name="徐浩", sex="1", birth_date=date(1970, 9, 28), id_type="RID", id_no="330106197009280099",
        community_code="330106001001",
    )  # fmt: skip
    city = model(log2_prior_odds=-math.log2(100_000), population=100_000)
    bits, explained = score(pair(foreigner, resident), city)
    assert explained["id_kind"] == ["resident_and_other", round(math.log2(0.002 / 0.05), 2)]
    assert band(bits) == "new"
    # The same two with the same kind of document would still be new, by the prior of 100,000 alone.
    same_kind, _ = score(pair({**foreigner, "id_type": "RID"}, resident), city)
    assert band(same_kind) == "new" and same_kind - bits == pytest.approx(
        math.log2(0.998 / 0.95 * 0.05 / 0.002)
    )


def test_a_name_and_its_dotless_spelling_are_the_same_name() -> None:
    dotted, dotless = record(name="安娜·金"), record(name="安娜金")
    assert compare(pair(dotted, dotless))["name"] == "exact"
    assert compare(pair(dotless, dotted))["name"] == "exact"
    assert compare(pair(dotted, record(name="安娜·琴")))["name"] != "exact"


def test_the_explanation_names_each_level_and_its_weight() -> None:
    r = record(**{**WANG, "name_pinyin": None, "birth_date": date(1990, 7, 3), "phone": "13900000000"})
    p = {**WANG, "phone": "13900000000"}
    bits, explained = score(pair(r, p), model(name_freq={"王小明": 0.004}))
    assert explained == {
        "name": ["exact", round(math.log2(0.93 / 0.004), 2)],  # u is the name's own frequency
        "birth_date": ["day_month_swapped", round(math.log2(0.01 / 1e-5), 2)],
        "sex": ["same", round(math.log2(0.995 / 0.5), 2)],
        "id_no": ["exact", round(math.log2(0.90 / 1e-7), 2)],
        "community": ["same", round(math.log2(0.75 / 5e-3), 2)],
        "phone": ["same", round(math.log2(0.6 / 1e-6), 2)],
    }
    assert bits == pytest.approx(-10.0 + sum(w for _, w in explained.values()), abs=0.03)


def test_an_unknown_name_counts_as_one_person_in_the_population() -> None:
    _, explained = score(pair(WANG, WANG), model(population=1000))
    assert explained["name"] == ["exact", round(math.log2(0.93 * 1000), 2)]


def test_name_frequencies_add_up_the_spellings_of_a_name() -> None:
    freq = linkage.name_frequencies([("安娜·金", 3), ("安娜金", 1), ("张伟", 6)], 100)
    assert freq == {"安娜金": 0.04, "张伟": 0.06}


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (LINK_BITS + 5, "link"),
        (LINK_BITS, "link"),
        (LINK_BITS - 0.01, "review"),
        (REVIEW_BITS, "review"),
        (REVIEW_BITS - 0.01, "new"),
        (-30.0, "new"),
    ],
)
def test_bands(bits: float, expected: str) -> None:
    assert band(bits) == expected
    assert decide(bits) == expected


def test_a_close_runner_up_turns_a_link_into_review() -> None:
    best = LINK_BITS + 10
    assert decide(best, best - RUNNER_UP_BITS) == "review"  # exactly the margin: too close
    assert decide(best, best - RUNNER_UP_BITS - 0.01) == "link"
    assert decide(best, best) == "review"
    assert decide(REVIEW_BITS + 1, REVIEW_BITS + 1) == "review"  # review stays review
    assert decide(REVIEW_BITS - 1, REVIEW_BITS - 1) == "new"  # and nobody stays nobody
    # The margin is two bits: a runner-up a quarter as likely as the best is still too close.
    assert (decide(20.0, 18.5), decide(20.0, 18.0), decide(20.0, 17.9)) == ("review", "review", "link")


@pytest.mark.parametrize(
    ("r_no", "p_no", "close"),
    [
        ("330160195402245563", "330106195402245565", True),  # 06 -> 60 in the region, check digit redone
        ("330106195709144865", "330106195703144864", True),  # a month digit, check digit redone
        ("330102198001010034", "330102198001010018", True),  # a twin's sequence (the name tells them apart)
        ("330102198001010018", "330102199003070035", False),  # another person
    ],
)
def test_numbers_a_digit_or_two_apart_are_close(r_no: str, p_no: str, close: bool) -> None:
    assert (
        linkage.numbers_close(pair({"id_type": "RID", "id_no": r_no}, {"id_type": "RID", "id_no": p_no}))
        is close
    )
    assert linkage.numbers_close(pair({"id_type": "PASSPORT", "id_no": "E1234567"}, {"id_no": "E1243567"}))
    assert not linkage.numbers_close(
        pair({"id_type": "PASSPORT", "id_no": "E1234567"}, {"id_no": "E7654321"})
    )


def test_a_different_name_is_never_linked_without_a_clerk() -> None:
    """The bench's eight wrong links: a new ID card number, another name, the birth date, sex and
    community of a resident whose own number had a typo (8.8 bits)."""
    assert decide(8.8, None, "different") == "review"
    assert decide(40.0, None, "different") == "review"
    assert decide(8.8, None, "similar") == decide(8.8, None, "same_sound") == decide(8.8) == "link"
    assert decide(-1.0, None, "different") == "new" and decide(3.0, None, "different") == "review"


bits_st = st.floats(-60, 60, allow_nan=False)


@given(bits_st, st.one_of(st.none(), bits_st))
def test_a_runner_up_can_only_lower_the_decision(best: float, runner_up: float | None) -> None:
    order = ["new", "review", "link"]
    decision = decide(best, runner_up)
    assert order.index(decision) <= order.index(band(best))
    if runner_up is None or runner_up < best - RUNNER_UP_BITS:
        assert decision == band(best)


# Records built from a few values each, so that pairs agree, differ slightly or are blank.
records = st.builds(
    record,
    name=st.sampled_from(["王小明", "王晓明", "王小军", "安娜·金", "安娜金", "李娜", None]),
    sex=st.sampled_from(["1", "2", None]),
    birth_date=st.sampled_from(
        [date(1990, 3, 7), date(1990, 7, 3), date(1991, 3, 7), date(1985, 1, 1), None]
    ),
    id_no=st.sampled_from(["330102199003070035", "330102199003070053", "110101199003070031", None]),
    community_code=st.sampled_from(["330102001001", "330102001002", "330102002001", "330105001001", None]),
    phone=st.sampled_from(["13900000000", "13800000000", None]),
)


@given(records, records)
def test_comparisons_are_symmetric(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert compare(pair(a, b)) == compare(pair(b, a))


@given(records, records, st.sampled_from(["sex", "birth_date", "id_no", "community_code", "phone"]))
def test_the_score_is_the_prior_plus_one_weight_per_compared_attribute(
    a: dict[str, Any], b: dict[str, Any], blank: str
) -> None:
    m = model(name_freq={"王小明": 0.01})
    bits, explained = score(pair(a, b), m)
    assert set(explained) == set(compare(pair(a, b)))
    # Exact weights, not the rounded ones of the explanation:
    weights = {k: math.log2(m.m[k][lv] / u) for k, (lv, _) in explained.items() if (u := _u(k, lv, a, m))}
    assert bits == pytest.approx(m.log2_prior_odds + sum(weights.values()))
    # Leaving an attribute blank removes exactly its weight.
    comparison = "community" if blank == "community_code" else blank
    without, _ = score(pair({**a, blank: None}, b), m)
    assert without == pytest.approx(bits - weights.get(comparison, 0.0))


def _u(comparison: str, level: str, a: dict[str, Any], m: Model) -> float:
    if comparison == "name" and level == "exact":
        return max(m.name_freq.get(a["name"].replace("·", ""), 0.0), 1 / m.population, 1e-7)
    return next(
        lv.u for c in linkage.COMPARISONS if c.name == comparison for lv in c.levels if lv.name == level
    )


def test_m_is_estimated_from_pairs_with_a_pseudo_count() -> None:
    same = [pair(WANG, WANG)] * 600
    assert linkage.estimate_m(same[:499]) is None
    m = linkage.estimate_m(same)
    assert m is not None
    assert m["birth_date"]["exact"] == pytest.approx((600 + 10 * 0.96) / 610)
    assert m["birth_date"]["different"] == pytest.approx(10 * 0.01 / 610)  # never seen, never zero
    assert m["id_no"] == linkage.default_m()["id_no"]  # the ID number decided these pairs
