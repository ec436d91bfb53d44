"""Rehearsal: a model's real upstream code, real checkout and real packages, on stand-in weights.

``nox -s setup-<model> -- --rehearse`` builds the env as a real setup does (pinned checkout,
venv, torch first, the lock with torch held, health gate) except that each ``[[weights]]`` dest
is made by the spec's ``[rehearsal] script``: the upstream code's own model classes, randomly
initialised with a fixed seed, saved in the format the upstream loader reads. Nothing is
downloaded. ``invoke run <model> --rehearse …`` then runs the real entry point with the
adapter's exact argv (plus the rehearsal's extra options, e.g. the face check's box where a
random face detector would find nothing). An inference that stops where the spec expects it
(``[rehearsal] stops``: a GPU, real weights) is recorded as "rehearsed up to <stage>".

Rehearsal is marked wherever it shows: the stamp (``"rehearsal"``), ``run.json``, the output
table, ``invoke models``. A real run refuses a rehearsal env; a real setup deletes the stand-ins
(listed in ``<env>/standins.json``) and fetches the real weights in their place. A rehearsal
never overwrites real weights: it refuses an env where a verified weight is in place.

``nox -s rehearse-<model>`` chains both and writes ``solutions/<model>/rehearsal.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

from thbench import media, paths, proc, weights
from thbench.errors import UserError
from thbench.files import atomic_write_text, sha256_file
from thbench.rehearsal_spec import FACE_PLACEHOLDERS
from thbench.specs import Spec

STANDINS = "standins.json"  # in the env root: what the rehearsal script made
SEED = 0
SCRIPT_TIMEOUT = 1800


def spec_for(spec: Spec) -> Spec:
    """The spec a rehearsal env is built from: the rehearsal's torch build, if it names one."""
    if spec.rehearsal is None:
        raise UserError(f"model '{spec.name}' has no [rehearsal] table, so it cannot be rehearsed",
                        "rehearsable models: see `uv run invoke models` (column 'rehearsal')")
    if spec.rehearsal.torch:
        return replace(spec, torch=spec.rehearsal.torch)
    return spec


def refuse_real_weights(spec: Spec, root: Path, env_root: Path) -> None:
    """Stand-ins are never written over verified real weights (gigabytes, maybe hand-placed).

    A file an earlier rehearsal made, unchanged since, is not a real weight, even where it
    verifies (a config written byte for byte, a manual weight that any file satisfies).
    """
    made = {entry["dest"]: entry for entry in _manifest(env_root)}
    real = [i.weight.dest for i in weights.plan(spec.weights, root, write=False).items
            if i.present and not _unchanged(root / landing(i.weight), made.get(landing(i.weight)))]
    if real:
        raise UserError(
            f"{spec.name}: real weights are in place under {root} ({', '.join(real[:3])}"
            + (", …" if len(real) > 3 else "") + "); a rehearsal would replace them",
            "rehearse in another env folder: THB_ENVS_DIR=/tmp/thb-rehearsal uv run nox -s "
            f"{spec.setup_session} -- --rehearse",
        )


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _unchanged(path: Path, entry: dict | None) -> bool:
    """Whether ``path`` is still the stand-in ``entry`` describes (files: size and mtime)."""
    if entry is None or not path.exists():
        return False
    if entry["kind"] == "file":
        return path.is_file() and _stat(path) == entry.get("stat")
    return path.is_dir() and _digest(path) == entry["sha256"]


def _manifest(env_root: Path) -> list[dict]:
    try:
        return json.loads(standins_file(env_root).read_text())["made"]
    except (OSError, ValueError, KeyError):
        return []


def _digest(path: Path) -> str:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = {str(p.relative_to(path)): sha256_file(p) for p in files}
        return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()
    return sha256_file(path)


def make_standins(spec: Spec, python: Path, repo: Path, root: Path, env_root: Path,
                  log: Path) -> list[dict]:
    """Run the rehearsal script; every declared dest must exist afterwards. Returns the manifest."""
    assert spec.rehearsal is not None
    script = spec.folder / spec.rehearsal.script
    root.mkdir(parents=True, exist_ok=True)
    proc.run([python, script, "--root", root, "--seed", str(SEED)],
             cwd=repo if spec.repo else root, log=log,
             timeout=SCRIPT_TIMEOUT)
    missing = [landing(w) for w in spec.weights if not (root / landing(w)).exists()]
    if missing:
        raise UserError(f"{script.name} did not make {', '.join(missing)}",
                        f"see {log}; the script must write every [[weights]] dest of the spec")
    made = []
    for weight in spec.weights:
        path = root / landing(weight)
        entry = {"dest": landing(weight), "sha256": _digest(path),
                 "kind": "folder" if path.is_dir() else "file"}
        if entry["kind"] == "file":
            entry["stat"] = _stat(path)
        made.append(entry)
    atomic_write_text(standins_file(env_root), json.dumps(
        {"seed": SEED, "script": spec.rehearsal.script, "made": made}, indent=2) + "\n")
    return made


def landing(weight: weights.Weight) -> str:
    """Where upstream code reads a weight: the unpacked folder of an archive, else its dest."""
    return weight.unpack or weight.dest


def standins_file(env_root: Path) -> Path:
    return env_root / STANDINS


def standin_dests(env_root: Path) -> set[str]:
    """Where the rehearsal set up in ``env_root`` (if any) put stand-ins."""
    return {entry["dest"] for entry in _manifest(env_root)}


def without_standins(plan: weights.Plan, made: set[str]) -> weights.Plan:
    """``plan`` as a real setup will find it, once it has deleted the stand-ins (dry run)."""
    items = tuple(replace(item, present=False, unpacked=False, partial=0, sha256=None,
                          to_download=item.weight.size)
                  if landing(item.weight) in made else item for item in plan.items)
    return replace(plan, items=items)


def remove_standins(env_root: Path, root: Path, log: Path | None = None) -> list[str]:
    """Delete what a rehearsal made (as listed), so a real setup fetches real weights there."""
    manifest = standins_file(env_root)
    removed = []
    for entry in _manifest(env_root):
        target = root / entry["dest"]
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            continue
        removed.append(entry["dest"])
    manifest.unlink(missing_ok=True)
    if log is not None and removed:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"[thbench] removed rehearsal stand-ins: {', '.join(removed)}\n")
    return removed


# --- a rehearsal run ---------------------------------------------------------------------------


def face_values(face: dict | None, width: int, height: int) -> dict[str, str]:
    """The face check's largest box in pixels, for ``{face_top}`` … in a rehearsal argv."""
    if not face or not face.get("boxes"):
        return {}
    x, y, w, h = face["boxes"][0][:4]

    def clamp(value: float, limit: int) -> str:
        return str(max(0, min(limit, round(value))))

    return {"face_top": clamp(y * height, height), "face_bottom": clamp((y + h) * height, height),
            "face_left": clamp(x * width, width), "face_right": clamp((x + w) * width, width)}


def run_argv(spec: Spec, face: dict | None, image: media.ImageInfo) -> list[str]:
    """The rehearsal's extra inference options, face placeholders filled, the others left."""
    assert spec.rehearsal is not None
    if not spec.rehearsal.uses_face():
        return list(spec.rehearsal.argv)
    values = face_values(face, image.width, image.height)
    if not values:
        raise UserError(f"the {spec.name} rehearsal passes the face box to the model, and the "
                        "face check did not run", "run it without --no-face-check")
    names = "|".join(FACE_PLACEHOLDERS)
    return [re.sub(r"\{(" + names + r")\}", lambda m: values[m.group(1)], arg)
            for arg in spec.rehearsal.argv]


def expected_stop(spec: Spec, log: Path) -> str | None:
    """What the rehearsal reached, if the inference log shows one of the spec's expected stops."""
    if spec.rehearsal is None:
        return None
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for stop in spec.rehearsal.stops:
        if stop.matches(text):
            return stop.reached
    return None


# --- the committed record --------------------------------------------------------------------

RECORD = "rehearsal.json"  # beside the spec: what has been proven without a GPU or real weights
RECORD_SCHEMA = 1


def reached(run: dict) -> str:
    """How far a rehearsal run got, in words."""
    if run["status"] == "ok":
        return "checked video"
    if run["status"] == "stopped":
        return run["rehearsal"]["reached"]
    failure = run.get("failure") or {}
    lines = [line.strip() for line in str(failure.get("reason", "?")).splitlines() if line.strip()]
    return f"failed at {failure.get('stage', '?')}: {lines[-1] if lines else '?'}"


def _scrub(value):
    """The record is committed: this machine's folders become <repo>, <envs>, <outputs>,
    <specs> and ~."""
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if not isinstance(value, str):
        return value
    for folder, name in ((paths.envs_root(), "<envs>"), (paths.outputs_root(), "<outputs>"),
                         (paths.REPO_ROOT, "<repo>"), (paths.specs_root(), "<specs>"),
                         (Path.home(), "~")):
        value = value.replace(str(folder), name)
    return value


def build_record(spec: Spec, stamp: dict, run: dict) -> dict:
    """The per-model record from the setup's stamp and the run's run.json (a pure function)."""
    steps = [{"stage": f"setup: {name}", "seconds": seconds}
             for name, seconds in (stamp.get("steps") or {}).items()]
    steps += [{"stage": f"run: {name}", "status": entry.get("status"),
               "seconds": entry.get("seconds")} for name, entry in run["stages"].items()]
    about = stamp.get("rehearsal") or {}
    substituted = [f"{len(about.get('standins') or [])} weights: random stand-ins made by "
                   f"{spec.rehearsal.script} with seed {about.get('seed')}"]
    if about.get("torch"):
        substituted.append(f"torch: {about['torch']}")
    if extra := (run.get("rehearsal") or {}).get("argv"):
        substituted.append("extra inference options: " + " ".join(extra))
    torch = stamp.get("torch") or {}
    return _scrub({
        "schema": RECORD_SCHEMA,
        "model": spec.name,
        "date": (run.get("finished") or run["created"])[:10],
        "reached": reached(run),
        "status": run["status"],
        "upstream": stamp.get("repo"),
        "python": stamp.get("python"),
        "torch": {k: torch.get(k) for k in ("version", "cuda") if k in torch},
        "lock_sha256": stamp.get("lock_sha256"),
        "spec_sha256": run["model_spec"]["sha256"],  # the spec that ran (its env may be older)
        "gpus": run.get("gpus"),
        "network": run.get("network"),
        "stages": steps,
        "check": run.get("check"),
        "substituted": substituted,
        "failure": run.get("failure"),
    })


def setup_failure(spec: Spec, message: str) -> dict:
    """The record of a rehearsal whose setup stopped (the stamp is written only on success)."""
    from datetime import UTC, datetime

    return _scrub({
        "schema": RECORD_SCHEMA, "model": spec.name,
        "date": datetime.now(UTC).date().isoformat(),
        "reached": f"failed at setup: {message}", "status": "failed",
        "upstream": {"url": spec.repo.url, "commit": spec.repo.commit} if spec.repo else None,
        "python": spec.python, "torch": {"version": spec_for(spec).torch.packages[0]}
        if spec_for(spec).torch else {},
        "lock_sha256": spec.lock_sha256, "spec_sha256": spec.sha256,
        "stages": [], "check": None, "substituted": [], "failure": {"stage": "setup",
                                                                    "reason": message},
    })


def write_record(spec: Spec, record: dict) -> Path:
    path = spec.folder / RECORD
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path


def read_record(spec: Spec) -> dict | None:
    try:
        return json.loads((spec.folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def markdown_table(models: list[Spec]) -> str:
    """The README's rehearsal table, from the committed records (a test keeps them in step)."""
    rows = ["| model | rehearsed up to | date | Python, torch | inference |",
            "|---|---|---|---|---|"]
    for spec in models:
        record = read_record(spec) if spec.rehearsal else None
        if record is None:
            continue
        inference = next((s for s in record["stages"] if s["stage"] == "run: inference"), {})
        seconds = inference.get("seconds")
        rows.append(f"| `{spec.name}` | {record['reached']} | {record['date']} | "
                    f"{record['python']}, {record['torch'].get('version')} | "
                    + (f"{seconds:.0f} s on the CPU" if seconds is not None else "—") + " |")
    return "\n".join(rows)
