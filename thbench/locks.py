"""Every committed requirements.lock re-resolves, unchanged, from its [lock] source.

A spec's lock is compiled by ``uv pip compile`` from the ``[lock]`` table: its source (e.g.
``requirements.in``), target platform and packages left out. ``check`` compiles again, seeded
with the committed lock (uv keeps existing pins as preferences, so an unchanged source resolves
to the same lock) and reports any difference; ``update`` writes the new lock in place.

The compile runs in the spec's folder with relative paths, and the lock header names
``uv run nox -s locks`` instead of the command line, so no machine path ends up in a lock.
It needs PyPI, never a GPU or the upstream hosts.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from thbench import envs, proc
from thbench.errors import UserError
from thbench.files import atomic_write_text
from thbench.specs import DEFAULT_PROFILE, Spec, pin_name

COMPILE_COMMAND = "uv run nox -s locks"  # what the lock header tells readers to run
DIFF_LINES = 40  # a longer diff is cut: the summary line above it names every package
console = Console(stderr=True, highlight=False)


def _relative(path: Path, folder: Path) -> str:
    return os.path.relpath(path, folder) if path.is_relative_to(folder) else str(path)


def compile_argv(spec: Spec, output: Path) -> list[str]:
    """The ``uv pip compile`` command making ``spec``'s lock at ``output``; run it in spec.folder."""
    if spec.lock is None:
        raise ValueError(f"{spec.path} has no [lock] table")
    argv = [envs.uv_binary(), "pip", "compile", "--quiet",
            "--python-version", spec.python, "--python-platform", spec.lock.platform,
            "--generate-hashes", "--custom-compile-command", COMPILE_COMMAND]
    # torch and friends are installed first from [torch], so the lock never pins them.
    left_out = [pin_name(p) for p in spec.torch.packages] if spec.torch else []
    for package in [*left_out, *spec.lock.no_emit]:
        argv += ["--no-emit-package", package]
    if spec.build_constraints:
        argv += ["--build-constraint", _relative(spec.build_constraints, spec.folder)]
    argv += [_relative(spec.lock.source, spec.folder), "-o", _relative(output, spec.folder)]
    return argv


def resolve(spec: Spec, log: Path | None = None) -> str:
    """The lock ``spec``'s source resolves to today, seeded with the committed lock."""
    with tempfile.TemporaryDirectory(prefix="thbench-lock-") as tmp:
        output = Path(tmp) / spec.requirements.name
        output.write_bytes(spec.requirements.read_bytes())
        proc.run(compile_argv(spec, output), cwd=spec.folder, log=log, timeout=1800,
                 tip=f"fix {_relative(spec.lock.source, spec.folder)} in {spec.folder} "
                     "(the resolver's last lines are above) and run the same command again")
        return output.read_text(encoding="utf-8")


def check(spec: Spec, log: Path | None = None) -> str | None:
    """None when the committed lock re-resolves unchanged, else a summary and a short diff."""
    committed = spec.requirements.read_text(encoding="utf-8")
    return describe(committed, resolve(spec, log), spec.requirements.name)


def update(spec: Spec, log: Path | None = None) -> bool:
    """Rewrite ``spec``'s lock with what its source resolves to; True if anything changed."""
    new = resolve(spec, log)
    if new == spec.requirements.read_text(encoding="utf-8"):
        return False
    _write(spec, new)
    return True


def _write(spec: Spec, text: str) -> None:
    atomic_write_text(spec.requirements, text)  # a lock is never half-written


# --- describing a difference -----------------------------------------------------------------


def _pins(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a hashed lock."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    name = None
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", line):
            name = match.group(1).lower()
            pins[name] = (match.group(2), frozenset())
        elif name and (match := re.search(r"--hash=(\S+)", line)):
            version, hashes = pins[name]
            pins[name] = (version, hashes | {match.group(1)})
    return pins


def describe(old: str, new: str, name: str = "requirements.lock") -> str | None:
    """None if equal; else which packages moved (one line) and the first lines of a diff."""
    if old == new:
        return None
    before, after = _pins(old), _pins(new)
    moved = []
    for package in sorted(before.keys() | after.keys()):
        was, now = before.get(package), after.get(package)
        if was is None:
            moved.append(f"+{package} {now[0]}")
        elif now is None:
            moved.append(f"-{package} {was[0]}")
        elif was[0] != now[0]:
            moved.append(f"{package} {was[0]} -> {now[0]}")
        elif was[1] != now[1]:
            moved.append(f"{package} {now[0]} (hashes: {len(was[1])} -> {len(now[1])} files)")
    summary = "packages: " + ", ".join(moved) if moved else "packages unchanged; comments differ"
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{name} (committed)",
                                     f"{name} (re-resolved)", n=0, lineterm=""))
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + [f"... {len(diff) - DIFF_LINES} more diff lines"]
    return "\n".join([summary, *diff])


# --- every spec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    spec: Spec
    seconds: float
    difference: str | None = None  # stale: what differs (rewritten when updating)
    error: str | None = None  # the compile failed

    @property
    def ok(self) -> bool:
        return self.difference is None and self.error is None


def check_all(specs: Iterable[Spec], *, update: bool = False) -> list[Outcome]:
    """Check (or, with ``update``, rewrite) every spec's lock; print ✓/✗ per spec with timing."""
    outcomes = []
    for spec in specs:
        label = f"{spec.kind.folder}/{spec.name}/{spec.requirements.name}"
        if spec.profile != DEFAULT_PROFILE:
            label += f" (profile {spec.profile})"
        start = time.monotonic()
        difference = error = None
        with console.status(f"re-resolving {label}…"):
            try:
                committed = spec.requirements.read_text(encoding="utf-8")
                new = resolve(spec)
                difference = describe(committed, new, spec.requirements.name)
                if update and difference:
                    _write(spec, new)
            except proc.CommandFailed as err:  # the resolver says why in its last lines
                error = " ".join(line.strip() for line in err.tail.strip().splitlines()[-3:])
            except UserError as err:
                error = err.message
        outcome = Outcome(spec, time.monotonic() - start, difference, error)
        outcomes.append(outcome)
        took = f"[dim]({outcome.seconds:.1f}s)[/]"
        if outcome.ok:
            console.print(f"  [green]✓[/] {label} {took}")
        elif error:
            console.print(f"  [red]✗[/] {label} {took} compile failed: {escape(error)}",
                          soft_wrap=True)
        else:
            mark = "[yellow]↻[/]" if update else "[red]✗[/]"
            console.print(f"  {mark} {label} {took} {'rewritten' if update else 'stale'}")
            console.print(difference, markup=False, soft_wrap=True)
    return outcomes


def verdict(outcomes: list[Outcome], *, updated: bool = False) -> UserError | None:
    """The error a lock check ends in, or None when every lock is current (or was rewritten)."""
    stale = [o.spec.name for o in outcomes if o.difference and not updated]
    broken = [o.spec.name for o in outcomes if o.error]
    if not stale and not broken:
        return None
    parts = ([f"stale: {', '.join(stale)}"] if stale else []) + (
        [f"do not compile: {', '.join(broken)}"] if broken else [])
    tips = (["if the differences above are wanted, run `uv run nox -s locks -- --update`"]
            if stale else []) + (["fix the requirements.in the resolver names above"]
                                 if broken else [])
    return UserError(f"{len(stale) + len(broken)} of {len(outcomes)} locks are not current "
                     f"({'; '.join(parts)})", "; ".join(tips))
