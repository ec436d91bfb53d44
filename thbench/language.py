"""Can a voice of this language speak this text? An offline Unicode-script check, no model.

A voice fed letters of a script its language does not use fails silently: Piper's English voice
says "Chinese letter" over and over. So the text's letters are counted per script (from their
Unicode names) and compared with the scripts the voice's language is written in. Mixed text
passes when at least half of it is in the voice's scripts, so a brand name or a foreign word
does not stop a run. Digits, punctuation, spaces and emoji are not letters and do not count.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# Han ideographs, kana and Hangul blocks stand for a syllable each, Latin letters for about a
# third of one: share() weighs them so "我喜欢用iPhone" is still mostly Chinese.
SYLLABLE_WEIGHT = {"Han": 3, "Hiragana": 3, "Katakana": 3, "Hangul": 3}
PASS_SHARE = 0.5  # the voice's scripts must hold at least this share of the text's letters

# First word of a letter's Unicode name -> its script; a name starting otherwise is "Other".
_NAME_SCRIPT = {
    "CJK": "Han", "IDEOGRAPHIC": "Han", "KATAKANA-HIRAGANA": "Katakana", "ORIYA": "Odia",
    "CANADIAN": "Canadian Aboriginal", "NKO": "NKo", "YI": "Yi",
    **{name.upper(): name for name in (
        "Latin", "Hiragana", "Katakana", "Hangul", "Bopomofo", "Cyrillic", "Greek", "Coptic",
        "Arabic", "Hebrew", "Syriac", "Thaana", "Devanagari", "Bengali", "Tamil", "Telugu",
        "Kannada", "Malayalam", "Gujarati", "Gurmukhi", "Sinhala", "Thai", "Lao", "Khmer",
        "Myanmar", "Tibetan", "Mongolian", "Georgian", "Armenian", "Ethiopic", "Cherokee",
        "Tifinagh", "Shavian", "Javanese", "Balinese", "Sundanese", "Vai", "Adlam")},
}

# Languages not written in Latin alone; every other language tag means Latin. Ordered: the
# two-letter codes listed first per script are the ones a TIP names (Mismatch.languages).
_HAN, _CYR = frozenset({"Han"}), frozenset({"Cyrillic"})
_ARAB, _DEVA = frozenset({"Arabic"}), frozenset({"Devanagari"})
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    "zh": _HAN, "cmn": _HAN, "yue": _HAN, "wuu": _HAN, "hak": _HAN, "nan": _HAN, "gan": _HAN,
    "hsn": _HAN,
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    # Korean is written in Hangul today; Hanja in a minority still passes the half rule, and
    # counting Han as Korean would name Korean voices for a Chinese text.
    "ko": frozenset({"Hangul"}),
    **dict.fromkeys(("ru", "uk", "bg", "be", "mk", "kk", "ky", "tg", "mn", "tt", "ba", "cv",
                     "nog"), _CYR),
    "sr": frozenset({"Cyrillic", "Latin"}), "hbs": frozenset({"Cyrillic", "Latin"}),
    **dict.fromkeys(("ar", "fa", "ur", "ps", "ug", "sd", "ckb"), _ARAB),
    "he": frozenset({"Hebrew"}), "yi": frozenset({"Hebrew"}),
    "el": frozenset({"Greek"}), "grc": frozenset({"Greek"}),
    **dict.fromkeys(("hi", "mr", "ne", "sa", "kok", "mai"), _DEVA),
    "bn": frozenset({"Bengali"}), "as": frozenset({"Bengali"}), "bpy": frozenset({"Bengali"}),
    "ta": frozenset({"Tamil"}), "te": frozenset({"Telugu"}), "kn": frozenset({"Kannada"}),
    "ml": frozenset({"Malayalam"}), "gu": frozenset({"Gujarati"}), "pa": frozenset({"Gurmukhi"}),
    "or": frozenset({"Odia"}), "si": frozenset({"Sinhala"}), "th": frozenset({"Thai"}),
    "lo": frozenset({"Lao"}), "km": frozenset({"Khmer"}), "my": frozenset({"Myanmar"}),
    "shn": frozenset({"Myanmar"}), "bo": frozenset({"Tibetan"}), "dv": frozenset({"Thaana"}),
    "ka": frozenset({"Georgian"}), "hy": frozenset({"Armenian"}), "hyw": frozenset({"Armenian"}),
    "am": frozenset({"Ethiopic"}), "ti": frozenset({"Ethiopic"}), "chr": frozenset({"Cherokee"}),
}
LATIN = frozenset({"Latin"})

# ISO 15924 script subtags (`sr-Latn`, `cmn-Latn-pinyin`, `en-Shaw`) override the language's own.
SCRIPT_SUBTAGS = {
    "latn": LATIN, "cyrl": _CYR, "arab": _ARAB, "deva": _DEVA, "hans": _HAN, "hant": _HAN,
    "hani": _HAN, "jpan": LANGUAGE_SCRIPTS["ja"], "hira": frozenset({"Hiragana"}),
    "kana": frozenset({"Katakana"}), "kore": frozenset({"Hangul", "Han"}),
    "hang": frozenset({"Hangul"}), "grek": frozenset({"Greek"}), "hebr": frozenset({"Hebrew"}),
    "beng": frozenset({"Bengali"}), "guru": frozenset({"Gurmukhi"}), "shaw": frozenset({"Shavian"}),
}


@dataclass(frozen=True)
class Mismatch:
    """Why a voice cannot speak a text: its main foreign script and who writes in that."""

    script: str  # the text's dominant script outside the voice's
    share: float  # that script's weighted share of the text's letters, 0..1
    # Two-letter codes of the non-Latin languages that could speak the text; () when the text
    # is mostly Latin, which most languages are written in.
    languages: tuple[str, ...]


def script_of(char: str) -> str | None:
    """The script of one character, or None when it is no letter (digit, mark, space, emoji)."""
    category = unicodedata.category(char)
    if category == "Cn" and 0x20000 <= ord(char) <= 0x3FFFF:
        return "Han"  # planes 2 and 3 hold CJK extensions newer than this Python's Unicode data
    if not category.startswith("L"):
        return None
    name = unicodedata.name(char, "")
    if name.startswith("MODIFIER LETTER"):
        return None  # ʼ, ˈ: phonetic and apostrophe-like signs that any script borrows
    return _NAME_SCRIPT.get(name.split(" ", 1)[0], "Other")


def scripts(text: str) -> Counter[str]:
    """Letters of ``text`` counted per script; compatibility forms (ｱ, ﬁ, ℂ) count as their base."""
    found = (script_of(char) for char in unicodedata.normalize("NFKC", text))
    return Counter(script for script in found if script is not None)


def language_scripts(lang: str) -> frozenset[str]:
    """Scripts a language tag is written in: ``de``, ``de_DE``, ``en-us``, ``sit/cmn``, ``sr-Latn``.

    The last ``/`` part is the tag (eSpeak names voices ``family/tag``); a script subtag wins
    over the language's usual scripts; a language not in LANGUAGE_SCRIPTS is Latin.
    """
    tag = lang.strip().rsplit("/", 1)[-1].replace("_", "-").lower()
    if not tag:
        raise ValueError(f"empty language tag: {lang!r}")
    primary, *subtags = tag.split("-")
    for subtag in subtags:
        if subtag in SCRIPT_SUBTAGS:
            return SCRIPT_SUBTAGS[subtag]
    return LANGUAGE_SCRIPTS.get(primary, LATIN)


def _weighted(counts: Counter[str]) -> dict[str, float]:
    return {script: n * SYLLABLE_WEIGHT.get(script, 1) for script, n in counts.items()}


def _share(weights: dict[str, float], allowed: frozenset[str]) -> float:
    total = sum(weights.values())
    return sum(w for s, w in weights.items() if s in allowed) / total if total else 1.0


def mismatch(text: str, lang: str) -> Mismatch | None:
    """None when a voice of ``lang`` can speak ``text``, else what is wrong with it.

    It can when at least half of the text's letters (weighted by SYLLABLE_WEIGHT) are in the
    language's scripts; a text with no letters at all (digits only) always can.
    """
    weights = _weighted(scripts(text))
    allowed = language_scripts(lang)
    if _share(weights, allowed) >= PASS_SHARE:
        return None
    total = sum(weights.values())
    script = max((s for s in weights if s not in allowed), key=lambda s: (weights[s], s))
    fits = () if script == "Latin" else tuple(
        code for code, written in LANGUAGE_SCRIPTS.items()
        if len(code) == 2 and _share(weights, written) >= PASS_SHARE)
    return Mismatch(script, round(weights[script] / total, 3), fits)


def matches(text: str, candidates: Iterable[str]) -> list[str]:
    """Those of ``candidates`` (voice language tags) that can speak ``text``, in their order."""
    return [lang for lang in candidates if mismatch(text, lang) is None]
