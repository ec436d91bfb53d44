"""thbench.language: which scripts a text is in, and whether a voice's language can speak it."""

from __future__ import annotations

import pytest

from thbench import language


@pytest.mark.parametrize(("text", "expected"), [
    ("Grüße aus Köln, schöne Straße!", {"Latin": 24}),
    ("你好，世界。", {"Han": 4}),
    ("東京は今日も晴れです。カタカナ", {"Han": 5, "Hiragana": 5, "Katakana": 4}),
    ("Привет, мир!", {"Cyrillic": 9}),
    ("مرحبا بالعالم", {"Arabic": 12}),
    ("नमस्ते", {"Devanagari": 4}),  # vowel signs and virama are marks, not letters
    ("한국어 Hangul", {"Hangul": 3, "Latin": 6}),
    ("Ελληνικά და ქართული", {"Greek": 8, "Georgian": 9}),
])
def test_scripts_counts_letters_per_script(text, expected):
    assert language.scripts(text) == expected


def test_scripts_ignore_digits_punctuation_spaces_and_emoji():
    assert language.scripts("123 4.5 -- !? 😀👍 \t\n ‰ ©") == {}


def test_scripts_fold_compatibility_forms_and_know_new_han():
    # half-width katakana, a ligature, full-width Latin, a CJK extension B ideograph
    assert language.scripts("ｶﾀ ﬁ ＡＢ 𠀀") == {"Katakana": 2, "Latin": 4, "Han": 1}


@pytest.mark.parametrize(("tag", "scripts"), [
    ("de", {"Latin"}), ("de_DE", {"Latin"}), ("de-DE", {"Latin"}), ("en-us", {"Latin"}),
    ("cmn", {"Han"}), ("yue", {"Han"}), ("zh-CN", {"Han"}), ("zh_CN", {"Han"}),
    ("sit/cmn", {"Han"}), ("jpx/ja", {"Han", "Hiragana", "Katakana"}), ("zle/ru", {"Cyrillic"}),
    ("sr_RS", {"Cyrillic", "Latin"}), ("ar_JO", {"Arabic"}), ("ka_GE", {"Georgian"}),
    ("sit/cmn-Latn-pinyin", {"Latin"}), ("ira/fa-Latn", {"Latin"}), ("sr-Cyrl", {"Cyrillic"}),
    ("gmw/en-Shaw", {"Shavian"}), ("xx", {"Latin"}), (" EL ", {"Greek"}),
])
def test_language_scripts_read_every_tag_style(tag, scripts):
    assert language.language_scripts(tag) == scripts


def test_an_empty_tag_is_refused():
    with pytest.raises(ValueError, match="empty language tag"):
        language.language_scripts("gmw/")


def test_chinese_text_to_an_english_voice_names_chinese():
    found = language.mismatch("今天天气很好，我们去公园散步吧。", "en_US")
    assert found is not None
    assert found.script == "Han" and found.share == 1.0
    assert found.languages[:2] == ("zh", "ja")


def test_japanese_text_names_japanese_only():
    found = language.mismatch("今日はいい天気ですね。散歩に行きましょう。", "en_US")
    assert found is not None and found.languages == ("ja",)


def test_russian_text_names_cyrillic_languages():
    found = language.mismatch("Съешь же ещё этих мягких французских булок.", "de_DE")
    assert found is not None and found.script == "Cyrillic"
    assert {"ru", "uk", "bg", "sr"} <= set(found.languages)


def test_latin_text_to_a_chinese_voice_is_a_mismatch():
    found = language.mismatch("This is plain English.", "zh_CN")
    assert found is not None and found.script == "Latin" and found.languages == ()


def test_mostly_english_with_one_chinese_word_passes():
    assert language.mismatch("We flew to Beijing (北京) and loved the food there.", "en_US") is None


def test_mostly_chinese_with_brand_names_passes():
    # 9 ideographs outweigh 13 Latin letters: each stands for a syllable (SYLLABLE_WEIGHT)
    assert language.mismatch("你好，世界。我喜欢用iPhone和MacBook", "zh_CN") is None


def test_half_and_half_is_decided_by_weighted_share():
    assert language.mismatch("Das ist gut. Это хорошо.", "de") is None  # 9 Latin vs 9 Cyrillic
    assert language.mismatch("Gut. Это хорошо.", "de") is not None


def test_espeak_names_accept_their_scripts():
    assert language.mismatch("今天天气很好。", "sit/cmn") is None
    assert language.mismatch("今天天气很好。", "sit/yue") is None
    assert language.mismatch("Привет", "zle/ru") is None
    assert language.mismatch("Jīntiān tiānqì hěn hǎo.", "sit/cmn-Latn-pinyin") is None


def test_text_without_letters_passes_any_voice():
    assert language.mismatch("1, 2, 3 ... 42!", "zh_CN") is None
    assert language.mismatch("", "en_US") is None


def test_matches_picks_the_voices_that_can_speak_the_text():
    candidates = ["en_US", "de_DE", "zh_CN", "sit/cmn", "jpx/ja", "ru_RU"]
    assert language.matches("我们去公园散步吧。", candidates) == ["zh_CN", "sit/cmn", "jpx/ja"]
    assert language.matches("Guten Morgen", candidates) == ["en_US", "de_DE"]
    assert language.matches("いい天気ですね", candidates) == ["jpx/ja"]
