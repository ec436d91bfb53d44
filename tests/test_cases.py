"""Cases files: every mistake named with file, line, key and a good example; paths resolved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from thbench import cases, paths
from thbench.errors import UserError

FACE = paths.REPO_ROOT / "assets" / "face.png"


def write(tmp_path: Path, text: str) -> Path:
    shutil.copy(FACE, tmp_path / "face.png")
    path = tmp_path / "cases.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        cases.load(path)
    assert caught.value.tip
    return caught.value.message


def test_the_default_cases_load_with_paths_beside_the_file():
    loaded = cases.load(cases.DEFAULT_FILE)
    assert [c.id for c in loaded] == ["short", "medium", "long", "recorded"]
    assert all(c.image == FACE for c in loaded)
    assert loaded[3].audio == paths.REPO_ROOT / "assets" / "speech-sample.m4a"
    assert len(loaded[2].text) > 3 * len(loaded[1].text) > 3 * len(loaded[0].text)
    assert cases.Case.from_dict(loaded[3].to_dict()) == loaded[3]


def test_bad_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, 'schema = 1\n[[case]]\nid = "a"\ntext = "unclosed\n')
    message = problems(path)
    assert str(path) in message and "line 4" in message


def test_each_problem_has_its_line_key_and_an_example(tmp_path):
    path = write(tmp_path, """schema = 1
[[case]]
id = "one"
image = "face.png"
text = "Hi."
colour = "red"

[[case]]
id = "one"
image = "missing.png"
text = "Hello."
audio = "x.wav"

[[case]]
id = "Bad Id"
image = "face.png"
""")
    message = problems(path)
    assert f"{path}:6: case[0].colour: unknown key" in message
    assert f"{path}:9: case[1].id: 'one' is used by an earlier case" in message
    assert f"{path}:10: case[1].image:" in message and "does not exist" in message
    assert f"{path}:11: case[1].text: give text or audio, not both" in message
    assert f"{path}:15: case[2].id: a lowercase id" in message
    assert f"{path}:12: case[1].audio:" in message
    assert f"{path}:14: case[2].text: give text or audio (e.g." in message  # the case's header
    assert message.startswith("7 problems")


def test_no_cases_and_unknown_top_level_keys(tmp_path):
    message = problems(write(tmp_path, "schema = 2\nmodels = ['x']\n"))
    assert "unknown key" in message and "schema 1" in message and "no [[case]] tables" in message


def test_a_case_image_that_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    message = problems(write(tmp_path, '[[case]]\nid = "a"\nimage = "notes.png"\ntext = "Hi"\n'))
    assert ":3: case[0].image:" in message and "not an image" in message


def test_missing_cases_file_says_where_the_default_is(tmp_path):
    with pytest.raises(UserError) as caught:
        cases.load(tmp_path / "nope.toml")
    assert "assets/cases.toml" in caught.value.tip


def test_case_texts_meet_the_same_limits_as_invoke_run(tmp_path):
    long = "word " * 1100
    message = problems(write(tmp_path, f'[[case]]\nid = "a__b"\nimage = "face.png"\n'
                                       f'text = "{long}"\n[[case]]\nid = "nul"\n'
                                       'image = "face.png"\ntext = "a\\u0000b"\n'))
    assert ":2: case[0].id:" in message and "no __" in message
    assert ":4: case[0].text: the text has 5500 characters (limit 5000," in message
    assert ":8: case[1].text: the text holds a NUL character" in message


def test_a_text_case_may_name_its_own_tts_and_voice(tmp_path):
    path = write(tmp_path, '[[case]]\nid = "de"\nimage = "face.png"\ntext = "Guten Tag."\n'
                           'tts = "espeak"\nvoice = "de"\n')
    (case,) = cases.load(path)
    assert (case.tts, case.voice) == ("espeak", "de")
    assert cases.Case.from_dict(case.to_dict()) == case


def test_a_recording_case_takes_no_voice(tmp_path):
    shutil.copy(paths.REPO_ROOT / "assets" / "speech-sample.m4a", tmp_path / "hello.m4a")
    message = problems(write(tmp_path, '[[case]]\nid = "rec"\nimage = "face.png"\n'
                                       'audio = "hello.m4a"\nvoice = "de"\ntts = ""\n'))
    assert "case[0].voice: only for a text case" in message
    assert "case[0].tts: must be a name" in message
