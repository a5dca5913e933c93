"""Tests for registry/normalise/names.py."""

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.normalise.names import name_key, name_pinyin, name_similarity, normalise_name, surname

NAME_CHARACTERS = (
    "王李张刘陈杨黄赵周吴徐孙马朱胡郭何高林罗晓小明铭伟芳娜丽强军欧阳司马阿依古丽买提"
    "張陳劉趙黃吳孫曉偉麗強軍歐陽馬買薴苧乾後髮"
    "abcxyzABCXYZéüñßＡｂ０１2"
    " \t\u3000\u200b\ufeff-"
    "·•．.・‧･∙⋅"
)
realistic_names = st.text(alphabet=NAME_CHARACTERS, max_size=12)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张伟", "张伟"),
        ("張偉", "张伟"),
        ("陳曉明", "陈晓明"),
        ("歐陽娜娜", "欧阳娜娜"),
        ("王 小明", "王小明"),
        (" 王\u3000小 明 ", "王小明"),
        ("王\u200b小明", "王小明"),
        ("ＷＡＮＧ", "WANG"),
        ("阿依古丽·买买提", "阿依古丽·买买提"),
        ("阿依古丽 • 买买提", "阿依古丽·买买提"),
        ("阿依古丽．买买提", "阿依古丽·买买提"),
        ("阿依古丽.买买提", "阿依古丽·买买提"),
        ("阿依古丽・买买提", "阿依古丽·买买提"),
        ("阿依古丽･买买提", "阿依古丽·买买提"),
        ("阿依古丽‧买买提", "阿依古丽·买买提"),
        ("阿依古丽∙买买提", "阿依古丽·买买提"),
        ("阿依古丽⋅买买提", "阿依古丽·买买提"),
        ("阿依古丽··买买提", "阿依古丽·买买提"),
        ("·阿依古丽·", "阿依古丽"),
        ("Mary • Jane", "MARY·JANE"),
        ("MARY．JANE", "MARY·JANE"),
        ("mary·jane", "MARY·JANE"),
        ("  john   smith ", "JOHN SMITH"),
        ("José García", "JOSÉ GARCÍA"),
        ("", None),
        ("   ", None),
        (" · ", None),
        (None, None),
    ],
)
def test_normalise_name(raw: str | None, expected: str | None) -> None:
    assert normalise_name(raw) == expected


# Every separator dot departments send, as the stored name keeps it: one U+00B7 between the parts.
DOT_VARIANTS = ["\u00b7", "\u2022", "\u30fb", "\uff65", "\u2027", "\u2219", "\u22c5", "\uff0e", ".", "\ufe52"]


@pytest.mark.parametrize("dot", DOT_VARIANTS)
def test_a_dotted_name_keeps_one_standard_middle_dot(dot: str) -> None:
    assert normalise_name(f"安娜{dot}金") == "安娜\u00b7金"
    assert normalise_name(f" 安娜 {dot} 金 ") == "安娜\u00b7金"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("安娜·金", "安娜金"),
        ("安娜金", "安娜金"),
        ("安娜・金", "安娜金"),
        ("阿依古丽．买买提", "阿依古丽买买提"),
        ("Mary • Jane", "MARYJANE"),
        ("mary jane", "MARYJANE"),
        ("張偉", "张伟"),
        (" · ", None),
        (None, None),
    ],
)
def test_name_key_sets_separators_aside(raw: str | None, expected: str | None) -> None:
    assert name_key(raw) == expected


@settings(deadline=None)
@given(realistic_names)
def test_name_key_is_the_name_without_its_dots(raw: str) -> None:
    """Matching treats a name and its dot-less spelling alike; the stored name is unchanged by the key."""
    undotted = "".join(c for c in raw if c not in "·•．.・‧･∙⋅")
    name = normalise_name(raw)
    if name_key(undotted) is not None:
        assert name_key(raw) == name_key(undotted)
    assert name_key(name) == name_key(raw)


def test_opencc_chains_are_followed_to_the_simplified_form() -> None:
    assert normalise_name("薴") == "苎"


@settings(deadline=None)
@given(realistic_names)
def test_normalise_name_is_idempotent(raw: str) -> None:
    once = normalise_name(raw)
    assert normalise_name(once) == once


@settings(deadline=None)
@given(st.text(max_size=12))
def test_normalise_name_is_idempotent_on_any_text(raw: str) -> None:
    once = normalise_name(raw)
    assert normalise_name(once) == once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("王晓明", "wangxiaoming"),
        ("王小明", "wangxiaoming"),
        ("王 曉明", "wangxiaoming"),
        ("吕绿", "lvlv"),
        ("阿依古丽·买买提", "ayigulimaimaiti"),
        ("Mary • Jane", "maryjane"),
        ("José García", "josegarcia"),
        ("", None),
        (None, None),
        ("123", None),
    ],
)
def test_name_pinyin(raw: str | None, expected: str | None) -> None:
    assert name_pinyin(raw) == expected


def test_homophones_have_equal_pinyin() -> None:
    assert normalise_name("王晓明") != normalise_name("王小明")
    assert name_pinyin("王晓明") == name_pinyin("王小明")
    assert name_pinyin("李明") == name_pinyin("李铭")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("王小明", "王"),
        ("張偉", "张"),
        ("欧阳娜娜", "欧阳"),
        ("歐陽娜娜", "欧阳"),
        ("司马光", "司马"),
        ("诸葛亮", "诸葛"),
        ("上官婉儿", "上官"),
        ("东方明", "东方"),
        ("万俟卨", "万俟"),
        ("钟离春", "钟离"),
        ("欧明", "欧"),
        ("阿依古丽·买买提", "阿"),
        ("MARY JANE", None),
        ("", None),
        (None, None),
    ],
)
def test_surname(raw: str | None, expected: str | None) -> None:
    assert surname(raw) == expected


def test_similarity_of_equal_and_equivalent_names_is_one() -> None:
    assert name_similarity("王小明", "王小明") == 1.0
    assert name_similarity("陳曉明", "陈晓明") == 1.0
    assert name_similarity("王晓明", "王小明") == 1.0
    assert name_similarity("Mary • Jane", "MARY JANE") == 1.0


def test_similarity_uses_characters_not_bytes() -> None:
    # 4 of 8 characters match in order with a common prefix of 4: Jaro (4/8 + 4/4 + 1) / 3 = 5/6, Winkler
    # 5/6 + 4 * 0.1 * 1/6 = 0.9 (on UTF-8 bytes it would be 0.904; the pinyin score is 0.893).
    assert name_similarity("阿依古丽·买买提", "阿依古丽") == pytest.approx(0.9)


def test_similarity_takes_the_better_of_characters_and_sound() -> None:
    # Characters alone: (2/3 + 2/3 + 1) / 3 + 0.1 * 2/9 = 0.8; the pinyin is identical.
    assert name_similarity("王晓明", "王小明") == 1.0
    assert name_similarity("李建国", "李建华") == pytest.approx(0.9111, abs=1e-4)


def test_similarity_of_different_names_is_low() -> None:
    assert name_similarity("张伟", "李娜") < 0.5
    assert name_similarity("王伟", "王卫国") < name_similarity("王伟", "王卫")


def test_similarity_with_a_blank_is_zero() -> None:
    assert name_similarity(None, "张伟") == 0.0
    assert name_similarity("张伟", " ") == 0.0
    assert name_similarity(None, None) == 0.0


@settings(deadline=None)
@given(realistic_names, realistic_names)
def test_similarity_is_a_symmetric_score_in_the_unit_interval(a: str, b: str) -> None:
    score = name_similarity(a, b)
    assert 0.0 <= score <= 1.0
    assert score == name_similarity(b, a)
    if normalise_name(a) is not None:
        assert name_similarity(a, a) == 1.0


# Characters of the synthetic city's names and of some of pypinyin's phrases (so that random texts
# often hold a phrase: 长安, 重庆, 银行, 朝阳, 单于 …), read per character or per phrase.
_PHRASE_PRONE = "长安重庆银行朝阳单于曾参乐天都会觉得和平解放行长大夫"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_PHRASE_PRONE + NAME_CHARACTERS, min_size=1, max_size=8))
def test_a_name_read_per_character_equals_pypinyins_reading(text: str) -> None:
    from pypinyin import Style, lazy_pinyin

    from registry.normalise.names import _spell

    assert _spell(text) == "".join(lazy_pinyin(text, style=Style.NORMAL))


def test_every_synthetic_surname_with_every_given_character_reads_as_pypinyin_reads_it() -> None:
    from pypinyin import Style, lazy_pinyin

    from registry.normalise.names import _spell
    from synth.reference import GIVEN_CHARS, SURNAMES

    given = sorted(set("".join(GIVEN_CHARS.values())))
    names = [s + g for s, _ in SURNAMES for g in given] + [
        s + g + h for s, _ in SURNAMES[:3] for g in given for h in given[:40]
    ]
    assert len(names) > 30_000
    differ = [n for n in names if _spell(n) != "".join(lazy_pinyin(n, style=Style.NORMAL))]
    assert differ == []


def _spelling_process(cache_home: Path, names: str) -> list[str]:
    """In a new process with its own cache folder: is pypinyin loaded after importing the exchange path,
    each of `names` spelled, and is pypinyin loaded after spelling each."""
    import subprocess
    import sys

    probe = (
        "import sys, exchange.flows, registry.normalise.names as n; print('pypinyin' in sys.modules)\n"
        f"for name in {names!r}.split(): print(n.name_pinyin(name), 'pypinyin' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()


def test_pypinyin_is_loaded_only_to_write_the_readings_cache(
    tmp_path: Path,
) -> None:
    """The gate, merge, publish, statistics and every web page import this module through the exchange
    path but spell no name: they must not pay for pypinyin's data (0.2-0.4 s a process); a name spelled
    reads the cache (written by the first process that spelled one), a name holding one of pypinyin's
    phrases (长江) included."""
    first = _spelling_process(tmp_path, "王小明 王长江")
    assert first == ["False", "wangxiaoming", "True", "wangchangjiang", "True"]  # it wrote the cache
    assert len(list((tmp_path / "popex").glob("pypinyin-readings-*.json"))) == 1
    assert _spelling_process(tmp_path, "王小明 王长江") == [
        "False", "wangxiaoming", "False", "wangchangjiang", "False"
    ]  # fmt: skip
    for cache in (tmp_path / "popex").iterdir():  # a damaged cache is read as no cache, and written again
        cache.write_bytes(b"\x00damaged")
    assert _spelling_process(tmp_path, "王小明") == ["False", "wangxiaoming", "True"]
    assert _spelling_process(tmp_path, "王小明") == ["False", "wangxiaoming", "False"]


def test_the_cached_reading_of_every_character_is_pypinyins() -> None:
    """Every character pypinyin knows, and characters it does not (read as themselves), in the BMP's
    CJK blocks, extension B's first 2,000, Latin letters and the name separator."""
    from pypinyin import Style, lazy_pinyin

    from registry.normalise.names import _readings

    _, _, chars = _readings()
    blocks = [range(0x3400, 0x4DC0), range(0x4E00, 0xA000), range(0xF900, 0xFB00), range(0x20000, 0x207D0)]
    texts = [chr(c) for block in blocks for c in block] + list("ABCXYZÜ·")
    differ = [t for t in texts if chars.get(t, t) != "".join(lazy_pinyin(t, style=Style.NORMAL))]
    assert len(chars) > 20_000
    assert differ == []


def _pypinyin_reads(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(text, style=Style.NORMAL))


def test_every_phrase_inside_a_name_reads_as_pypinyin_reads_it() -> None:
    """Each of pypinyin's 47,000 phrases after a surname and before a given character, and its first
    characters run into the next phrase's (pypinyin then segments differently)."""
    from registry.normalise.names import _readings, _spell

    phrases = sorted(_readings().phrases)
    assert len(phrases) > 40_000
    texts = [f"王{p}明" for p in phrases] + [a[:-1] + b for a, b in zip(phrases, phrases[1:] + phrases[:1])]
    differ = [t for t in texts if _spell(t) != _pypinyin_reads(t)]
    assert differ == []


@st.composite
def _phrase_pieces(draw: st.DrawFn) -> str:
    """A text of pieces of pypinyin's phrases (whole, or their first or last characters), name
    characters, separators and Latin letters: where pypinyin's segmenter has choices to make."""
    from registry.normalise.names import _readings

    phrases = sorted(_readings().phrases)
    pieces = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["phrase", "head", "tail", "char", "other"]))
        if kind == "char":
            pieces.append(draw(st.sampled_from(NAME_CHARACTERS)))
        elif kind == "other":
            pieces.append(draw(st.sampled_from(["·", "A", " ", "1", "〇"])))
        else:
            phrase = phrases[draw(st.integers(0, len(phrases) - 1))]
            cut = draw(st.integers(1, len(phrase)))
            pieces.append({"phrase": phrase, "head": phrase[:cut], "tail": phrase[-cut:]}[kind])
    return "".join(pieces)


@settings(max_examples=3000, deadline=None)
@given(_phrase_pieces())
def test_a_text_of_phrase_pieces_reads_as_pypinyin_reads_it(text: str) -> None:
    from registry.normalise.names import _spell

    assert _spell(text) == _pypinyin_reads(text)


def test_chinese_characters_are_those_pypinyin_segments() -> None:
    from pypinyin.constants import RE_HANS

    from registry.normalise.names import _HAN

    planes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    differ = [c for c in planes if bool(_HAN.match(chr(c))) != bool(RE_HANS.match(chr(c)))]
    assert differ == []
