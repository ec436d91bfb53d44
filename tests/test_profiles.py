from __future__ import annotations

import pytest

from thbench import profiles, specs
from thbench.errors import UserError
from thbench.gpu import Gpu
from thbench.specs import Kind

H100 = Gpu("NVIDIA H100 80GB HBM3", "9.0", "550.54.15")
BLACKWELL = Gpu("NVIDIA RTX PRO 6000 Blackwell", "12.0", "575.51")
T4 = Gpu("Tesla T4", "7.5", "535.0")

SPEC = """\
schema = 1
description = "profiles test"
python = "3.8"
gpu = "optional"
requirements = "requirements.lock"

[torch]
packages = ["{default}"]
{index}
[profiles.blackwell]
description = "newer torch"
python = "3.10"
requirements = "requirements-blackwell.lock"

[profiles.blackwell.torch]
packages = ["torch==2.7.0+cu128"]
index = "https://download.pytorch.org/whl/cu128"

[inference]
argv = ["{{python}}", "x.py"]
output = "*.mp4"
"""


def make(tmp_path, default="torch==2.1.2", index="", extra=""):
    folder = tmp_path / "solutions" / "m"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.lock").write_text("six==1.17.0\n")
    (folder / "requirements-blackwell.lock").write_text("six==1.17.0\n")
    (folder / "spec.toml").write_text(SPEC.format(default=default, index=index) + extra)
    spec, problems = specs.parse(folder / "spec.toml", Kind.MODEL)
    return spec, problems


@pytest.mark.parametrize(
    ("pin", "index", "cuda", "source"),
    [
        ("torch==2.1.2", "", "12.1", "PyPI wheel"),
        ("torch==2.0.1", "", "11.7", "PyPI wheel"),
        ("torch==2.0.1+cu118", 'index = "https://download.pytorch.org/whl/cu118"', "11.8",
         "+cu118 tag"),
        ("torch==2.0.1", 'index = "https://download.pytorch.org/whl/cu118"', "11.8",
         "index cu118"),
        ("torch==2.1.2+cpu", "", None, "+cpu tag"),
    ],
)
def test_torch_build_is_read_from_tag_index_or_pypi_table(tmp_path, pin, index, cuda, source):
    spec, problems = make(tmp_path, pin, index)
    assert problems == []
    build = profiles.torch_build(spec)
    assert (build.cuda, build.source) == (cuda, source)


def test_hopper_keeps_the_default_blackwell_gets_the_newer_profile(tmp_path):
    spec, _ = make(tmp_path)
    on_h100 = profiles.choose(spec, [H100])
    assert on_h100.spec.profile == "default" and on_h100.spec.python == "3.8"
    assert "Hopper (sm_90) needs torch ≥ 2.0.1 with CUDA ≥ 11.8" in on_h100.reason
    on_blackwell = profiles.choose(spec, [BLACKWELL])
    assert on_blackwell.spec.profile == "blackwell"
    assert on_blackwell.spec.python == "3.10"
    assert on_blackwell.spec.requirements.name == "requirements-blackwell.lock"
    assert on_blackwell.spec.torch.index.endswith("/cu128")
    assert profiles.choose(spec, [T4]).spec.profile == "default"  # older than every floor
    assert profiles.choose(spec, []).reason.startswith("no NVIDIA GPU found")


def test_pypi_cu117_build_is_refused_on_hopper_when_nothing_else_fits(tmp_path):
    spec, _ = make(tmp_path, "torch==2.0.1")
    spec = spec.__class__(**{**spec.__dict__, "profiles": {}})  # default profile only
    with pytest.raises(UserError) as caught:
        profiles.choose(spec, [H100])
    assert "'default' has torch 2.0.1 + CUDA 11.7 (PyPI wheel)" in caught.value.message


def test_override_wins_and_unknown_profile_is_an_error(tmp_path):
    spec, _ = make(tmp_path)
    assert profiles.choose(spec, [H100], "blackwell").spec.profile == "blackwell"
    assert profiles.choose(spec, [], "blackwell").reason == "--profile blackwell"
    with pytest.raises(UserError) as caught:
        profiles.choose(spec, [H100], "ampere")
    assert "no profile 'ampere'" in caught.value.message and "default, blackwell" in caught.value.message


def test_profile_tables_are_validated(tmp_path):
    _, problems = make(tmp_path, extra='\n[profiles.default]\ndescription = "x"\n'
                                       '[profiles.old]\ndescripton = "typo"\npython = "2.7"\n')
    text = "\n".join(problems)
    assert "profiles.default = 'default': a lowercase name other than 'default'" in text
    assert "profiles.old.descripton" in text and "e.g. description" in text
    assert "profiles.old.python = '2.7'" in text


def test_committed_wav2lip_has_a_blackwell_profile():
    spec = specs.get(Kind.MODEL, "wav2lip")
    assert profiles.choose(spec, [BLACKWELL]).spec.profile == "blackwell"
    assert profiles.choose(spec, [H100]).spec.profile == "default"


def test_a_gpu_newer_than_the_table_needs_at_least_the_newest_floor(tmp_path):
    spec, _ = make(tmp_path)
    future = Gpu("NVIDIA Future", "13.0", "600.0")
    chosen = profiles.choose(spec, [future])
    assert chosen.spec.profile == "blackwell" and "newer than Blackwell" in chosen.reason
