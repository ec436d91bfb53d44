"""kill -9 in the middle of `nox -s setup-standin`, and four setups of one env at once.

A trial starts from no env, starts the setup, and at its moment freezes the setup and everything
under it (SIGSTOP, so the disk holds still), notes what was under way, and kills it all (SIGKILL).
Then, as a user would: what is on disk must not pass for a finished env (every weight at its
final path verifies, an unpacked folder is whole, no stamp without a working env); `invoke run`
either works (the env was stamped before the kill) or is one ERROR + TIP naming the setup
command; the setup, run again, finishes and verifies, and `invoke run` then works.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fault_world import (
    FACE,
    SETUP,
    UNPACK_MEMBERS,
    Finished,
    World,
    argv,
    finish,
    freeze,
    power_cut,
    sha,
    start,
    wait_for,
    wait_or_kill,
)

from tests.standin_model import HUB_FOLDER


@dataclass
class Trial:
    group: str
    n: int
    aim: str  # when the kill was aimed
    phase: str = ""  # what was under way when the command was frozen
    after: str = ""  # what the first command after the kill did
    recovery: str = ""  # the next command, until the env verifies
    ok: bool = False
    why: str = ""


def run_argv(world: World, out: Path) -> list[str]:
    return argv("invoke", "run", "standin", "--image", FACE, "--audio", world.audio,
                "--no-face-check", "--outputs", out)


# --- what was under way ------------------------------------------------------------------------

def downloading(world: World) -> bool:
    repo = world.standin_env / "repo"
    return any(repo.rglob("*.part")) or any(p.is_file() for p in (repo / ".thb-staging").rglob("*"))


def unpacking(world: World) -> bool:
    return any((world.standin_env / "repo" / "tables").glob(".lut.*.unpacking"))


STEPS = (("git", "checkout"), ("uv venv", "venv"), ("torch==", "torch install"),
         ("requirements.lock", "lock install"), ("health_probe", "health check"))


def partial_files(world: World) -> dict[str, int]:
    """Downloads under way: file name → bytes on disk (a .part, or a Hub staging file)."""
    repo = world.standin_env / "repo"
    found = {p.name.removesuffix(".part"): p.stat().st_size for p in repo.rglob("*.part")}
    found |= {p.name: p.stat().st_size for p in (repo / ".thb-staging").rglob("*") if p.is_file()}
    return found


def leftovers(world: World) -> list[str]:
    """Temporary files a finished setup should not leave behind."""
    repo = world.standin_env / "repo"
    return sorted(str(p.relative_to(repo)) for pattern in ("*.part", ".*.unpacking", ".thb-staging")
                  for p in repo.rglob(pattern))


def phase(world: World) -> str:
    env = world.standin_env
    if (env / "stamp.json").exists():
        return "after the model's stamp (Piper, face check)"
    if unpacking(world):
        return "unpack"
    if parts := partial_files(world):
        return "download " + ", ".join(f"{name} at {size / 1e6:.1f} MB"
                                       for name, size in parts.items())
    log = env / "setup.log"
    commands = [line for line in log.read_text(errors="replace").splitlines()
                if line.startswith("$ ")] if log.exists() else []
    if not commands:
        return "start-up (no command yet)"
    last = commands[-1]
    name = next((step for word, step in STEPS if word in last), last[:40])
    if name == "lock install" and (env / "repo" / "checkpoints").exists():
        return "weights (between files)"
    return name


# --- what is on disk ---------------------------------------------------------------------------

def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half_built(world: World) -> list[str]:
    """What a user could mistake for finished: a weight at its final path with other bytes, an
    unpacked folder missing members; once the env is stamped, every weight must be there and
    verify."""
    model, repo = world.model, world.standin_env / "repo"
    stamped = (world.standin_env / "stamp.json").exists()
    expected = {"checkpoints/gain.bin": model.gain, "downloads/lut.tar.gz": model.lut} | {
        "encoder/" + rel.removeprefix(HUB_FOLDER + "/"): data for rel, data in model.files.items()}
    wrong = []
    encoder_there = (repo / "encoder").exists()  # a Hub folder lands whole, or not at all
    for rel, data in expected.items():
        path = repo / rel
        must = stamped or (rel.startswith("encoder/") and encoder_there)
        if path.exists() and sha(path) != digest(data):
            wrong.append(f"{rel} has other bytes")
        elif must and not path.exists():
            wrong.append(f"{rel} is missing")
    lut = repo / "tables" / "lut"
    whole = UNPACK_MEMBERS + 2  # lut.txt, the rows and the unpack marker
    found = sum(p.is_file() for p in lut.rglob("*")) if lut.exists() else 0
    if (lut.exists() or stamped) and found != whole:
        wrong.append(f"tables/lut holds {found} files, not {whole}")
    if stamped and wrong:
        wrong.append("and a stamp says the env is ready")
    return wrong


def not_resumed(world: World, parts: dict[str, int], asked: list) -> list[str]:
    """Files partly on disk at the kill that the next setup fetched again from byte 0. A file
    all on disk may need no GET at all (huggingface_hub sees its whole size staged)."""
    missed = []
    for name, size in parts.items():
        gets = [s.range for s in asked if s.path.endswith("/" + name)]
        if size and gets and f"bytes={size}-" not in gets:
            missed.append(f"{name}: {size} bytes on disk, asked for {gets}")
    return missed


def refused_with_setup_tip(result: Finished) -> bool:
    return (result.code == 2 and result.one_error_and_tip
            and f"uv run nox -s {SETUP}" in result.said[1])


# --- one trial ---------------------------------------------------------------------------------

def setup_trial(world: World, n: int, aim: str, delay: float) -> Trial:
    """Kill the setup ``delay`` s after the start (aim "random") or after the download or the
    unpack is seen to begin (aim "download" / "unpack")."""
    trial = Trial("setup", n, f"{aim} +{delay:.2f}s")
    shutil.rmtree(world.standin_env, ignore_errors=True)
    logs = world.work / "logs" / f"setup-{n:02d}"
    child = start(world, argv("nox", "-s", SETUP), logs / "killed.log")
    seen = {"download": lambda: downloading(world), "unpack": lambda: unpacking(world)}.get(aim)
    alive = (seen is None or wait_for(child, 300, until=seen)) and wait_for(child, delay)
    if not alive:
        trial.phase = f"ended first (exit {child.wait()})"
        trial.why = "the setup ended before the kill: no fault injected"
        return trial
    frozen = freeze(child)
    trial.phase, parts = phase(world), partial_files(world)
    power_cut(child, frozen)
    requests_before = len(world.server.log())
    if wrong := half_built(world):
        trial.why = "; ".join(wrong)
        return trial
    stamped = (world.standin_env / "stamp.json").exists()
    first = finish(world, run_argv(world, world.outputs(f"setup-{n:02d}")), logs / "run.log")
    trial.after = f"run: exit {first.code}" + ("" if first.code == 0 else " ERROR + TIP"
                                               if first.one_error_and_tip else " (no ERROR+TIP)")
    if not (first.code == 0 if stamped else refused_with_setup_tip(first)):
        trial.why = f"after the kill, `invoke run` {trial.after}: " + " | ".join(first.said[:2])
        return trial
    trial.recovery, trial.ok, trial.why = recover(world, logs, world.outputs(f"setup-{n:02d}"))
    asked = [s for s in world.server.log()[requests_before:] if s.method == "GET"]
    if missed := not_resumed(world, parts, asked):
        trial.ok, trial.why = False, "not resumed: " + "; ".join(missed)
    elif resumed := [name for name, size in parts.items()
                     if size and any(s.range == f"bytes={size}-" for s in asked)]:
        trial.recovery += "; resumed " + ", ".join(resumed)
    return trial


def recover(world: World, logs: Path, outputs: Path) -> tuple[str, bool, str]:
    """The setup again must finish; then the env must verify, hold no temporary file, and run."""
    again = finish(world, argv("nox", "-s", SETUP), logs / "setup-again.log")
    said = f"setup: exit {again.code}"
    if again.code != 0:
        return said, False, "the setup after the kill did not finish: " + " | ".join(
            again.said or again.output.splitlines()[-3:])
    if wrong := half_built(world) or [f"left behind: {p}" for p in leftovers(world)]:
        return said, False, "; ".join(wrong)
    stamp = json.loads((world.standin_env / "stamp.json").read_text())
    if stamp["repo"]["commit"] != world.model.commit:
        return said, False, "the stamp names another commit"
    done = finish(world, run_argv(world, outputs), logs / "run-after.log")
    said += f"; run: exit {done.code}"
    return said, done.code == 0, "" if done.code == 0 else " | ".join(done.said)


# --- four at once ------------------------------------------------------------------------------

def concurrent_setups(world: World, count: int = 4) -> dict:
    """``count`` setups of one (absent) env started together: one builds, the others wait and
    find it ready; every weight comes over the wire once."""
    shutil.rmtree(world.standin_env, ignore_errors=True)
    before = len(world.server.log("/gain.bin"))
    logs = world.work / "logs" / "concurrent-setups"
    started = time.monotonic()
    children = [start(world, argv("nox", "-s", SETUP), logs / f"setup-{i}.log")
                for i in range(count)]
    codes = [wait_or_kill(c) for c in children]
    outputs = [(logs / f"setup-{i}.log").read_text(errors="replace") for i in range(count)]
    built = sum("Setting up model-standin" in out for out in outputs)
    fetched = [s for s in world.server.log("/gain.bin")[before:] if s.method == "GET"]
    wrong = half_built(world)
    run = finish(world, run_argv(world, world.outputs("concurrent-setups")), logs / "run.log")
    ok = codes == [0] * count and built == 1 and len(fetched) == 1 and not wrong \
        and run.code == 0
    return {"setups": count, "exits": codes, "built": built, "gain_gets": len(fetched),
            "seconds": round(time.monotonic() - started, 1), "run_exit": run.code,
            "half_built": wrong, "ok": ok}
