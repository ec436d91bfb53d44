"""Existing envs named in the local config: found, checked, run, and never changed."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from thbench import envs, external_env, gpu, local_config, paths, proc, profiles, runs, specs
from thbench.errors import UserError
from thbench.local_config import EnvRef, ModelLocal
from thbench.specs import Kind

from .test_conda_conflicts import make_prefix

MODELS = ["still", "mouth", "v_express"]
# conda lists its root first; /scratch/th was made with `conda create -p`, so it has no name.
CONDA_ENV_LIST = {"envs": ["/opt/conda", "/opt/conda/envs/sadtalker", "/opt/conda/envs/wav2lip",
                           "/scratch/th"]}
CONDA_INFO = {"root_prefix": "/opt/conda", "envs_dirs": ["/opt/conda/envs"], "envs": CONDA_ENV_LIST["envs"]}


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


def test_env_variable_naming_no_model(local_file, monkeypatch):
    local_file("")
    monkeypatch.setenv("THB_ENV_STIL", "uv")  # a typo: would leave still in our own env
    monkeypatch.setenv("THB_ENV_ZZZ", "uv")
    with pytest.raises(UserError) as caught:
        local_config.load(MODELS)
    message = caught.value.message
    assert message.startswith("2 problems in the local config")
    assert "THB_ENV_STIL: names no model; did you mean THB_ENV_STILL?" in message
    assert "THB_ENV_ZZZ: names no model (known: THB_ENV_MOUTH, THB_ENV_STILL, THB_ENV_V_EXPRESS)" in message


def test_config_parsed_once_per_state(local_file, tmp_path, monkeypatch):
    calls = []
    real = local_config.load
    monkeypatch.setattr(local_config, "load", lambda models: calls.append(1) or real(models))
    local_file(f'[models.still]\nenv = "python:{sys.executable}"\n')
    still, mouth = specs.get(Kind.MODEL, "still"), specs.get(Kind.MODEL, "mouth")
    assert isinstance(envs.Env.of(still), external_env.ExternalEnv)
    assert type(envs.Env.of(mouth)) is envs.Env and len(calls) == 1  # every spec, one parse
    local_file(f'[models.mouth]\nenv = "python:{sys.executable}"\n')  # an edit: parsed again
    assert type(envs.Env.of(still)) is envs.Env and len(calls) == 2
    assert isinstance(envs.Env.of(mouth), external_env.ExternalEnv) and len(calls) == 2
    monkeypatch.setenv("THB_ENV_STILL", f"python:{sys.executable}")
    assert isinstance(envs.Env.of(still), external_env.ExternalEnv) and len(calls) == 3


def conda_standin(folder: Path, monkeypatch, info: dict | None = CONDA_INFO,
                  listing: dict = CONDA_ENV_LIST) -> Path:
    """A `conda` on PATH answering `env list --json` and `info --json` as conda 23 prints them
    (``info=None``: a conda whose `info --json` prints nothing)."""
    folder.mkdir()
    (folder / "listing.json").write_text(json.dumps(listing, indent=2) + "\n")
    (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n" if info else "")
    script = folder / "conda"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/argv"\n'
                      f'if [ "$1" = info ]; then cat "{folder}/info.json"; '
                      f'else cat "{folder}/listing.json"; fi\n')
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
                                    "wav2lip; by prefix only: /scratch/th)")
    assert "`conda env list` shows them" in caught.value.tip
    assert (standin / "argv").read_text().splitlines() == ["env list --json", "info --json"]
    # doctor gets the same ERROR from the env itself, not a bare "not ready"
    found = envs.Env.of(specs.get(Kind.MODEL, "still"))
    assert not found.is_ready() and found.problem().message == caught.value.message


@pytest.mark.parametrize(("info", "listing", "base"), [
    (CONDA_INFO, CONDA_ENV_LIST, "/opt/conda"),
    # the root is listed last: still base, and /scratch/th (listed first) is not
    ({"root_prefix": "/opt/conda"}, {"envs": ["/scratch/th", "/opt/conda/envs/wav2lip", "/opt/conda"]},
     "/opt/conda"),
    # `info --json` says nothing: the first entry is base when it holds the others' envs/
    (None, CONDA_ENV_LIST, "/opt/conda"),
    # micromamba with no base env listed: the prefix-only env is not base
    (None, {"envs": ["/scratch/th", "/path/to/micromamba/envs/wav2lip"]}, None),
])
def test_conda_base_is_the_root_prefix(tmp_path, monkeypatch, info, listing, base):
    conda_standin(tmp_path / "bin", monkeypatch, info, listing)
    assert external_env._conda_prefix("wav2lip").name == "wav2lip"
    if base:
        assert external_env._conda_prefix("base") == Path(base)
    else:
        with pytest.raises(UserError, match="knows: wav2lip; by prefix only: /scratch/th"):
            external_env._conda_prefix("base")


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
    # an interpreter that prints nothing at all (exit 0) is no Python either, not a traceback
    with pytest.raises(UserError, match="/bin/true is not a Python interpreter") as caught:
        external_env.resolve(EnvRef("python", "/bin/true"))
    assert "`which python` inside the env prints it" in caught.value.tip


def test_conflicts_become_warn_rows_torch_first(tmp_path):
    prefix = make_prefix(tmp_path / "th")
    found = external_env.Resolved("conda", f"conda:{prefix}", prefix / "bin" / "python", prefix, None)
    rows = external_env._Rows()
    conflicts = external_env._conflicts(found, {"prefix": str(prefix)}, rows)
    assert [c.dist for c in conflicts] == ["torch", "torchvision", "numpy"]
    assert [r[:2] for r in rows.rows] == [("conda/pip", "WARN")] * 3
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


TORCH_V100 = {"version": "2.0.1+cu118", "cuda": "11.8", "arch_list": ["sm_37", "sm_70", "sm_80"],
              "cuda_available": True, "sm": "sm_70", "tiny_op": True}
OLD_DRIVER = gpu.Gpu("Tesla V100-SXM2-16GB", "", "470.57.02")  # nvidia-smi before compute_cap


def test_gpu_capability_from_torch_when_the_driver_has_none():
    rows = external_env._Rows()
    external_env.torch_rows(specs.get(Kind.MODEL, "v_express"), TORCH_V100, [OLD_DRIVER], rows)
    gpu_row = next(r for r in rows.rows if r[0] == "gpu")
    assert gpu_row[1:3] == ("OK", "computes on the Tesla V100-SXM2-16GB (sm_70)")
    rows = external_env._Rows()  # torch without a capability either: the tiny matmul decides
    blind = {k: v for k, v in TORCH_V100.items() if k != "sm"}
    external_env.torch_rows(specs.get(Kind.MODEL, "v_express"), blind, [OLD_DRIVER], rows)
    assert dict((r[0], r[1]) for r in rows.rows)["gpu"] == "OK"


@pytest.mark.parametrize(("model", "version", "cuda", "status", "tip"), [
    ("v_express", "2.0.1+cu118", "11.8", "OK", ""),
    ("v_express", "2.0.1+cpu", None, "WARN", "a +cpu build; the spec pins 2.0.1+cu118"),
    ("v_express", "2.0.1", "11.7", "WARN", "is CUDA 11.8; this one has CUDA 11.7"),  # PyPI's own
    ("sadtalker", "2.1.2", "12.1", "OK", ""),  # PyPI's 2.1.2 is its CUDA 12.1 build
    ("sadtalker", "2.1.2+cu118", "11.8", "WARN", "(PyPI wheel) is CUDA 12.1; this one has CUDA 11.8"),
    ("sadtalker", "2.2.0", "12.1", "WARN", "the spec pins 2.1.2"),
])
def test_torch_build_against_the_pin(model, version, cuda, status, tip):
    rows = external_env._Rows()
    torch = {"version": version, "cuda": cuda, "arch_list": [], "cuda_available": False}
    external_env.torch_rows(specs.get(Kind.MODEL, model), torch, [], rows)
    row = next(r for r in rows.rows if r[0] == "torch")
    assert row[1] == status and tip in row[3] and (tip or not row[3])


BLACKWELL = gpu.Gpu("NVIDIA RTX PRO 6000 Blackwell", "12.0", "575.51.03", driver_cuda="12.9")


def test_setup_checks_an_existing_env_before_the_gpu_table(local_file, monkeypatch, capsys):
    spec = specs.get(Kind.MODEL, "v_express")
    with pytest.raises(UserError, match="no profile of v_express supports"):
        profiles.choose(spec, [BLACKWELL])  # its own env could not be built here
    monkeypatch.setattr(gpu, "detect", lambda: [BLACKWELL])
    local_file(f'[models.v_express]\nenv = "python:{sys.executable}"\n')
    env = envs.setup(spec, dry_run=True)
    assert isinstance(env, external_env.ExternalEnv) and env.spec.profile == spec.profile
    assert f"would check {sys.executable}: imports" in capsys.readouterr().err


def test_check_writes_nothing_into_the_env_and_sees_the_user_site(tmp_path, monkeypatch):
    base = Path(sys._base_executable)  # the interpreter under our venv: its user site is on
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests run under a Python that is not a venv's")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a user site of this test's own
    monkeypatch.delenv("PYTHONUSERBASE", raising=False)
    monkeypatch.delenv("PYTHONNOUSERSITE", raising=False)
    seen = tmp_path / "seen"
    wrapper = tmp_path / "bin" / "python"  # records what each start is given, then runs Python
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$NUMBA_CACHE_DIR $PYTHONDONTWRITEBYTECODE $1" >> "{seen}"\n'
                       f'exec "{base}" "$@"\n')
    wrapper.chmod(0o755)
    spec = replace(specs.get(Kind.MODEL, "still"), imports=())  # nothing our base Python lacks
    env = external_env.ExternalEnv(spec, tmp_path / "ours" / spec.env_id,
                                   local=ModelLocal("still", EnvRef("python", str(wrapper)), source="test"))
    assert env.problem() is None and not env.is_ready()
    external_env.check(env)
    record = env.read_stamp()
    short = ".".join(map(str, sys.version_info[:2]))
    user_site = tmp_path / "home" / ".local" / "lib" / f"python{short}" / "site-packages"
    assert str(user_site) in record["external"]["site_dirs"]
    assert set(record["external"]["site"]) <= set(record["external"]["site_dirs"])
    numba = env.root / "numba-cache"
    assert env.run_env == {"PYTHONDONTWRITEBYTECODE": "1", "NUMBA_CACHE_DIR": str(numba)}
    probe = [line.split() for line in seen.read_text().splitlines() if "health_probe.py" in line]
    assert probe and probe[0][:2] == [str(numba), "1"]
    assert env.is_ready()
    (user_site / "six.py").parent.mkdir(parents=True)  # `pip install --user six`, in effect
    (user_site / "six.py").write_text("")
    assert not env.is_ready()


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
