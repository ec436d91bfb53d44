"""Fault injection with counts: kill -9 in setups and benches, runs at once, download faults.

    uv run nox -s setup-still                  # Piper and the face check (the uv cache warm)
    uv run python benchmarks/faults.py         # 20 kills each of a setup and a bench: ~8 min
    uv run python benchmarks/faults.py --kills 4 --only setup,downloads --keep

Everything runs on local stand-ins (tests/standin_model.py: a git remote, a torch wheel, weights
on a loopback server sending 4 MB/s), as a user types the commands. The groups:

- **setup kills** (fault_setup.py): `nox -s setup-standin` killed at random moments, a fifth of
  them aimed inside the weight download and a fifth inside the archive's unpacking;
- **bench kills** (fault_bench.py): `invoke bench` killed at random moments, then resumed;
- **at once**: four setups of one env; two benches into one outputs folder;
- **download faults** (fault_downloads.py): dropped, 404, 500 then 200, stalled, wrong length,
  wrong bytes, each on a plain URL and a Hub file.

Each trial's table row says when the kill was aimed, what was under way when everything was
frozen (SIGSTOP) just before the SIGKILL, what the next commands did, and why a trial failed.
The tallies come last; the exit status is 0 only when every trial passed. `--json PATH` keeps it
all. The seed is printed: `--seed N` replays the same moments.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import fault_bench  # noqa: E402
import fault_downloads  # noqa: E402
import fault_setup  # noqa: E402
import fault_world  # noqa: E402
from fault_setup import Trial  # noqa: E402

from tests.weight_server import serving  # noqa: E402

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
GROUPS = ("setup", "bench", "concurrent", "downloads")


def baseline(world: fault_world.World) -> tuple[float, float]:
    """Seconds of a whole setup (from no env) and a whole bench, each run once unkilled."""
    logs = world.work / "logs" / "baseline"
    started = time.monotonic()
    setup = fault_world.finish(world, fault_world.argv("nox", "-s", fault_world.SETUP),
                               logs / "setup.log")
    setup_s = time.monotonic() - started
    if setup.code != 0:
        raise SystemExit(f"the unkilled setup failed (exit {setup.code}); see {logs}/setup.log")
    # The first setup also set up Piper and the face check; the next ones only check them.
    shutil.rmtree(world.standin_env)
    started = time.monotonic()
    again = fault_world.finish(world, fault_world.argv("nox", "-s", fault_world.SETUP),
                               logs / "again.log")
    setup_s = time.monotonic() - started
    if again.code != 0:
        raise SystemExit(f"the second unkilled setup failed (exit {again.code}); see "
                         f"{logs}/again.log")
    started = time.monotonic()
    bench = fault_world.finish(world, fault_bench.bench_argv(world, world.outputs("baseline")),
                               logs / "bench.log", THB_CACHE_DIR=str(world.work / "cache" / "b"))
    if bench.code != 0:
        raise SystemExit(f"the unkilled bench failed (exit {bench.code}); see {logs}/bench.log")
    return setup_s, time.monotonic() - started


def setup_kills(world, count: int, seconds: float, rng: random.Random) -> list[Trial]:
    aims = ["random", "random", "random", "download", "unpack"] * (count // 5 + 1)
    aims = aims[:count]
    rng.shuffle(aims)
    trials = []
    for n, aim in enumerate(aims, 1):
        for _ in range(3):  # a moment after the setup ended injects nothing: another moment
            delay = {"random": rng.uniform(0.05, 0.95 * seconds),
                     "download": rng.uniform(0.0, 1.2), "unpack": rng.uniform(0.0, 0.1)}[aim]
            trial = fault_setup.setup_trial(world, n, aim, delay)
            if not trial.phase.startswith("ended first"):
                break
        trials.append(trial)
        show(trial)
    return trials


def bench_kills(world, count: int, seconds: float, rng: random.Random) -> list[Trial]:
    trials = []
    for n in range(1, count + 1):
        for attempt in range(1, 4):
            trial = fault_bench.bench_trial(world, n, rng.uniform(0.3, 0.9 * seconds), attempt)
            if not trial.phase.startswith("ended first"):
                break
        trials.append(trial)
        show(trial)
    return trials


def show(trial: Trial) -> None:
    mark = "[green]ok[/]" if trial.ok else "[red]FAIL[/]"
    console.print(f"  {trial.group} kill {trial.n:2d}: {mark} {escape(trial.aim)} · "
                  f"{escape(trial.phase)} · {escape(trial.after)} · {escape(trial.recovery)}"
                  + (f" · [red]{escape(trial.why)}[/]" if trial.why else ""))


def trial_table(title: str, trials: list[Trial]) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("#", "aimed", "under way when killed", "first command after",
                   "then", "result"):
        table.add_column(column)
    for t in trials:
        table.add_row(str(t.n), t.aim, t.phase, t.after, t.recovery,
                      "[green]ok[/]" if t.ok else f"[red]FAIL[/] {escape(t.why)}")
    return table


def fault_table(faults: list[fault_downloads.Fault]) -> Table:
    table = Table(title="download faults (loopback server)")
    for column in ("transport", "fault", "expected", "outcome", "GETs (Range)", "bad file kept",
                   "mended, again", "result"):
        table.add_column(column)
    for f in faults:
        table.add_row(f.transport, f.fault, f.expected, f.outcome + (f": {f.said}" if f.said
                      else ""), f.requests, "YES" if f.kept_bad else "no", f.then,
                      "[green]ok[/]" if f.ok else "[red]FAIL[/]")
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per group (default 20)")
    parser.add_argument("--only", default=",".join(GROUPS), help="groups: " + ",".join(GROUPS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", type=Path, help="write every result here")
    opts = parser.parse_args(argv)
    groups = [g for g in opts.only.split(",") if g]
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown group {', '.join(sorted(unknown))}")
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="thb-faults-"))
    (work / "logs").mkdir()
    console.print(f"seed {seed}; work folder {work}")
    results: dict = {"seed": seed, "kills": opts.kills}
    started = time.monotonic()
    tallies: list[tuple[str, int, int]] = []
    try:
        with serving() as server:
            world = fault_world.build(work, server, seed)
            if {"setup", "bench", "concurrent"} & set(groups):
                setup_s, bench_s = baseline(world)
                console.print(f"unkilled: setup {setup_s:.1f}s, bench {bench_s:.1f}s")
                results["baseline_seconds"] = {"setup": round(setup_s, 1),
                                               "bench": round(bench_s, 1)}
            if "setup" in groups:
                trials = setup_kills(world, opts.kills, setup_s, rng)
                console.print(trial_table("kill -9 during `nox -s setup-standin`", trials))
                tallies.append(("setup kills", sum(t.ok for t in trials), len(trials)))
                results["setup_kills"] = [asdict(t) for t in trials]
            if "bench" in groups:
                trials = bench_kills(world, opts.kills, bench_s, rng)
                console.print(trial_table("kill -9 during `invoke bench`", trials))
                tallies.append(("bench kills", sum(t.ok for t in trials), len(trials)))
                results["bench_kills"] = [asdict(t) for t in trials]
            if "concurrent" in groups:
                setups = fault_setup.concurrent_setups(world)
                benches = fault_bench.concurrent_benches(world)
                console.print(f"four setups at once: {setups}")
                console.print(f"two benches into one outputs folder: {benches}")
                tallies += [("4 setups of one env at once", int(setups["ok"]), 1),
                            ("2 benches into one outputs folder", int(benches["ok"]), 1)]
                results["concurrent"] = {"setups": setups, "benches": benches}
            if "downloads" in groups:
                faults = fault_downloads.run_all(server, seed, work / "logs" / "downloads.log")
                console.print(fault_table(faults))
                tallies.append(("download faults", sum(f.ok for f in faults), len(faults)))
                results["download_faults"] = [asdict(f) for f in faults]
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    for name, passed, total in tallies:
        colour = "green" if passed == total else "red"
        console.print(f"[{colour}]{name}: {passed}/{total}[/]")
    results["tallies"] = {name: f"{passed}/{total}" for name, passed, total in tallies}
    results["seconds"] = round(time.monotonic() - started)
    console.print(f"{results['seconds']} s in all; seed {seed}")
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(p == t for _, p, t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
