"""Person names: one canonical spelling, a matching key, toneless pinyin, surname and a similarity score."""

import contextlib
import importlib.util
import json
import os
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

import opencc
from rapidfuzz.distance import JaroWinkler

_CACHE_SIZE = 1 << 20
_T2S = opencc.OpenCC("t2s")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# Separator dots seen in minority and foreign names; NFKC has already turned U+FF0E into '.' and
# U+FF65 into U+30FB. Zero-width characters (copied from web forms) are dropped in the same pass.
_DOTS = "\u00b7\u2022\u002e\u30fb\u2027\u2219\u22c5\u0387\u2e31\ua78f\u16eb\u318d"
_TRANSLATE = str.maketrans(
    {**dict.fromkeys(_DOTS, "\u00b7"), **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff")}
)
_DOT_RUN = re.compile(r"\s*(?:\u00b7\s*)+")
COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "令狐", "夏侯",
    "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "澹台", "公冶", "太史", "申屠", "钟离", "司空",
    "闻人", "赫连", "东郭", "拓跋", "濮阳", "淳于", "单于", "公羊", "鲜于", "闾丘", "司寇", "子车", "颛孙", "漆雕",
    "谷梁", "段干", "巫马", "公西", "左丘", "东门", "第五", "羊舌", "微生", "梁丘", "公良", "亓官", "壤驷", "夹谷",
    "宰父",
})  # fmt: skip


def _to_simplified(text: str) -> str:
    """OpenCC t2s repeated to a fixed point: its table has chains such as 薴→苧→苎."""
    while (converted := _T2S.convert(text)) != text:
        text = converted
    return text


@lru_cache(maxsize=_CACHE_SIZE)
def normalise_name(raw: str | None) -> str | None:
    """Canonical name: half-width, simplified, one '·' between parts; Chinese without spaces, Latin upper."""
    if raw is None:
        return None
    text = _DOT_RUN.sub("\u00b7", unicodedata.normalize("NFKC", raw).translate(_TRANSLATE))
    text = text.strip().strip("\u00b7")
    text = _to_simplified("".join(text.split())) if _CJK.search(text) else " ".join(text.split()).upper()
    # Again, as removing spaces and upper-casing can leave a combining mark to compose (U ¯ → Ū).
    return unicodedata.normalize("NFKC", text) or None


@lru_cache(maxsize=_CACHE_SIZE)
def name_key(name: str | None) -> str | None:
    """The normalised name without separators ('·', spaces), for matching only: 安娜·金 and 安娜金 agree.

    The name itself is stored with its '·' (normalise_name); some departments' systems cannot type
    the dot and send the parts run together, which is the same name.
    """
    normalised = normalise_name(name)
    if normalised is None:
        return None
    return normalised.replace("\u00b7", "").replace(" ", "") or None


@lru_cache(maxsize=_CACHE_SIZE)
def name_pinyin(name: str | None) -> str | None:
    """Toneless pinyin of the normalised name, letters a-z only (Latin names: letters without accents)."""
    normalised = normalise_name(name)
    if normalised is None:
        return None
    spelled = _spell(normalised)
    letters = "".join(c for c in unicodedata.normalize("NFKD", spelled.lower()) if "a" <= c <= "z")
    return letters or None


@cache
def _pypinyin() -> Callable[[str], str]:
    """pypinyin's toneless reading of a text, joined (importing pypinyin loads its phrase dictionary:
    0.2-0.4 s, which only the rare name holding one of its phrases needs; _readings has the rest)."""
    from pypinyin import Style, lazy_pinyin

    def read(text: str) -> str:
        return "".join(lazy_pinyin(text, style=Style.NORMAL))

    return read


@cache
def _readings() -> tuple[frozenset[str], int, dict[str, str]]:
    """pypinyin's phrases (their texts), its longest phrase, and its toneless reading of every character
    it knows: what spelling a name needs, read from a cache that the first process to need them writes
    (see _readings_cache) in about 25 ms instead of pypinyin's own data in 0.2-0.4 s a process."""
    path = _readings_cache()
    if path is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):  # none yet, or damaged: written again
            phrases, chars = json.loads(path.read_bytes())
            if isinstance(phrases, list) and isinstance(chars, dict):
                return frozenset(phrases), max(map(len, phrases)), chars
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

    read = _pypinyin()
    phrases, chars = sorted(PHRASES_DICT), {chr(c): read(chr(c)) for c in sorted(PINYIN_DICT)}
    if path is not None:  # written whole (a reader sees all of it or nothing); an unwritable folder: none
        from base import storage  # here, not with the module: only the process that writes the cache

        with contextlib.suppress(OSError):
            storage.write_whole(path, json.dumps([phrases, chars], ensure_ascii=False).encode())
    return frozenset(phrases), max(map(len, phrases)), chars


def _readings_cache() -> Path | None:
    """Where _readings is kept: the user's cache folder, one file per version of pypinyin's data (named
    by its files' sizes and times, found without importing pypinyin); None without pypinyin's files."""
    spec = importlib.util.find_spec("pypinyin")
    if spec is None or spec.origin is None:
        return None
    data = [Path(spec.origin).with_name(f) for f in ("phrases_dict.json", "pinyin_dict.json")]
    try:
        stamp = "-".join(f"{s.st_size}.{s.st_mtime_ns}" for s in map(os.stat, data))
    except OSError:  # an installation without them (an older pypinyin kept its data in modules)
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "popex" / f"pypinyin-readings-{stamp}.json"


def _spell(text: str) -> str:
    """pypinyin's toneless reading of a text, joined. pypinyin reads a text per character except the
    parts its segmenter finds in its phrase dictionary; a name with no part in that dictionary (about
    99 % of names) is therefore read per character here, from _readings (a character pypinyin does not
    know reads as itself, as pypinyin leaves it), which is the same result at a fraction of the cost
    (tests/registry/test_normalise_names.py compares both)."""
    phrases, longest, chars = _readings()
    n = len(text)
    if any(text[i:j] in phrases for i in range(n) for j in range(i + 1, min(n, i + longest) + 1)):
        return _pypinyin()(text)
    return "".join([chars.get(c, c) for c in text])


def surname(name: str | None) -> str | None:
    """Surname of a Chinese-script name: a known two-character compound, else the first character."""
    normalised = normalise_name(name)
    if normalised is None or not _CJK.match(normalised):
        return None
    return normalised[:2] if normalised[:2] in COMPOUND_SURNAMES else normalised[0]


def name_similarity(a: str | None, b: str | None) -> float:
    """Similarity in [0, 1] of two names; 0.0 when either is blank.

    The max of Jaro-Winkler on the characters (rapidfuzz compares code points, so one Chinese character
    is one unit, not three UTF-8 bytes) and on the toneless pinyin: typos that keep the sound
    (晓/小, 明/铭) then score 1.0, as do different spellings of a Latin name (MARY·JANE, MARY JANE).
    Exact agreement is a separate, stronger comparison level: compare name_key results for it.
    """
    left, right = normalise_name(a), normalise_name(b)
    if left is None or right is None:
        return 0.0
    if left == right:
        return 1.0
    by_chars = JaroWinkler.similarity(left, right)
    left_sound, right_sound = name_pinyin(left), name_pinyin(right)
    by_sound = JaroWinkler.similarity(left_sound, right_sound) if left_sound and right_sound else 0.0
    return max(by_chars, by_sound)
