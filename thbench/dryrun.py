"""The dry run of a setup: every step with its command, URL and size; nothing fetched or written."""

from __future__ import annotations

import os
import shlex
import shutil

from rich.console import Console
from rich.filesize import decimal

from thbench import profiles, redaction, rehearsal, weights
from thbench.envs import Env, _lock_argv, _torch_argv, _venv_argv, find_python


def print_plan(env: Env, reason: str) -> None:
    """The dry run: every step with its command, URL and size; nothing is fetched or written."""
    spec = env.spec
    console = Console(highlight=False)  # the plan is the output: stdout

    class _Masked:  # every line can hold a mirror URL (with its password) or a token
        def print(self, text: str, **kwargs) -> None:
            console.print(redaction.redact(text), **kwargs)

    out = _Masked()
    state = ("up to date" if env.is_ready() else
             "stale (will be rebuilt)" if env.read_stamp() else "not set up")
    out.print(f"[bold]Plan for {spec.env_id}[/] (dry run: nothing is downloaded or changed)")
    out.print(f"  env:     {env.root} — {state}")
    out.print(f"  profile: {spec.profile} — {reason}")
    if build := profiles.torch_build(spec):
        out.print(f"  torch:   {build}")
    interpreter = find_python(spec.python, install=False)
    python_note = str(interpreter) if interpreter else \
        f"not found locally: `uv python install {spec.python}` would download it" + (
            f" from {os.environ['UV_PYTHON_INSTALL_MIRROR']}"
            if os.environ.get("UV_PYTHON_INSTALL_MIRROR") else "")
    out.print(f"  python:  {spec.python} → {python_note}")
    steps = []
    if spec.repo:
        url = weights.rewrite_url(spec.repo.url)
        partial = " --filter=blob:none" if spec.repo.exclude else ""
        left_out = (f"; leaves out {', '.join(spec.repo.exclude)} (sparse checkout)"
                    if spec.repo.exclude else "")
        steps.append(f"git fetch --depth 1{partial} {url} {spec.repo.commit} → {env.repo} "
                     f"(full fetch if the server refuses a commit id){left_out}")
    steps.append(shlex.join(map(str, _venv_argv(env, interpreter or f"python{spec.python}"))))
    held = env.root / "torch-constraints.txt" if spec.torch else None
    if spec.torch:
        steps.append(shlex.join(map(str, _torch_argv(env))))
    packages = sum(1 for line in spec.requirements.read_text().splitlines()
                   if "==" in line and not line.lstrip().startswith("#"))
    steps.append(shlex.join(map(str, _lock_argv(env, held))) + f"   # {packages} pinned packages")
    the_plan = (weights.plan(spec.weights, env.weights_root, write=False)
                if spec.weights and not env.rehearse else None)
    if env.rehearse and spec.weights:
        steps.append(f"make {len(spec.weights)} stand-in weights with {spec.folder.name}/"
                     f"{spec.rehearsal.script} (random, seed {rehearsal.SEED}); nothing downloaded"
                     + (f"; torch: {spec.rehearsal.torch_why}" if spec.rehearsal.torch else ""))
    if the_plan and (made := rehearsal.standin_dests(env.root)):
        steps.append(f"delete the {len(made)} stand-in weights of the rehearsal set up here")
        the_plan = rehearsal.without_standins(the_plan, made)
    if the_plan:
        steps.append(f"download {len(the_plan.to_fetch)} of {len(spec.weights)} weights "
                     f"into {env.weights_root}, sha256-checked")
    steps.append("health check: import " + (", ".join(spec.imports) or "nothing")
                 + (", torch build and GPU" if spec.torch else ""))
    steps.append(f"write {env.stamp_path}")
    out.print("Steps:")
    for number, step in enumerate(steps, 1):
        out.print(f"  {number}. {step}", soft_wrap=True)
    if the_plan:
        out.print("Weights:")
        for line in the_plan.lines():
            out.print(f"  {line}", soft_wrap=True)
        need = the_plan.to_download + the_plan.to_unpack
        where = weights.existing_parent(env.weights_root)
        free = shutil.disk_usage(where).free
        unknown = (f" + {the_plan.unknown_sizes} weights of unknown size"
                   if the_plan.unknown_sizes else "")
        out.print(f"Disk: weights need {decimal(need)}{unknown} more under {where} "
                  f"({decimal(free)} free); packages come on top (uv cache + venv, "
                  "several GB with torch)")
