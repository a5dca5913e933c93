"""Person names: one canonical spelling, a matching key, toneless pinyin, surname and a similarity score."""

import bisect
import contextlib
import importlib.util
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

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
# The characters pypinyin reads as Chinese (pypinyin.constants.RE_HANS, its wide-build form): it
# segments runs of them by its phrases and leaves the rest as they are.
_HAN_CLASS = (
    "\u3007\ue815-\ue864\ufa18\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
    "\U0002a703-\U0002b73f\U0002b740-\U0002b81d\U0002b825-\U0002bf6e\U0002c029-\U0002ce93\U0002d016"
    "\U0002d11b-\U0002ebd9\U0002f80a-\U0002fa1f\U00030000-\U0003134a\U000300f7-\U00031288"
    "\U00030edd\U00030ede\U00031350-\U00032389"
)
_HAN = re.compile(f"[{_HAN_CLASS}]")
_HAN_RUN = re.compile(f"[{_HAN_CLASS}]+|[^{_HAN_CLASS}]+")
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
    0.2-0.4 s; only the process that writes the readings cache needs it)."""
    from pypinyin import Style, lazy_pinyin

    def read(text: str) -> str:
        return "".join(lazy_pinyin(text, style=Style.NORMAL))

    return read


class _Readings(NamedTuple):
    """What spelling a name needs of pypinyin's data: its phrases' toneless readings, its longest
    phrase, and its toneless reading of every character it knows."""

    phrases: dict[str, str]
    longest: int
    chars: dict[str, str]


@cache
def _readings() -> _Readings:
    """pypinyin's readings, from a cache that the first process to need them writes (see _readings_cache)
    in about 40 ms instead of pypinyin's own data in 0.2-0.4 s a process."""
    path = _readings_cache()
    if path is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):  # none yet, or damaged: written again
            phrases, chars = json.loads(path.read_bytes())
            if isinstance(phrases, dict) and phrases and isinstance(chars, dict):
                return _Readings(phrases, max(map(len, phrases)), chars)
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

    read = _pypinyin()
    phrases = {p: read(p) for p in sorted(PHRASES_DICT)}  # a phrase alone is read as that phrase
    chars = {chr(c): read(chr(c)) for c in sorted(PINYIN_DICT)}
    if path is not None:  # written whole (a reader sees all of it or nothing); an unwritable folder: none
        from base import storage  # here, not with the module: only the process that writes the cache

        with contextlib.suppress(OSError):
            storage.write_whole(path, json.dumps([phrases, chars], ensure_ascii=False).encode())
    return _Readings(phrases, max(map(len, phrases)), chars)


def _readings_cache() -> Path | None:
    """Where _readings is kept: the user's cache folder, one file per version of pypinyin's data (named
    by its files' sizes and times, found without importing pypinyin) and of this cache's layout; None
    without pypinyin's files."""
    spec = importlib.util.find_spec("pypinyin")
    if spec is None or spec.origin is None:
        return None
    data = [Path(spec.origin).with_name(f) for f in ("phrases_dict.json", "pinyin_dict.json")]
    try:
        stamp = "-".join(f"{s.st_size}.{s.st_mtime_ns}" for s in map(os.stat, data))
    except OSError:  # an installation without them (an older pypinyin kept its data in modules)
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "popex" / f"pypinyin-readings-2-{stamp}.json"


@cache
def _phrase_order() -> list[str]:
    """pypinyin's phrases in order, to tell whether a text begins one of them (a binary search)."""
    return sorted(_readings().phrases)


def _begins_a_phrase(text: str) -> bool:
    order = _phrase_order()
    at = bisect.bisect_left(order, text)
    return at < len(order) and order[at].startswith(text)


def _segments(run: str, phrases: dict[str, str]) -> Iterator[str]:
    """pypinyin's strict forward maximum matching (pypinyin.seg.mmseg, no_non_phrases=True) of a run of
    Chinese characters: at each place the longest phrase that begins there, found by extending the text
    while it still begins some phrase; where none, one character. Where the rest of the run begins a
    phrase without holding one, pypinyin gives the rest character by character and stops segmenting."""
    rest = run
    while rest:
        found = ""
        for end in range(1, len(rest) + 1):
            word = rest[:end]
            if not _begins_a_phrase(word):
                break
            if word in phrases:
                found = word
        else:
            if not found:
                yield from rest
                return
        piece = found or rest[0]
        yield piece
        rest = rest[len(piece) :]


def _spell(text: str) -> str:
    """pypinyin's toneless reading of a text, joined, from _readings alone. pypinyin splits a text into
    runs of Chinese characters and the rest (read as themselves, or as pypinyin reads the character),
    segments each run by its phrase dictionary (_segments) and reads a phrase as the phrase and the
    rest per character; a name with no part in that dictionary (about 99 % of names) needs no
    segmenting (tests/registry/test_normalise_names.py compares with pypinyin)."""
    phrases, longest, chars = _readings()
    n = len(text)
    if not any(text[i:j] in phrases for i in range(n) for j in range(i + 1, min(n, i + longest) + 1)):
        return "".join([chars.get(c, c) for c in text])
    spelled = []
    for run in _HAN_RUN.findall(text):
        if _HAN.match(run):
            spelled += [phrases.get(piece) or chars.get(piece, piece) for piece in _segments(run, phrases)]
        else:
            spelled += [chars.get(c, c) for c in run]
    return "".join(spelled)


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
