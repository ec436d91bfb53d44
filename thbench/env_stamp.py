"""An env's stamp (``<kind>-<name>/stamp.json``): what a finished setup records, written last.

Built from the setup's own results (envs.py); a stamp that matches the env's identity is what
lets a later setup or run reuse the env. doctor.py reads it back to say what went stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from thbench import gpu, proc, rehearsal, repo

if TYPE_CHECKING:
    from thbench.envs import Env
    from thbench.weights import Plan

STAMP_SCHEMA = 1


def _torch_dist_version(venv: Path) -> str | None:
    """torch's version from its dist-info folder name: no interpreter start needed."""
    found = sorted(venv.glob("lib/python3*/site-packages/torch-*.dist-info"))
    return found[0].name.removeprefix("torch-").removesuffix(".dist-info") if found else None


def build_stamp(env: Env, *, interpreter: Path, report: dict, fetched: Plan | None,
                standins: list | None, took: dict[str, float], uv: str) -> dict:
    """The stamp of ``env`` just built: its identity, what was installed and fetched, the steps'
    seconds (the total is added by the caller once the build is over)."""
    spec = env.spec
    return {
        "schema": STAMP_SCHEMA,
        "env": spec.env_id,
        "profile": spec.profile,
        "identity": env.identity,
        "spec_sha256": spec.sha256,
        "lock_sha256": spec.lock_sha256,
        "repo": {"url": spec.repo.url, "commit": spec.repo.commit,
                 "excluded": repo.excluded_paths(env.repo)} if spec.repo else None,
        "weights": [{"dest": i.weight.dest, "sha256": i.sha256 or i.weight.sha256,
                     "source": i.source}
                    for i in fetched.items] if fetched else [],
        "rehearsal": {"standins": standins, "seed": rehearsal.SEED,
                      "torch": spec.rehearsal.torch_why if spec.rehearsal.torch else None}
        if env.rehearse else None,
        "python": report["python"],
        "interpreter": str(interpreter),
        "torch": {**report["torch"], "dist": _torch_dist_version(env.venv)}
        if report["torch"] else None,
        **gpu.driver_record(),  # gpu_driver, driver_cuda: the driver that torch build was checked on
        "packages": report["packages"],
        "steps": took,
        "uv": proc.run([uv, "--version"], capture=True).stdout.strip(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
