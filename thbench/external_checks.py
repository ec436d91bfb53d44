"""The check table for an existing env (external_env.py): its rows and the judgements behind them.

Each function turns what the check found (the health probe's report, the lock, the GPU, the
conda-meta records, the site folders' INSTALLER files) into rows of one table: OK, WARN or
ERROR, with a tip. Nothing here runs the env or writes anything; external_env.check prints
the table and records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from thbench import conda_conflicts, gpu
from thbench.envs import console
from thbench.specs import Gpu, Spec, pin_name

if TYPE_CHECKING:
    from thbench.external_env import Resolved

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
    pins = {pin_name(p): p.split("==", 1)[1] for p in spec.torch.packages}
    pinned, version = pins.get("torch", ""), torch["version"]
    same = version == pinned or version.split("+")[0] == pinned.split("+")[0]
    rows.add("torch", "OK" if same else "WARN", f"{version} (CUDA {torch.get('cuda') or 'none'})",
             "" if same else f"the spec pins {pinned}")
    needs = spec.gpu is Gpu.REQUIRED
    if not gpus:
        if needs:
            rows.add("gpu", "WARN", "no NVIDIA GPU on this machine", f"{spec.name} runs only on one")
        return
    device = gpus[0]
    level = "ERROR" if needs else "WARN"
    if not torch.get("cuda"):
        rows.add("gpu", level, f"torch {version} is a CPU-only build; the {device.name} is unused",
                 fix)
    elif not torch.get("cuda_available"):
        rows.add("gpu", level, f"torch {version} (CUDA {torch['cuda']}) cannot see the "
                 f"{device.name} (driver {device.driver})",
                 "a torch whose CUDA this driver runs, or a newer driver; " + fix)
    elif device.sm not in torch.get("arch_list", []):
        rows.add("gpu", "ERROR", f"torch {version} has no kernels for the {device.name} "
                 f"({device.sm}); built for {' '.join(torch.get('arch_list', []))}", fix)
    elif not torch.get("tiny_op"):
        rows.add("gpu", "ERROR", f"a tiny CUDA matmul failed on the {device.name}: "
                 f"{torch.get('tiny_op_error', 'wrong result')}", fix)
    else:
        rows.add("gpu", "OK", f"computes on the {device.name} ({device.sm})")


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
