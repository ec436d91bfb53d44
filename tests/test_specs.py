from __future__ import annotations

import re
from pathlib import Path

import pytest

from thbench import specs
from thbench.errors import UserError
from thbench.specs import Gpu, Kind

GOOD_MODEL = """\
schema = 1
description = "A test model"
python = "3.10"
gpu = "optional"
requirements = "requirements.lock"
imports = ["numpy"]

[torch]
packages = ["torch==2.1.2"]

[repo]
url = "https://github.com/example/model"
commit = "cd4c0465ae0b54a6f85af57f5c65fec9fe23e7f8"

[[weights]]
url = "https://example.org/w.pth"
dest = "checkpoints/w.pth"
size = 10
sha256 = "84a8642468a3fcfdd9ab6be955267043116c2bec2284686a5262f1eaf017f64c"

[inference]
argv = ["{python}", "{repo}/infer.py", "--image", "{image}", "--out", "{work_dir}/out.mp4"]
cwd = "{repo}"
output = "out.mp4"
"""


def write_spec(root: Path, kind: Kind, name: str, text: str, lock: str = "numpy==1.26.4\n") -> Path:
    folder = root / kind.folder / name
    folder.mkdir(parents=True)
    (folder / "requirements.lock").write_text(lock)
    (folder / "spec.toml").write_text(text)
    return folder / "spec.toml"


def test_every_committed_spec_loads():
    loaded = specs.load_all()
    assert {"still", "sadtalker", "wav2lip", "echomimic", "v_express", "audio2head"} <= set(
        loaded[Kind.MODEL]
    )
    assert "piper" in loaded[Kind.TTS]
    assert "face" in loaded[Kind.CHECK]
    still = loaded[Kind.MODEL]["still"]
    assert still.baseline and still.gpu is Gpu.NONE and still.repo is None
    assert still.setup_session == "setup-still"
    assert loaded[Kind.TTS]["piper"].setup_session == "setup-tts-piper"


def test_good_spec_parses_into_typed_values(tmp_path):
    path = write_spec(tmp_path, Kind.MODEL, "demo", GOOD_MODEL)
    spec, problems = specs.parse(path, Kind.MODEL)
    assert problems == []
    assert spec.python == "3.10" and spec.gpu is Gpu.OPTIONAL
    assert spec.torch.packages == ("torch==2.1.2",) and spec.torch.index is None
    assert spec.repo.commit.startswith("cd4c0465")
    assert spec.weights[0].dest == "checkpoints/w.pth"
    argv = spec.command.expand({"python": "/py", "repo": "/r", "image": "/i.png",
                                "work_dir": "/w"})
    assert argv == ["/py", "/r/infer.py", "--image", "/i.png", "--out", "/w/out.mp4"]


def test_all_problems_are_reported_together_with_file_key_value_and_example(tmp_path):
    bad = (GOOD_MODEL.replace('python = "3.10"', 'python = "3.7"')
           .replace('gpu = "optional"', 'gpu = "sometimes"')
           .replace("imports =", "imprts =")
           .replace('commit = "cd4c0465ae0b54a6f85af57f5c65fec9fe23e7f8"', 'commit = "main"')
           .replace('"{work_dir}/out.mp4"', '"{outdir}/out.mp4"'))
    write_spec(tmp_path, Kind.MODEL, "demo", bad)
    with pytest.raises(specs.SpecError) as caught:
        specs.load_all(tmp_path)
    problems = caught.value.problems
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert all(p.startswith("solutions/demo/spec.toml: ") for p in problems)
    assert "python = '3.7': must be one of 3.8" in text and 'e.g. python = "3.10"' in text
    assert "gpu = 'sometimes'" in text and "required" in text
    assert "imprts" in text and "e.g. imports" in text  # closest allowed key suggested
    assert "repo.commit = 'main': must be a full 40-hex commit id" in text
    assert "unknown placeholder {outdir}" in text


def test_wrong_types_and_missing_keys(tmp_path):
    text = GOOD_MODEL.replace('python = "3.10"', "python = 3.10").replace(
        'description = "A test model"\n', "").replace("size = 10", "size = true")
    path = write_spec(tmp_path, Kind.MODEL, "demo", text)
    spec, problems = specs.parse(path, Kind.MODEL)
    assert spec is None
    joined = "\n".join(problems)
    assert "python = 3.1: must be a str" in joined
    assert "description = None: missing" in joined
    assert "weights[0].size = True: must be a int" in joined


def test_a_lock_must_pin_every_package(tmp_path):
    path = write_spec(tmp_path, Kind.MODEL, "demo", GOOD_MODEL,
                      lock="numpy==1.26.4 \\\n    --hash=sha256:abc\nrequests>=2\n")
    _, problems = specs.parse(path, Kind.MODEL)
    assert len(problems) == 1 and "requirements line 3 = 'requests>=2'" in problems[0]


def test_repo_placeholder_needs_a_repo_table(tmp_path):
    text = GOOD_MODEL.split("[repo]")[0] + GOOD_MODEL.split("[inference]")[1].join(
        ["[inference]", ""])
    path = write_spec(tmp_path, Kind.MODEL, "demo", text)
    _, problems = specs.parse(path, Kind.MODEL)
    assert any("unknown placeholder {repo}" in p for p in problems)


def test_invalid_toml_names_the_file(tmp_path):
    write_spec(tmp_path, Kind.TTS, "broken", "python = \n")
    with pytest.raises(specs.SpecError) as caught:
        specs.load_all(tmp_path)
    assert caught.value.problems[0].startswith("tts/broken/spec.toml: not valid TOML")


def test_unknown_model_suggests_the_closest():
    with pytest.raises(UserError) as caught:
        specs.get(Kind.MODEL, "sadtalkr")
    assert "did you mean 'sadtalker'" in caught.value.message


def test_a_weight_names_exactly_one_source(tmp_path):
    text = GOOD_MODEL.replace('url = "https://example.org/w.pth"',
                              'url = "https://example.org/w.pth"\nmanual = "Drive file x"')
    path = write_spec(tmp_path, Kind.MODEL, "demo", text)
    _, problems = specs.parse(path, Kind.MODEL)
    assert any("give exactly one of url, hf_repo or manual" in p for p in problems)


@pytest.mark.parametrize("extra, problem", [
    ('hf_revision = "' + "a" * 40 + '"\n', None),
    ("", "an hf_folder weight needs hf_repo and hf_revision"),
    ('hf_revision = "' + "a" * 40 + '"\nsha256 = "' + "b" * 64 + '"\n', "and no hf_file, sha256"),
    ('hf_revision = "main"\n', "must be a full 40-hex commit id"),
])
def test_a_hub_folder_is_pinned_by_its_revision(tmp_path, extra, problem):
    folder = ('hf_repo = "tk93/V-Express"\nhf_folder = "model_ckpts/wav2vec2-base-960h"\n'
              + extra)
    text = re.sub(r'sha256 = "84a8[0-9a-f]+"\n', "", GOOD_MODEL.replace(
        'url = "https://example.org/w.pth"\n', folder))
    assert folder in text and "example.org" not in text and "84a8" not in text
    path = write_spec(tmp_path, Kind.MODEL, "demo", text)
    spec, problems = specs.parse(path, Kind.MODEL)
    if problem is None:
        assert problems == [] and spec.weights[0].hf_folder == "model_ckpts/wav2vec2-base-960h"
    else:
        assert any(problem in p for p in problems), problems


def test_cpu_speed_is_for_gpu_optional_models(tmp_path):
    assert 'gpu = "optional"' in GOOD_MODEL
    text = GOOD_MODEL.replace('gpu = "optional"', 'gpu = "required"\ncpu_speed = "slow"')
    _, problems = specs.parse(write_spec(tmp_path, Kind.MODEL, "demo", text), Kind.MODEL)
    assert any("cpu_speed = 'slow': only for gpu = \"optional\" models" in p
               for p in problems), problems
    text = GOOD_MODEL.replace('gpu = "optional"', 'gpu = "optional"\ncpu_speed = "slow"')
    spec, problems = specs.parse(write_spec(tmp_path, Kind.MODEL, "demo2", text), Kind.MODEL)
    assert problems == [] and spec.cpu_speed == "slow"
