"""A model's inference: its argv template filled in, run in its env, its video found.

The run's resource use (memory of the whole process tree, GPU memory) is sampled while it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from thbench import envs, health, proc, specs, tools
from thbench.errors import UserError
from thbench.files import waiting_lock
from thbench.specs import Spec

console = Console(stderr=True, highlight=False, soft_wrap=True)


# `--offline` goes further than health.OFFLINE_ENV (set for every inference): no network at all.
NO_NETWORK = (["unshare", "--net"] if os.geteuid() == 0 else
              ["unshare", "--user", "--map-root-user", "--net"])


def infer(model: Spec, env: envs.Env, image: Path, speech: Path, run_dir: Path,
           work_dir: Path, extra: list[str] = (), *, offline: bool = False,
           monitor: proc.Watcher | None = None) -> Path:
    values = {"python": str(env.python), "spec_dir": str(model.folder), "image": str(image),
              "audio": str(speech), "work_dir": str(work_dir), "run_dir": str(run_dir),
              "repo": str(env.repo)}
    argv = model.command.expand(values) + [specs.expand(a, values) for a in extra]
    if offline:
        argv = [*NO_NETWORK, *argv]
    cwd = Path(specs.expand(model.command.cwd, values)) if model.command.cwd else work_dir
    log = run_dir / "logs" / "inference.log"
    # Upstream scripts write fixed temp files in their checkout (Wav2Lip's temp/, Audio2Head's
    # results/temp.wav): one inference per env at a time, others wait.
    with waiting_lock(Path(str(env.root) + ".run.lock"),
                      f"another {model.name} run is using {env.root}", console):
        # Upstream code runs `ffmpeg` by name: on a host without one, bootstrap's comes first.
        proc.run(argv, cwd=cwd, log=log,
                 env={**health.OFFLINE_ENV, **tools.child_env(), **env.run_env},
                 timeout=model.command.timeout, monitor=monitor)
    assert model.command.output is not None
    found = sorted(work_dir.glob(model.command.output), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            f"{model.name} finished but wrote nothing matching '{model.command.output}' "
            f"in {work_dir}", f"see {log}",
        )
    video = run_dir / "video.mp4"
    os.replace(found[-1], video)
    return video
