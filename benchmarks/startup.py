"""Start-up of the commands typed most, as ratios against `python -c pass`; asserts nothing.

    uv run python benchmarks/startup.py                   # this tree
    uv run python benchmarks/startup.py --before 7b555fd  # and an earlier commit, side by side

Each command runs as a user types it (`uv run invoke --list`, `uv run nox -l`), N times; the
median is shown next to `uv run python -c pass` in the same tree, so the ratio is the cost of
the command itself over starting Python through uv. `--before REV` checks REV out into a
temporary git worktree (its own .venv, synced from its lock first) and measures it the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import proc
from thbench.paths import REPO_ROOT

COMMANDS = {"python -c pass": ["python", "-c", "pass"], "invoke --list": ["invoke", "--list"],
            "nox -l": ["nox", "-l"]}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def median_seconds(tree: Path, argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat + 1):  # the first run warms the file cache; it is not counted
        started = time.perf_counter()
        proc.run(["uv", "run", "--frozen", "--project", str(tree), *argv], cwd=tree,
                 capture=True, timeout=120)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def measure(tree: Path, repeat: int) -> dict[str, float]:
    proc.run(["uv", "sync", "--frozen", "--project", str(tree)], cwd=tree, capture=True,
             timeout=600)
    return {name: median_seconds(tree, argv, repeat) for name, argv in COMMANDS.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="an earlier commit to measure beside this tree")
    parser.add_argument("--repeat", type=int, default=7, help="runs per command (default 7)")
    opts = parser.parse_args(argv)
    trees = {"now": measure(REPO_ROOT, opts.repeat)}
    if opts.before:
        with tempfile.TemporaryDirectory(prefix="thb-startup-") as tmp:
            worktree = Path(tmp) / "before"
            proc.run(["git", "worktree", "add", "--detach", str(worktree), opts.before],
                     cwd=REPO_ROOT, capture=True)
            try:
                trees = {f"before ({opts.before})": measure(worktree, opts.repeat), **trees}
            finally:
                proc.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO_ROOT,
                         capture=True, check=False)
    table = Table(title=f"start-up, median of {opts.repeat} runs (`uv run …`)")
    table.add_column("command")
    for label in trees:
        table.add_column(f"{label} s", justify="right")
        table.add_column(f"{label} ÷ pass", justify="right")
    if len(trees) == 2:
        table.add_column("speed-up", justify="right")
    for name in COMMANDS:
        cells = [name]
        for results in trees.values():
            cells += [f"{results[name]:.3f}", f"{results[name] / results['python -c pass']:.1f}"]
        if len(trees) == 2:
            before, now = trees.values()
            cells.append(f"{before[name] / now[name]:.1f}×")
        table.add_row(*cells)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
