"""Existing envs named in the local config: found, checked, run, and never changed."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from thbench import envs, external_env, gpu, local_config, paths, proc, runs, specs
from thbench.errors import UserError
from thbench.local_config import EnvRef
from thbench.specs import Kind

from .test_conda_conflicts import make_prefix

MODELS = ["still", "mouth", "v_express"]
CONDA_ENV_LIST = {"envs": ["/opt/conda", "/opt/conda/envs/sadtalker", "/opt/conda/envs/wav2lip"]}


@pytest.fixture
def local_file(tmp_path, monkeypatch):
    """Write the local config (THB_LOCAL_CONFIG) and return its path; no THB_ENV_* leaks in."""
    for key in [k for k in os.environ if k.startswith("THB_ENV_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "thb.local.toml"
    monkeypatch.setenv("THB_LOCAL_CONFIG", str(path))
    monkeypatch.setenv("THB_ENVS_DIR", str(tmp_path / "our-envs"))

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


def test_config_problems_reported_together(local_file, tmp_path):
    path = local_file('[models.still]\nenv = "docker:x"\nrepos = "/x"\n[models.stil]\nenv = "uv"\n'
                      '[models.mouth]\nenv = "python:bin/python"\nweights = "/no/such/folder"\n')
    with pytest.raises(UserError) as caught:
        local_config.load(MODELS)
    message = caught.value.message
    assert message.startswith("5 problems in the local config")
    assert f"{path}: models.still.env = 'docker:x': must be conda:" in message
    assert "models.still.repos: unknown key; allowed: env, repo, weights (did you mean 'repo'?)" in message
    assert "models.stil: unknown model; did you mean 'still'?" in message
    assert "python: needs an absolute path" in message
    assert "models.mouth.weights = '/no/such/folder': no such folder" in message
    assert "[models.still] env = " in caught.value.tip


def test_env_variable_wins_over_the_file(local_file, tmp_path, monkeypatch):
    local_file(f'[models.still]\nenv = "conda:wav2lip"\nrepo = "{tmp_path}"\n')
    assert local_config.load(MODELS)["still"].env == EnvRef("conda", "wav2lip")
    monkeypatch.setenv("THB_ENV_STILL", f"python:{sys.executable}")
    entry = local_config.for_model("still", MODELS)
    assert entry.env == EnvRef("python", sys.executable) and entry.source == "THB_ENV_STILL"
    assert entry.repo == tmp_path.resolve()  # repo and weights still from the file
    monkeypatch.setenv("THB_ENV_STILL", "uv")  # back to the project's own env
    assert local_config.for_model("still", MODELS) is None
    monkeypatch.setenv("THB_ENV_V_EXPRESS", "venv:/x")
    with pytest.raises(UserError, match="THB_ENV_V_EXPRESS='venv:/x': must be conda:"):
        local_config.load(MODELS)


def conda_standin(folder: Path, monkeypatch) -> Path:
    """A `conda` on PATH answering `conda env list --json` as conda 23 prints it."""
    folder.mkdir()
    (folder / "listing.json").write_text(json.dumps(CONDA_ENV_LIST, indent=2) + "\n")
    script = folder / "conda"
    script.write_text(f'#!/bin/sh\necho "$@" > "{folder}/argv"\ncat "{folder}/listing.json"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CONDA_EXE", raising=False)
    return folder


def test_unknown_conda_env_name(local_file, tmp_path, monkeypatch):
    standin = conda_standin(tmp_path / "bin", monkeypatch)
    local_file('[models.still]\nenv = "conda:stil-env"\n')
    with pytest.raises(UserError) as caught:
        envs.require_ready(specs.get(Kind.MODEL, "still"))
    assert caught.value.message == ("no conda env named 'stil-env' (conda knows: base, sadtalker, "
                                    "wav2lip)")
    assert "`conda env list` shows them" in caught.value.tip
    assert (standin / "argv").read_text().split() == ["env", "list", "--json"]


def test_conda_name_without_conda(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    with pytest.raises(UserError, match="no conda, mamba or micromamba is on PATH") as caught:
        external_env.resolve(EnvRef("conda", "wav2lip"))
    assert 'env = "conda:/path/to/envs/wav2lip"' in caught.value.tip


def test_conda_prefix_needs_no_conda(tmp_path, monkeypatch):
    prefix = tmp_path / "envs" / "th"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path))  # no conda anywhere
    found = external_env.resolve(EnvRef("conda", str(prefix)))
    assert (found.kind, found.python, found.prefix) == ("conda", prefix / "bin" / "python",
                                                        prefix.resolve())
    with pytest.raises(UserError, match="is not a conda env .it has no conda-meta folder"):
        external_env.resolve(EnvRef("conda", str(tmp_path)))


def test_path_that_is_not_a_python(local_file, tmp_path):
    not_python = tmp_path / "fake-python"
    not_python.write_text("#!/bin/sh\necho hello\n")
    not_python.chmod(0o755)
    local_file(f'[models.still]\nenv = "python:{not_python}"\n')
    with pytest.raises(UserError) as caught:
        envs.setup(specs.get(Kind.MODEL, "still"))
    assert caught.value.message == (f"python:{not_python}: {not_python} is not a Python "
                                    "interpreter (it does not run `python -c` and print its version)")
    assert "`which python` inside the env prints it" in caught.value.tip
    with pytest.raises(UserError, match="does not exist"):
        external_env.resolve(EnvRef("python", str(tmp_path / "missing" / "python")))


def test_conflicts_become_warn_rows_torch_first(tmp_path):
    prefix = make_prefix(tmp_path / "th")
    found = external_env.Resolved("conda", f"conda:{prefix}", prefix / "bin" / "python", prefix, None)
    rows = external_env._Rows()
    conflicts = external_env._conflicts(found, {"prefix": str(prefix)}, rows)
    assert [c.dist for c in conflicts] == ["torch", "numpy"]
    assert [r[:2] for r in rows.rows] == [("conda/pip", "WARN")] * 2
    assert rows.rows[0][2].startswith("torch: conda package pytorch 2.1.0")


TORCH_CPU = {"version": "2.1.2+cpu", "cuda": None, "arch_list": [], "cuda_available": False}
TORCH_BLIND = {"version": "2.1.2+cu121", "cuda": "12.1", "arch_list": ["sm_80", "sm_90"],
               "cuda_available": False}
H200 = gpu.Gpu("NVIDIA H200", "9.0", "550.54.15")


@pytest.mark.parametrize(("model", "torch", "status"), [
    ("v_express", TORCH_CPU, "ERROR"), ("v_express", TORCH_BLIND, "ERROR"),
    ("sadtalker", TORCH_BLIND, "WARN"),  # runs on the CPU when it must
])
def test_torch_that_cannot_see_the_gpu(model, torch, status):
    rows = external_env._Rows()
    external_env.torch_rows(specs.get(Kind.MODEL, model), torch, [H200], rows)
    gpu_row = next(r for r in rows.rows if r[0] == "gpu")
    assert gpu_row[1] == status
    assert "NVIDIA H200" in gpu_row[2] and "fix torch in that env yourself" in gpu_row[3]


def listing(root: Path) -> str:
    """Every path under ``root`` with its size, mtime and content hash, as one digest."""
    lines = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = (hashlib.sha256(path.read_bytes()).hexdigest()
                  if path.is_file() and not path.is_symlink() else "")
        lines.append(f"{path.relative_to(root)} {st.st_size} {st.st_mtime_ns} {digest}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.slow
def test_run_through_an_existing_venv(local_file, tmp_path, monkeypatch):
    # Set where these tests run; unset, only our own setting keeps __pycache__ out of the env.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    uv = envs.uv_binary()
    venv = tmp_path / "my-still-venv"  # made by hand, outside THB_ENVS_DIR
    proc.run([uv, "venv", "--python", "3.11", venv], capture=True)
    proc.run([uv, "pip", "install", "--python", venv / "bin" / "python", "-r",
              paths.REPO_ROOT / "solutions" / "still" / "requirements.lock"], capture=True)
    local_file(f'[models.still]\nenv = "python:{venv}/bin/python"\n')
    before = listing(venv)
    spec = specs.get(Kind.MODEL, "still")
    with pytest.raises(UserError, match="existing env python:.* is not checked yet") as caught:
        envs.require_ready(spec)
    assert "uv run nox -s setup-still" in caught.value.tip

    env = envs.setup(spec)
    assert isinstance(env, external_env.ExternalEnv) and env.python == venv / "bin" / "python"
    assert not (paths.envs_root() / "model-still").exists()  # nothing of ours was built
    result = runs.run(runs.Request(model="still", image=paths.REPO_ROOT / "assets" / "face.png",
                                   audio=paths.REPO_ROOT / "assets" / "speech-sample.m4a",
                                   face_check=False, outputs=tmp_path / "outputs"))
    assert result.ok, result.record["failure"]
    ran = result.record["env"]
    assert ran["external"]["kind"] == "python"
    assert ran["external"]["interpreter"] == str(venv / "bin" / "python")
    assert ran["external"]["python"].startswith("3.11.")
    assert ran["packages"]["imageio-ffmpeg"] == "0.6.0"
    assert ran["installers"]["imageio-ffmpeg"] == "uv"
    assert {c["check"]: c["status"] for c in ran["checks"]} == {
        "python": "OK", "import imageio_ffmpeg": "OK", "lock": "OK"}
    assert listing(venv) == before  # the check and the run changed nothing in it

    proc.run([uv, "pip", "install", "--python", venv / "bin" / "python", "six==1.17.0"],
             capture=True)
    with pytest.raises(UserError, match="is changed since its check"):
        envs.require_ready(spec)
