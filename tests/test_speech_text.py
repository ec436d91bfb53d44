"""thbench.speech_text: where a text is cut into pieces to speak."""

from __future__ import annotations

import pytest

from thbench.speech_text import split_sentences


def test_sentence_ends_keep_their_punctuation():
    assert split_sentences("Hello there. How are you? Great!  Bye…") == [
        "Hello there.", "How are you?", "Great!", "Bye…"]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence():
    text = ("Dr. Smith met Mr. Jones at 3.14 p.m. today. They ate fruit, e.g. apples, i.e. food. "
            "J. R. R. Tolkien wrote it. Prices rose 2.5 percent.")
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones at 3.14 p.m. today.", "They ate fruit, e.g. apples, i.e. food.",
        "J. R. R. Tolkien wrote it.", "Prices rose 2.5 percent."]


def test_a_lowercase_word_after_a_dot_continues_the_sentence():
    assert split_sentences("Wait... then go. Apples etc. and pears.") == [
        "Wait... then go.", "Apples etc. and pears."]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert split_sentences('"Stop." She left. (See Fig. 3.) Done.') == [
        '"Stop."', "She left.", "(See Fig. 3.)", "Done."]


def test_cjk_punctuation_ends_sentences_without_spaces():
    assert split_sentences("你好。我是谁？今天天气很好！「走吧。」价格是３．５元。") == [
        "你好。", "我是谁？", "今天天气很好！", "「走吧。」", "价格是３．５元。"]
    assert split_sentences("今日は晴れ。明日は雨！") == ["今日は晴れ。", "明日は雨！"]


def test_other_scripts_sentence_marks():
    assert split_sentences("यह अच्छा है। वह भी। هل أنت بخير؟ نعم") == [
        "यह अच्छा है।", "वह भी।", "هل أنت بخير؟", "نعم"]


def test_line_breaks_end_sentences_but_wrapped_prose_is_joined():
    text = "Title\nThis sentence is wrapped\nacross two lines. Next.\n\nnew paragraph\r\nLast line"
    assert split_sentences(text) == [
        "Title", "This sentence is wrapped across two lines.", "Next.", "new paragraph", "Last line"]


def test_whitespace_is_normalised_and_empty_pieces_dropped():
    assert split_sentences("  One\t\ttwo .  \n\n\n   Three   ") == ["One two .", "Three"]
    assert split_sentences("") == []
    assert split_sentences(" \n\t\n ") == []


def test_punctuation_alone_joins_the_piece_before():
    assert split_sentences("Hello. ... World. !!!") == ["Hello. ...", "World. !!!"]
    assert split_sentences("... Hello.") == ["... Hello."]


def test_no_punctuation_at_all_is_one_piece():
    text = "just words running on and on without any mark at all"
    assert split_sentences(text) == [text]


def test_a_long_sentence_is_cut_at_clauses_then_packed():
    clause = "this clause is about forty characters,"
    text = " ".join([clause] * 10)[:-1] + "."
    pieces = split_sentences(text, max_piece_chars=100)
    assert all(len(p) <= 100 for p in pieces) and len(pieces) == 5
    assert all(p.endswith(",") for p in pieces[:-1]) and pieces[-1].endswith(".")
    assert " ".join(pieces) == text  # nothing lost, nothing reordered


def test_a_long_sentence_without_clauses_is_cut_at_spaces():
    text = " ".join(f"word{i}" for i in range(200))
    pieces = split_sentences(text, max_piece_chars=60)
    assert all(len(p) <= 60 for p in pieces) and len(pieces) > 1
    assert " ".join(pieces) == text


def test_cjk_clause_marks_and_a_hard_cut_when_nothing_else_is_left():
    pieces = split_sentences("一二三四五六七八九十、" * 3 + "。", max_piece_chars=12)
    assert pieces == ["一二三四五六七八九十、", "一二三四五六七八九十、", "一二三四五六七八九十、。"]
    hard = split_sentences("x" * 1000, max_piece_chars=400)
    assert [len(p) for p in hard] == [400, 400, 200] and "".join(hard) == "x" * 1000


def test_max_piece_chars_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        split_sentences("Hi.", max_piece_chars=0)


def test_splitting_is_deterministic():
    text = "A. B? C! 你好。 Dr. X went home. " * 50
    assert split_sentences(text, 80) == split_sentences(text, 80)
