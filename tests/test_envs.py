"""Env setup with real uv installing real packages from PyPI into real venvs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from thbench import envs, health, proc, specs
from thbench.errors import UserError
from thbench.specs import Kind

from . import standins

pytestmark = pytest.mark.slow

SPEC = """\
schema = 1
description = "test env"
python = "3.11"
requirements = "requirements.lock"
imports = {imports}
{torch}
[command]
argv = ["{{python}}", "-c", "print(1)"]
"""


@pytest.fixture(scope="session")
def six_lock(tmp_path_factory) -> str:
    """A real hashed lock for one tiny package, compiled by uv from PyPI."""
    folder = tmp_path_factory.mktemp("lock")
    (folder / "requirements.in").write_text("six==1.17.0\n")
    proc.run([envs.uv_binary(), "pip", "compile", "--quiet", "--generate-hashes",
              "--python-version", "3.11", folder / "requirements.in",
              "-o", folder / "requirements.lock"])
    return (folder / "requirements.lock").read_text()


@pytest.fixture
def envs_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "envs"
    monkeypatch.setenv("THB_ENVS_DIR", str(root))
    return root


def make_spec(root: Path, lock: str, imports: str = '["six"]', torch: str = "",
              name: str = "tiny") -> specs.Spec:
    folder = root / "checks" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.lock").write_text(lock)
    (folder / "spec.toml").write_text(SPEC.format(imports=imports, torch=torch))
    spec, problems = specs.parse(folder / "spec.toml", Kind.CHECK)
    assert problems == []
    return spec


def test_setup_builds_stamps_and_reuses(tmp_path, envs_dir, six_lock):
    spec = make_spec(tmp_path / "specs", six_lock)
    with pytest.raises(UserError) as caught:
        envs.require_ready(spec)
    assert "not set up" in caught.value.message
    assert caught.value.tip == "run `uv run nox -s setup-check-tiny`, then the same command again"

    env = envs.setup(spec)
    stamp = json.loads(env.stamp_path.read_text())
    assert stamp["identity"] == env.identity
    assert stamp["packages"]["six"] == "1.17.0"
    assert stamp["python"].startswith("3.11.")
    assert stamp["lock_sha256"] == spec.lock_sha256
    out = proc.run([env.python, "-c", "import six; print(six.__version__)"], capture=True)
    assert out.stdout.strip() == "1.17.0"
    assert envs.require_ready(spec) == env

    # A second setup on the unchanged spec runs no command: the log and venv stay untouched.
    log_mtime, python_mtime = env.log.stat().st_mtime_ns, env.python.lstat().st_mtime_ns
    envs.setup(spec)
    assert env.log.stat().st_mtime_ns == log_mtime
    assert env.python.lstat().st_mtime_ns == python_mtime


def test_changed_lock_makes_the_env_stale_and_setup_rebuilds(tmp_path, envs_dir, six_lock):
    spec = make_spec(tmp_path / "specs", six_lock)
    envs.setup(spec)
    changed = make_spec(tmp_path / "specs", six_lock + "# edited\n")
    with pytest.raises(UserError) as caught:
        envs.require_ready(changed)
    assert "changed since its setup" in caught.value.message
    env = envs.setup(changed)
    assert json.loads(env.stamp_path.read_text())["lock_sha256"] == changed.lock_sha256


def test_failed_install_leaves_nothing_that_looks_ready(tmp_path, envs_dir, six_lock):
    spec = make_spec(tmp_path / "specs", six_lock)
    env = envs.setup(spec)
    broken = make_spec(tmp_path / "specs", "six==0.0.999\n")
    with pytest.raises(proc.CommandFailed) as caught:
        envs.setup(broken)
    assert "uv pip install" in caught.value.message and str(env.log) in caught.value.message
    assert not env.stamp_path.exists() and not env.venv.exists()
    assert env.log.exists()  # kept for diagnosis
    with pytest.raises(UserError):
        envs.require_ready(broken)


def test_failed_import_in_health_check_fails_setup(tmp_path, envs_dir, six_lock):
    spec = make_spec(tmp_path / "specs", six_lock, imports='["six", "no_such_module"]')
    with pytest.raises(UserError) as caught:
        envs.setup(spec)
    assert "no_such_module: ModuleNotFoundError" in caught.value.message
    env = envs.Env.of(spec)
    assert not env.stamp_path.exists() and not env.venv.exists()


def test_torch_table_packages_are_held_fixed_against_the_lock(tmp_path, envs_dir, six_lock):
    """What [torch] installs first, the lock cannot replace: uv refuses instead of swapping."""
    wheels = tmp_path / "wheels"
    standins.build_torch(wheels, "2.1.2+cpu")
    torch = f'[torch]\npackages = ["torch==2.1.2+cpu"]\nindex = "{wheels.as_uri()}"\n'
    spec = make_spec(tmp_path / "specs", six_lock + "torch==2.2.0\n", torch=torch)
    with pytest.raises(proc.CommandFailed):
        envs.setup(spec)
    log = envs.Env.of(spec).log.read_text()
    assert "torch-constraints.txt" in log and "torch==2.1.2+cpu" in log
    assert "unsatisfiable" in log or "No solution found" in log
    assert not envs.Env.of(spec).stamp_path.exists()


def test_health_check_catches_a_replaced_torch(tmp_path, envs_dir, six_lock):
    """The second line of defence: whatever replaced torch after setup, the gate sees it."""
    wheels = tmp_path / "wheels"
    standins.build_torch(wheels, "2.1.2+cpu")
    other = standins.build_torch(tmp_path / "other", "2.1.3+cpu")
    torch = f'[torch]\npackages = ["torch==2.1.2+cpu"]\nindex = "{wheels.as_uri()}"\n'
    spec = make_spec(tmp_path / "specs", six_lock, imports='["six", "torch"]', torch=torch)
    env = envs.setup(spec)
    stamp = json.loads(env.stamp_path.read_text())
    assert stamp["torch"]["version"] == "2.1.2+cpu" and stamp["torch"]["cuda"] is None
    proc.run([envs.uv_binary(), "pip", "install", "--python", env.python, other])
    with pytest.raises(UserError) as caught:
        health.health_check(env)
    assert "torch is 2.1.3+cpu, the spec pins 2.1.2+cpu" in caught.value.message


def test_concurrent_setups_of_one_env_wait_for_each_other(tmp_path, envs_dir, six_lock):
    spec = make_spec(tmp_path / "specs", six_lock)
    env = envs.Env.of(spec)
    env.root.parent.mkdir(parents=True)
    held = FileLock(str(env.root) + ".lock")
    held.acquire()
    done = threading.Event()
    errors: list[BaseException] = []

    def other_setup() -> None:
        try:
            envs.setup(spec)
        except BaseException as err:  # surfaced below
            errors.append(err)
        done.set()

    thread = threading.Thread(target=other_setup)
    thread.start()
    try:
        assert not done.wait(1.5), "setup ran while another held the env lock"
        assert not env.stamp_path.exists()
    finally:
        held.release()
    thread.join(timeout=300)
    assert done.is_set() and not errors
    assert env.stamp_path.exists()


def test_missing_python_version_gives_error_and_tip(monkeypatch, tmp_path):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    # A mirror that refuses at once: uv cannot install, and must not hang.
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", "http://127.0.0.1:9/none")
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        envs.find_python("3.7")
    assert "Python 3.7 is not installed" in caught.value.message
    assert "UV_PYTHON_INSTALL_MIRROR" in caught.value.tip
    assert time.monotonic() - started < 120


def test_build_constraints_reach_sdist_builds(tmp_path, envs_dir, monkeypatch):
    """python_speech_features 0.6 is an sdist: a build constraint no setuptools meets must
    make its build fail, which shows the spec's build_constraints file is passed to uv."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # no wheel built earlier
    spec = make_spec(tmp_path / "specs", "python-speech-features==0.6\n", imports="[]")
    (spec.folder / "build-constraints.txt").write_text("setuptools<1\n")
    text = spec.path.read_text().replace(
        'requirements = "requirements.lock"',
        'requirements = "requirements.lock"\nbuild_constraints = "build-constraints.txt"')
    spec.path.write_text(text)
    constrained, problems = specs.parse(spec.path, Kind.CHECK)
    assert problems == [] and constrained.build_constraints.name == "build-constraints.txt"
    with pytest.raises(proc.CommandFailed):
        envs.setup(constrained)
    assert "--build-constraint" in envs.Env.of(constrained).log.read_text()

    (spec.folder / "build-constraints.txt").write_text("setuptools>=40\n")
    env = envs.setup(specs.parse(spec.path, Kind.CHECK)[0])
    assert json.loads(env.stamp_path.read_text())["packages"]["python-speech-features"] == "0.6"
