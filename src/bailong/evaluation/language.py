"""Language consistency without a judge: which script a reply is in, and whether it is the one the user needs.

Labels (by script; a script's label names its most common language): "zh-Hant" (Traditional Chinese), "zh-Hans"
(Simplified Chinese), "zh" (Chinese whose script cannot be told: compatible with both), "ko" (Hangul), "ja" (kana,
with the Han characters among them), "th" (Thai), "hi" (Devanagari), "ar" (Arabic), "ru" (Cyrillic), "en" (Latin),
"other" (another script dominates) and "empty" (no letters once code, URLs, digits and punctuation are removed).
Traditional vs Simplified: OpenCC's character tables (see `_chinese_sets`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache

from bailong.data.scripts import script_of

CHINESE = ("zh-Hant", "zh-Hans", "zh")
LANGUAGES = ("en", "ko", "ja", "th", "hi", "ar", "ru", *CHINESE)  # what an expected language can be
_SCRIPT_LABEL = {
    "Latin": "en",
    "Hangul": "ko",
    "Hiragana": "ja",
    "Katakana": "ja",
    "Thai": "th",
    "Devanagari": "hi",
    "Arabic": "ar",
    "Cyrillic": "ru",
}
MIN_LETTERS = 4  # is_consistent does not judge a reply with fewer letters + Han characters ("OK", "42", "x = 2")
HAN_SHARE = 0.3  # Han characters at least this share of all letters + Han: the text is Chinese
OTHER_SHARE = 0.2  # letters of another script (kana, Hangul, Cyrillic, ...) at least this share: not Chinese
_CJK_RANGES = ((0x3400, 0x4DC0), (0x4E00, 0xA000))


@cache
def _chinese_sets() -> tuple[frozenset, frozenset]:
    """(Traditional-only, Simplified-only) characters, from OpenCC converting every CJK character both ways.

    Traditional-only: OpenCC's t2s changes it. Simplified-only: s2tw (Taiwan standard) changes it, it is not
    Traditional-only, and it is the simplified form of at most one Traditional character: a character that stands
    for several (台 for 臺/颱/檯, 里 for 裡/裏, 干 for 乾/幹) is itself ordinary Traditional text.
    """
    import opencc

    chars = [chr(c) for start, end in _CJK_RANGES for c in range(start, end)]

    def convert(config: str) -> list[str]:
        return opencc.OpenCC(config).convert("\n".join(chars)).split("\n")

    to_simplified, to_traditional = convert("t2s"), convert("s2tw")
    traditional = frozenset(c for c, s in zip(chars, to_simplified) if s != c)
    preimages: dict[str, int] = {}
    for c, s in zip(chars, to_simplified):
        if s != c:
            preimages[s] = preimages.get(s, 0) + 1
    simplified = frozenset(
        c for c, t in zip(chars, to_traditional) if t != c and c not in traditional and preimages.get(c, 0) <= 1
    )
    return traditional, simplified


def __getattr__(name: str):
    if name == "TRADITIONAL_ONLY":
        return _chinese_sets()[0]
    if name == "SIMPLIFIED_ONLY":
        return _chinese_sets()[1]
    raise AttributeError(name)


_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+", re.I)


def script_counts(text: str) -> dict[str, int]:
    """Letters per script ("han" for Han and bopomofo, "latin", "hangul", ... "other"), and Traditional-/Simplified-
    only characters, outside code and URLs."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _URL.sub(" ", _INLINE_CODE.sub(" ", _FENCE.sub(" ", text)))
    traditional_only, simplified_only = _chinese_sets()
    counts = {"han": 0, "latin": 0, "other": 0, "traditional": 0, "simplified": 0}
    for ch in text:
        script = script_of(ch)
        if script is None:
            continue
        if script in ("Han", "Bopomofo"):
            counts["han"] += 1
            counts["traditional"] += ch in traditional_only
            counts["simplified"] += ch in simplified_only
        else:
            key = script.lower() if script in _SCRIPT_LABEL else "other"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _letters(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if key not in ("traditional", "simplified"))


def _script_from_counts(counts: dict[str, int]) -> str:
    total = _letters(counts)
    if total == 0:
        return "empty"
    han, latin = counts["han"], counts["latin"]
    if han >= HAN_SHARE * total and total - han - latin < OTHER_SHARE * total:
        if counts["traditional"] > counts["simplified"]:
            return "zh-Hant"
        if counts["simplified"] > counts["traditional"]:
            return "zh-Hans"
        return "zh"
    labels: dict[str, int] = {"other": counts["other"]}
    for script, label in _SCRIPT_LABEL.items():
        labels[label] = labels.get(label, 0) + counts.get(script.lower(), 0)
    # Japanese writes kanji among its kana, Korean may write hanja among its Hangul
    labels["ja" if labels["ja"] else "ko" if labels["ko"] else "other"] += han
    return max(labels, key=lambda label: labels[label])


def detect_script(text: str) -> str:
    """The language `text` is written in, by its script: a label of the module doc."""
    return _script_from_counts(script_counts(text))


_ZH_VERBS = (
    r"(?:請|请)?(?:用|以|使用|改用|採用|采用|換成|换成|翻譯成|翻译成|翻譯為|翻译为|譯成|译成|譯為|译为|翻成|"
    r"轉成|转成|轉換成|转换成|轉為|转为|寫成|写成|改寫成|改写成)\s*"
)
_ZH_TARGETS = {
    "繁體中文|繁体中文|正體中文|正体中文|繁體字|繁体字|繁體|繁体|繁中": "zh-Hant",
    "簡體中文|简体中文|簡體字|简体字|簡體|简体|簡中|简中": "zh-Hans",
    "英文|英語|英语": "en",
    "中文|漢語|汉语|華語|华语|國語|国语": "zh",
    "韓文|韩文|韓語|韩语|韓國語|韩国语": "ko",
    "日文|日語|日语": "ja",
    "泰文|泰語|泰语": "th",
    "印地語|印地语|印地文": "hi",
    "阿拉伯文|阿拉伯語|阿拉伯语": "ar",
    "俄文|俄語|俄语": "ru",
}
_ZH_REQUEST = re.compile(_ZH_VERBS + "(" + "|".join(_ZH_TARGETS) + r")(?!\s*(?:怎|要怎|該怎|该怎|如何|是什|叫什))")
_EN_LANGUAGES = {
    "english": "en", "korean": "ko", "japanese": "ja", "thai": "th", "hindi": "hi", "arabic": "ar", "russian": "ru",
}  # fmt: skip
_EN_TARGET = r"(?:(traditional|simplified)\s+)?(english|chinese|mandarin|korean|japanese|thai|hindi|arabic|russian)\b"
# Korean: "영어로 답하세요" (answer in English), "한국어로 번역해 주세요" (translate into Korean)
_KO_TARGETS = {"영어": "en", "한국어": "ko", "한글": "ko", "중국어": "zh", "일본어": "ja", "러시아어": "ru"}
_KO_REQUEST = re.compile(
    "(" + "|".join(_KO_TARGETS) + r")\s*로\s*(?:답|대답|응답|번역|작성|써|쓰|설명|말|요약|바꿔|옮겨)"
)
_EN_REQUEST = re.compile(
    r"\b(?:answer|respond|reply|write|translate|explain|rewrite|summari[sz]e|describe|response|speak|talk)\b"
    r"[^.?!\n]{0,40}?\b(?:in|into|to|using)\s+"
    + _EN_TARGET
    + r"|\b(?:please\s+)?(?:use|using)\s+"
    + _EN_TARGET
    + r"|\bin\s+"
    + _EN_TARGET
    + r"\s*(?:only|please)\b",
    re.I,
)


def _zh_target(word: str) -> str:
    return next(label for words, label in _ZH_TARGETS.items() if word in words.split("|"))


def _en_target(variant: str | None, language: str) -> str:
    if language.lower() in _EN_LANGUAGES:
        return _EN_LANGUAGES[language.lower()]
    return {"traditional": "zh-Hant", "simplified": "zh-Hans"}.get((variant or "").lower(), "zh")


def requested_language(question: str) -> str | None:
    """The reply language the question explicitly asks for (asked in English, Chinese or Korean): a label of the
    module doc ("zh": Chinese, script unspecified) or None. The first request in the text wins; "「蘋果」用英文怎麼說"
    is not a request."""
    found: list[tuple[int, str]] = []
    for match in _KO_REQUEST.finditer(question or ""):
        found.append((match.start(), _KO_TARGETS[match.group(1)]))
    for match in _ZH_REQUEST.finditer(question or ""):
        found.append((match.start(), _zh_target(match.group(1))))
    for match in _EN_REQUEST.finditer(question or ""):
        groups = [g for g in match.groups()]
        for i in range(0, len(groups), 2):
            if groups[i + 1]:
                found.append((match.start(), _en_target(groups[i], groups[i + 1])))
                break
    return min(found)[1] if found else None


def expected_language(question: str) -> str:
    """The language a reply to `question` must be in: an explicit request, else the question's own script.

    An unspecified "Chinese" request in a Chinese question takes the question's script (Traditional stays strict).
    """
    requested = requested_language(question)
    own = detect_script(question)
    if requested == "zh" and own in ("zh-Hant", "zh-Hans"):
        return own
    return requested or own


def is_consistent(question: str, answer: str, expected: str | None = None) -> bool | None:
    """Whether `answer` is in the language the user needs (`expected`, else see `expected_language`).

    Returns None when that cannot be judged: the expected language is unknown ("other"/"empty" question), or the
    answer has fewer than MIN_LETTERS letters + Han characters (empty, "OK", "42"). An answer in another script is
    a miss. "zh" (undetermined Chinese) is compatible with both zh-Hant and zh-Hans, on either side.
    """
    expected = expected or expected_language(question)
    if expected not in LANGUAGES:
        return None
    counts = script_counts(answer)
    if _letters(counts) < MIN_LETTERS:
        return None
    got = _script_from_counts(counts)
    if expected not in CHINESE or got not in CHINESE:
        return got == expected
    return "zh" in (expected, got) or got == expected


def consistency_rate(pairs: Iterable[Sequence[str | None]]) -> dict:
    """Summary over (question, answer) or (question, answer, expected) items: {"rate", "checked", "misses",
    "skipped"}; rate is consistent/checked, None when nothing could be checked."""
    checked = misses = skipped = 0
    for item in pairs:
        question, answer = item[0], item[1]
        expected = item[2] if len(item) > 2 else None
        verdict = is_consistent(question or "", answer or "", expected)
        if verdict is None:
            skipped += 1
            continue
        checked += 1
        misses += not verdict
    rate = (checked - misses) / checked if checked else None
    return {"rate": rate, "checked": checked, "misses": misses, "skipped": skipped}
