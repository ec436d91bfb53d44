"""The [rehearsal] table: parsed with the spec, every problem named; face boxes in pixels."""

from __future__ import annotations

import pytest

from thbench import paths, rehearsal, specs
from thbench.errors import UserError
from thbench.specs import Kind

BASE = """\
schema = 1
description = "x"
python = "3.11"
gpu = "optional"
requirements = "requirements.lock"

[inference]
argv = ["{python}", "run.py", "{image}"]
output = "*.mp4"
"""


def load(tmp_path, table: str, script: bool = True):
    folder = tmp_path / "solutions" / "m"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.lock").write_text("")
    if script:
        (folder / "rehearse.py").write_text("")
    (folder / "spec.toml").write_text(BASE + table)
    return specs.get(Kind.MODEL, "m", root=tmp_path)


def test_a_rehearsal_table_is_read(tmp_path):
    spec = load(tmp_path, """
[rehearsal]
script = "rehearse.py"
argv = ["--box", "{face_top}", "{face_bottom}", "{face_left}", "{face_right}"]
stops = [{ when = "no NVIDIA driver", reached = "model loading" }]
[rehearsal.torch]
packages = ["torch==2.0.1"]
why = "the cu118 index is unreachable; the same version from PyPI"
""")
    assert spec.rehearsal.script == "rehearse.py" and spec.rehearsal.uses_face()
    assert spec.rehearsal.stops[0].matches("RuntimeError: Found no NVIDIA driver on your system")
    assert not spec.rehearsal.stops[0].matches("KeyError: 'state_dict'")
    assert rehearsal.spec_for(spec).torch.packages == ("torch==2.0.1",)


def test_every_problem_in_a_rehearsal_table_is_named(tmp_path):
    with pytest.raises(UserError) as caught:
        load(tmp_path, """
[rehearsal]
script = "rehearse.py"
argv = ["{face_middle}"]
stops = [{ when = "(unclosed", reached = "x" }, "not a table"]
extra = 1
""", script=False)
    message = caught.value.message
    assert "rehearsal.script = 'rehearse.py': no such file beside spec.toml" in message
    assert "unknown placeholder {face_middle}" in message
    assert "rehearsal.stops[0].when" in message and "not a regular expression" in message
    assert "rehearsal.stops[1]" in message and "rehearsal.extra" in message


def test_a_model_without_a_rehearsal_says_so(tmp_path):
    spec = load(tmp_path, "")
    with pytest.raises(UserError) as caught:
        rehearsal.spec_for(spec)
    assert "has no [rehearsal] table" in caught.value.message


def test_the_face_box_is_given_in_pixels_clamped_to_the_image():
    face = {"faces": 1, "boxes": [[0.25, 0.5, 0.5, 0.75, 0.98]]}
    assert rehearsal.face_values(face, 200, 100) == {
        "face_top": "50", "face_bottom": "100", "face_left": "50", "face_right": "150"}
    assert rehearsal.face_values(None, 200, 100) == {}


def test_the_readme_shows_every_committed_rehearsal_record():
    models = list(specs.load_all()[Kind.MODEL].values())
    table = rehearsal.markdown_table(models)
    recorded = [m for m in models if m.rehearsal and rehearsal.read_record(m)]
    assert len(table.splitlines()) == 2 + len(recorded)
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README's rehearsal table is stale: paste rehearsal.markdown_table()"
