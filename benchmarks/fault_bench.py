"""kill -9 in the middle of `invoke bench`, and two benches into one outputs folder at once.

A trial runs a bench of the stand-in model (a case with its own audio and one spoken by Piper,
twice each) into an outputs folder of its own, with a speech cache of its own (so the speech is
made, and can be killed, every time). At its moment the bench and everything under it are frozen
(SIGSTOP), what was under way is noted, and all of it is killed (SIGKILL). Then: every JSON record
on disk must parse (none half-written); the next command — `invoke bench --resume <folder>`, or
what the ERROR's TIP says, or the bench again if it never made its folder — must end with every
cell ok, each cell that was complete before the kill kept as it was, and no run folder lost.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fault_setup import Trial
from fault_world import (
    Finished,
    World,
    argv,
    finish,
    freeze,
    json_files_broken,
    power_cut,
    start,
    wait_or_kill,
)


def bench_argv(world: World, outputs: Path) -> list[str]:
    return argv("invoke", "bench", "--models", "standin", "--cases", world.cases,
                "--no-face-check", "--repeat", "2", "--outputs", outputs)


def folders(outputs: Path) -> list[Path]:
    root = outputs / "bench"
    return sorted(root.iterdir()) if root.exists() else []


def cells(folder: Path) -> dict[str, dict]:
    found = {}
    for path in (folder / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["cell"]] = record
    return found


def phase(outputs: Path) -> str:
    made = folders(outputs)
    if not made:
        return "planning (no bench folder yet)"
    folder = made[-1]
    if not (folder / "bench.json").exists():
        return "making the bench folder"
    speech = folder / "speech"
    if any(speech.glob(".*")) or not any(speech.glob("*.wav")):
        return "speech"
    states = [c["status"] for c in cells(folder).values()]
    return "cells: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))


def complete(folder: Path) -> dict[str, tuple[str, int]]:
    """Complete cells: their run folder and their run.json's mtime."""
    kept = {}
    for cell_id, record in cells(folder).items():
        if record["status"] == "ok":
            run_json = (folder / record["run_dir"]) / "run.json"
            kept[cell_id] = (record["run_dir"], run_json.stat().st_mtime_ns)
    return kept


def bench_trial(world: World, n: int, delay: float, attempt: int = 1) -> Trial:
    """Kill the bench ``delay`` s after its start; ``attempt`` > 1: another moment, in folders
    of its own, after an earlier one came after the bench ended."""
    trial = Trial("bench", n, f"random +{delay:.2f}s")
    name = f"bench-{n:02d}" + (f"-{attempt}" if attempt > 1 else "")
    outputs, logs = world.outputs(name), world.work / "logs" / name
    cache = str(world.work / "cache" / name)
    child = start(world, bench_argv(world, outputs), logs / "killed.log", THB_CACHE_DIR=cache)
    time.sleep(delay)
    if child.poll() is not None:
        trial.phase = f"ended first (exit {child.returncode})"
        trial.why = "the bench ended before the kill: no fault injected"
        return trial
    frozen = freeze(child)
    trial.phase = phase(outputs)
    power_cut(child, frozen)
    if broken := json_files_broken(outputs):
        trial.why = "half-written records: " + ", ".join(broken[:3])
        return trial
    made = folders(outputs)
    kept = complete(made[-1]) if made and (made[-1] / "bench.json").exists() else {}
    if not made:
        trial.after = "no bench folder: the bench again"
        result = finish(world, bench_argv(world, outputs), logs / "again.log", THB_CACHE_DIR=cache)
    else:
        result = finish(world, argv("invoke", "bench", "--resume", made[-1]), logs / "resume.log",
                        THB_CACHE_DIR=cache)
        trial.after = f"--resume: exit {result.code}"
        if result.code != 0 and result.one_error_and_tip:
            result = follow_tip(world, result, logs, cache)
            trial.after += f"; its TIP: exit {result.code}"
    trial.recovery = f"{len(kept)} complete cells before the kill"
    trial.ok, trial.why = verify(outputs, kept, result)
    return trial


def follow_tip(world: World, result: Finished, logs: Path, cache: str) -> Finished:
    match = re.search(r"`uv run (invoke [^`]+)`", result.said[-1])
    if not match:
        return result
    words = match.group(1).split()
    return finish(world, argv(*words), logs / "tip.log", THB_CACHE_DIR=cache)


def verify(outputs: Path, kept: dict[str, tuple[str, int]], result: Finished) -> tuple[bool, str]:
    if result.code != 0 or result.traceback:
        return False, f"the next command ended with exit {result.code}: " + " | ".join(
            result.said or result.output.splitlines()[-3:])
    if broken := json_files_broken(outputs):
        return False, "half-written records: " + ", ".join(broken[:3])
    finished = [f for f in folders(outputs) if (f / "bench.json").exists()]
    if len(finished) != 1:
        return False, f"{len(finished)} benches with a record, not 1"
    got = cells(finished[0])
    if len(got) != 4 or {c["status"] for c in got.values()} != {"ok"}:
        return False, "cells: " + ", ".join(f"{k} {v['status']}" for k, v in got.items())
    now = complete(finished[0])
    changed = [c for c, was in kept.items() if now.get(c) != was]
    if changed:
        return False, f"complete cells redone or changed: {', '.join(changed)}"
    lost = [c for c, (run_dir, _) in kept.items() if not (finished[0] / run_dir).exists()]
    return (not lost), ("" if not lost else f"run folders lost: {', '.join(lost)}")


def concurrent_benches(world: World) -> dict:
    """Two benches started together into one outputs folder: both finish, no run is lost."""
    outputs, logs = world.outputs("concurrent-benches"), world.work / "logs" / "concurrent-benches"
    children = [start(world, bench_argv(world, outputs), logs / f"bench-{i}.log")
                for i in range(2)]
    codes = [wait_or_kill(c) for c in children]
    benches = [f for f in folders(outputs) if (f / "bench.json").exists()]
    runs = [(b / r["run_dir"]).resolve() for b in benches for r in cells(b).values()
            if r["run_dir"]]
    statuses = [r["status"] for b in benches for r in cells(b).values()]
    present = [r for r in runs if (r / "run.json").exists() and (r / "video.mp4").exists()]
    folders_made = list((outputs / "standin").iterdir()) if (outputs / "standin").exists() else []
    ok = (codes == [0, 0] and len(benches) == 2 and statuses == ["ok"] * 8
          and len(set(runs)) == 8 and len(present) == 8 and len(folders_made) == 8)
    return {"benches": 2, "exits": codes, "bench_folders": len(benches), "cells_ok":
            statuses.count("ok"), "distinct_runs": len(set(runs)), "runs_present": len(present),
            "run_folders": len(folders_made), "broken_json": json_files_broken(outputs), "ok": ok}
