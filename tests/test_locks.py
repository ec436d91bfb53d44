"""Lock re-resolution with real uv against PyPI (tiny package: six)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thbench import envs, locks, proc, specs
from thbench.specs import Kind

SPEC = """\
schema = 1
description = "test lock"
python = "3.11"
requirements = "requirements.lock"
{extra}
[command]
argv = ["{{python}}", "-c", "print(1)"]

[lock]
source = "requirements.in"
{lock_extra}
"""


def make_spec(root: Path, requirements_in: str, *, lock: str = "", extra: str = "",
              lock_extra: str = "", files: dict[str, str] | None = None) -> specs.Spec:
    folder = root / "checks" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.in").write_text(requirements_in)
    (folder / "requirements.lock").write_text(lock)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    (folder / "spec.toml").write_text(SPEC.format(extra=extra, lock_extra=lock_extra))
    spec, problems = specs.parse(folder / "spec.toml", Kind.CHECK)
    assert problems == []
    return spec


def test_compile_argv_leaves_out_torch_and_no_emit_and_uses_relative_paths(tmp_path):
    spec = make_spec(
        tmp_path, "torch==2.0.1\n",
        extra='build_constraints = "build-constraints.txt"\n'
              '[torch]\npackages = ["torch==2.0.1+cu118", "torchvision[extra]==0.15.2+cu118"]\n'
              'index = "https://download.pytorch.org/whl/cu118"\n',
        lock_extra='platform = "aarch64-manylinux_2_28"\nno_emit = ["nvidia-cudnn-cu11"]\n',
        files={"build-constraints.txt": "cython<3.1\n"},
    )
    assert locks.compile_argv(spec, spec.requirements) == [
        envs.uv_binary(), "pip", "compile", "--quiet",
        "--python-version", "3.11", "--python-platform", "aarch64-manylinux_2_28",
        "--generate-hashes", "--custom-compile-command", "uv run nox -s locks",
        "--no-emit-package", "torch", "--no-emit-package", "torchvision",
        "--no-emit-package", "nvidia-cudnn-cu11",
        "--build-constraint", "build-constraints.txt",
        "requirements.in", "-o", "requirements.lock",
    ]
    elsewhere = tmp_path / "out" / "requirements.lock"  # outside the spec folder: absolute
    assert locks.compile_argv(spec, elsewhere)[-3:] == ["requirements.in", "-o", str(elsewhere)]


def test_describe_names_the_packages_that_moved():
    old = "a==1.0 \\\n    --hash=sha256:aa\nb==2.0 \\\n    --hash=sha256:bb\n"
    new = "a==1.1 \\\n    --hash=sha256:ab\nb==2.0 \\\n    --hash=sha256:bb \\\n" \
          "    --hash=sha256:bc\nc==3.0 \\\n    --hash=sha256:cc\n"
    assert locks.describe(old, old) is None
    summary, *diff = locks.describe(old, new).splitlines()
    assert summary == "packages: a 1.0 -> 1.1, b 2.0 (hashes: 1 -> 2 files), +c 3.0"
    assert "-a==1.0 \\" in diff and "+a==1.1 \\" in diff


@pytest.mark.slow
def test_check_and_update_against_pypi(tmp_path):
    spec = make_spec(tmp_path, "six==1.17.0\n")
    proc.run(locks.compile_argv(spec, spec.requirements), cwd=spec.folder)
    committed = spec.requirements.read_text()
    assert "six==1.17.0" in committed and "--hash=sha256:" in committed
    assert "#    uv run nox -s locks\n" in committed and "# via -r requirements.in" in committed
    assert str(tmp_path) not in committed  # no machine path in a lock
    assert locks.check(spec) is None

    (spec.folder / "requirements.in").write_text("six==1.16.0\n")
    difference = locks.check(spec)
    assert difference is not None
    assert difference.splitlines()[0] == "packages: six 1.17.0 -> 1.16.0"
    assert "-six==1.17.0 \\" in difference and "+six==1.16.0 \\" in difference
    assert spec.requirements.read_text() == committed  # check never writes

    [outcome] = locks.check_all([spec])
    assert not outcome.ok and outcome.error is None and "six 1.17.0 -> 1.16.0" in outcome.difference
    assert spec.requirements.read_text() == committed
    err = locks.verdict([outcome])
    assert err.message == "1 of 1 locks are not current (stale: tiny)"
    assert "`uv run nox -s locks -- --update`" in err.tip

    assert locks.update(spec) is True
    assert "six==1.16.0" in spec.requirements.read_text()
    assert locks.check(spec) is None
    assert locks.update(spec) is False
    assert locks.verdict(locks.check_all([spec])) is None
    assert sorted(p.name for p in spec.folder.iterdir()) == [
        "requirements.in", "requirements.lock", "spec.toml"]


@pytest.mark.slow
def test_a_source_that_does_not_resolve_is_reported_not_raised(tmp_path):
    spec = make_spec(tmp_path, "six==1.17.0\nsix==1.16.0\n", lock="six==1.17.0\n")
    [outcome] = locks.check_all([spec])
    assert not outcome.ok and outcome.difference is None
    assert "requirements are unsatisfiable" in outcome.error
    assert "do not compile: tiny" in locks.verdict([outcome], updated=True).message
    assert spec.requirements.read_text() == "six==1.17.0\n"
