"""The check table for an existing env (external_env.py): its rows and the judgements behind them.

Each function turns what the check found (the health probe's report, the lock, the GPU, the
conda-meta records, the site folders' INSTALLER files, the checkout and the weights) into rows
of one table: OK, WARN or ERROR, with a tip. Nothing here runs the env; a checkout or weights
the config does not name are fetched into the project's own folder, as setup does, and a
checkout or weights folder it names is only read. external_env.check prints the table and
records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from thbench import conda_conflicts, gpu, proc, profiles, repo, weights
from thbench.envs import console
from thbench.specs import Gpu, Spec, pin_name

if TYPE_CHECKING:
    from thbench.external_env import ExternalEnv, Resolved

NEVER_CHANGED = "the project never changes an env it did not build"


class _Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, check: str, status: str, detail: str, tip: str = "") -> None:
        self.rows.append((check, status, detail, tip))

    @property
    def errors(self) -> list[tuple[str, str, str, str]]:
        return [r for r in self.rows if r[1] == "ERROR"]

    def print(self, title: str) -> None:
        table = Table(title=title, title_justify="left")
        for column in ("check", "", "found", "tip"):
            table.add_column(column, overflow="fold")
        style = {"OK": "[green]OK[/]", "WARN": "[yellow]WARN[/]", "ERROR": "[red]ERROR[/]"}
        for check, status, detail, tip in self.rows:
            table.add_row(check, style[status], detail, tip)
        console.print(table)


def _lock_rows(spec: Spec, packages: dict[str, str], rows: _Rows) -> None:
    locked = {}
    for line in spec.requirements.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip().rstrip("\\").strip()
        if "==" in requirement and not requirement.startswith("-"):
            locked[pin_name(requirement)] = requirement.split("==", 1)[1].strip()
    differ = [f"{n} {packages.get(n, 'missing')} (lock {v})" for n, v in sorted(locked.items())
              if packages.get(n) != v]
    if differ:
        rows.add("lock", "WARN", f"{len(differ)} of {len(locked)} locked packages differ: "
                 + ", ".join(differ[:5]) + (" …" if len(differ) > 5 else ""),
                 f"results may differ from an env built from {spec.requirements.name}")
    else:
        rows.add("lock", "OK", f"all {len(locked)} packages of {spec.requirements.name} as locked")


def torch_rows(spec: Spec, torch: dict, gpus: list[gpu.Gpu], rows: _Rows) -> None:
    """torch against the spec and the GPU: the same questions as health.py, this env's tips."""
    fix = f"fix torch in that env yourself ({NEVER_CHANGED}), or drop its local config entry"
    if "error" in torch:
        rows.add("torch", "ERROR", f"does not import: {torch['error']}", fix)
        return
    version = torch["version"]
    differs = _torch_differs(spec, torch)
    rows.add("torch", "WARN" if differs else "OK", f"{version} (CUDA {torch.get('cuda') or 'none'})",
             differs)
    needs = spec.gpu is Gpu.REQUIRED
    if not gpus:
        if needs:
            rows.add("gpu", "WARN", "no NVIDIA GPU on this machine", f"{spec.name} runs only on one")
        return
    device = gpus[0]
    # torch's own answer first: nvidia-smi before R510 gives no capability (sm "sm_").
    sm = torch.get("sm") or (device.sm if device.compute_capability else "")
    level = "ERROR" if needs else "WARN"
    if not torch.get("cuda"):
        rows.add("gpu", level, f"torch {version} is a CPU-only build; the {device.name} is unused",
                 fix)
    elif not torch.get("cuda_available"):
        rows.add("gpu", level, f"torch {version} (CUDA {torch['cuda']}) cannot see the "
                 f"{device.name} (driver {device.driver})",
                 "a torch whose CUDA this driver runs, or a newer driver; " + fix)
    elif sm and sm not in torch.get("arch_list", []):
        rows.add("gpu", "ERROR", f"torch {version} has no kernels for the {device.name} "
                 f"({sm}); built for {' '.join(torch.get('arch_list', []))}", fix)
    elif not torch.get("tiny_op"):
        rows.add("gpu", "ERROR", f"a tiny CUDA matmul failed on the {device.name}: "
                 f"{torch.get('tiny_op_error', 'wrong result')}", fix)
    else:
        rows.add("gpu", "OK", f"computes on the {device.name}" + (f" ({sm})" if sm else ""))


def _torch_differs(spec: Spec, torch: dict) -> str:
    """Why the torch found is not the build the spec pins ("" when it is): version, tag, CUDA."""
    pins = {pin_name(p): p.split("==", 1)[1] for p in spec.torch.packages}
    pinned, version = pins.get("torch", ""), torch["version"]
    build = profiles.torch_build(spec)
    if not pinned or build is None:
        return ""
    if version.split("+")[0] != build.version:
        return f"the spec pins {pinned}"
    tag, pinned_tag = version.partition("+")[2], pinned.partition("+")[2]
    if tag and pinned_tag and tag != pinned_tag:
        return f"a +{tag} build; the spec pins {pinned}"
    cuda = torch.get("cuda") or None
    if "unknown" not in build.source and cuda != build.cuda:  # a PyPI wheel names no tag
        want = f"CUDA {build.cuda}" if build.cuda else "a CPU-only build"
        return f"the spec's {pinned} ({build.source}) is {want}; this one has CUDA {cuda or 'none'}"
    return ""


def _conflicts(found: Resolved, info: dict, rows: _Rows) -> list[conda_conflicts.Conflict]:
    prefix = found.prefix or Path(info["prefix"])  # a python: path may lie in a conda env
    if not conda_conflicts.is_conda_prefix(prefix):
        return []
    conflicts = conda_conflicts.conflicts(prefix)
    if not conflicts:
        rows.add("conda/pip", "OK", "no package installed by both conda and pip/uv")
    else:
        for conflict in conflicts:  # each row its own advice; torch's names the CUDA build
            rows.add("conda/pip", "WARN", conflict.line(), conda_conflicts.tip([conflict]))
    return conflicts


def _installers(site: list[str]) -> dict[str, str]:
    """Who installed each distribution (pip, uv, conda), from its INSTALLER file."""
    found = {}
    for folder in site:
        for info in sorted(Path(folder).glob("*.dist-info")):
            try:
                who = (info / "INSTALLER").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            name = conda_conflicts.normalise(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
            found[name] = who
    return found


def _checkout(env: ExternalEnv, rows: _Rows) -> None:
    pinned = env.spec.repo
    if not pinned:
        return
    if not (env.local and env.local.repo):
        repo.checkout(pinned, env.repo, log=env.log)
        rows.add("checkout", "OK", f"{pinned.url} at {pinned.commit[:12]} in {env.repo}")
        return
    from thbench.runs import SHELL_SAFE_PATH  # runs builds on envs, which imports this lazily

    if not SHELL_SAFE_PATH.match(str(env.repo)):
        rows.add("checkout", "ERROR", f"{env.repo} holds spaces or shell syntax, and "
                 f"{env.spec.name}'s upstream code passes paths through a shell",
                 "move the checkout to a path of letters, digits and . _ - / only")
        return
    head = proc.run(["git", "-C", env.repo, "rev-parse", "HEAD"], capture=True, check=False,
                    env={"GIT_OPTIONAL_LOCKS": "0"}, timeout=60)  # read-only: no index refresh
    commit = head.stdout.strip()
    if head.returncode != 0:
        rows.add("checkout", "WARN", f"{env.repo} is not a git checkout; the spec pins "
                 f"{pinned.commit[:12]}", "results may differ from the pinned upstream code")
    elif commit != pinned.commit:
        rows.add("checkout", "WARN", f"{env.repo} is at {commit[:12]}, the spec pins "
                 f"{pinned.commit[:12]}", "results may differ from the pinned upstream code")
    else:
        rows.add("checkout", "OK", f"{env.repo} at the pinned {commit[:12]}")


def _repo_record(env: ExternalEnv) -> dict | None:
    if not env.spec.repo:
        return None
    return {"url": env.spec.repo.url, "pinned": env.spec.repo.commit, "path": str(env.repo),
            "given": bool(env.local and env.local.repo)}


def _weights(env: ExternalEnv, rows: _Rows) -> list[dict]:
    """Weights verified where the config puts them (never written there), else fetched as usual."""
    spec, local = env.spec, env.local
    if not spec.weights:
        return []
    given = local.weights if local else None
    if given and spec.repo and local.repo and given != local.repo:
        rows.add("weights", "ERROR", f"{spec.name} reads its weights inside its checkout "
                 f"{local.repo}, not {given}", "leave `weights` out (they are looked for in the "
                 "checkout), or leave `repo` out: the project's own checkout links them")
        return []
    where = given or (local.repo if local and local.repo else None)
    if where is None:  # nothing named: fetched into the project's own folder, as setup does
        fetched = weights.fetch_all(spec.weights, env.weights_root, console=console)
        rows.add("weights", "OK", f"{len(spec.weights)} present and verified in {env.weights_root}")
        return [{"dest": i.weight.dest, "sha256": i.sha256 or i.weight.sha256} for i in fetched.items]
    plan = weights.plan(spec.weights, where, write=False)  # no sidecars in a folder we don't own
    missing = [i.weight.dest for i in plan.items if i.needs_fetch]
    if missing:
        rows.add("weights", "ERROR", f"{len(missing)} of {len(plan.items)} missing or not matching "
                 f"their sha256 in {where}: {', '.join(missing[:4])}",
                 "put the files there (each spec [[weights]] dest, relative to that folder), or "
                 "leave `repo` and `weights` out to let the project fetch its own copy")
        return []
    if where != env.weights_root:  # our checkout: link each weight to the folder named
        for item in plan.items:
            link = env.weights_root / item.weight.dest
            if link.is_symlink():
                link.unlink()
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(item.path)
    rows.add("weights", "OK", f"{len(plan.items)} verified in {where}")
    return [{"dest": i.weight.dest, "sha256": i.sha256} for i in plan.items]
