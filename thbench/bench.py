"""A bench: every model on every case (× repeats), each cell an ordinary run, then scored.

``<outputs>/bench/<bench-id>/``::

    bench.json                     the matrix: models, cases, repeats, metrics, executor
    speech/<case>.wav, .json       each text case spoken once, reused by every model's run
    cells/<model>__<case>__<n>.json  one record per cell (status, run folder, attempts)
    runs/<model>/<case>/<n>        a link to the cell's run folder (outputs/<model>/<run-id>)
    logs/<model>__<case>__<n>.log  what the cell's run printed

Everything the user can get wrong (model names, envs not set up, cases, images without a
face) is found before the folder is made. A cell that fails does not stop the matrix; a bench
stopped in any way resumes with ``--resume <bench-id>``: complete cells are kept, the rest are
run again in new run folders (an earlier attempt's folder is never touched).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

import thbench
from thbench import cases as case_files
from thbench import envs, media, paths, run_record, runs, score, specs
from thbench import speech as speech_mod
from thbench.errors import UserError
from thbench.face import face_check
from thbench.files import atomic_write_text, sha256_file
from thbench.specs import Kind

SCHEMA = 1
COMPLETE = ("ok", "failed")  # a failed run is a result; pending/running/interrupted are not
console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Request:
    models: str  # "still,mouth": as typed, checked here
    cases: Path | None = None
    repeat: int = 1
    outputs: Path | None = None
    tts: str = "piper"
    metrics: str | None = None  # "face,identity"; None: every metric env that is set up
    face_check: bool = True
    executor: dict = field(default_factory=lambda: {"name": "local"})
    speech: speech_mod.Settings = speech_mod.Settings()  # voice, rate, silence, cache


@dataclass(frozen=True)
class Cell:
    model: str
    case: str
    repeat: int

    @property
    def id(self) -> str:
        return f"{self.model}/{self.case}/{self.repeat}"

    @property
    def stem(self) -> str:
        return f"{self.model}__{self.case}__{self.repeat}"


@dataclass(frozen=True)
class Bench:
    folder: Path
    record: dict

    @property
    def id(self) -> str:
        return self.record["bench_id"]

    @property
    def outputs(self) -> Path:
        return Path(self.record["outputs"])

    def cells(self) -> list[Cell]:
        return [Cell(m, c["id"], r) for r in range(1, self.record["repeat"] + 1)
                for c in self.record["cases"] for m in self.record["models"]]

    def case(self, case_id: str) -> case_files.Case:
        return next(case_files.Case.from_dict(c) for c in self.record["cases"] if c["id"] == case_id)

    def cell_path(self, cell: Cell) -> Path:
        return self.folder / "cells" / f"{cell.stem}.json"

    def read_cell(self, cell: Cell) -> dict:
        path = self.cell_path(cell)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # never written: a bench killed while it was being planned
            return new_cell_record(cell)
        except (OSError, ValueError) as err:  # never taken for "not run": it may hold a result
            raise UserError(f"cannot read the cell record {path}: {err}",
                            "check the file (and the filesystem); records are written whole, "
                            "so this is not a half-written one") from None

    @property
    def ref(self) -> str:
        """How to name this bench on a command line: its id if it is where ids are looked up."""
        default = paths.outputs_root() / "bench" / self.id
        return self.id if default.resolve() == self.folder.resolve() else str(self.folder)

    def write_cell(self, record: dict) -> None:
        cell = Cell(record["model"], record["case"], record["repeat"])
        atomic_write_text(self.cell_path(cell), json.dumps(record, indent=2) + "\n")

    def speech_for(self, case_id: str) -> Path | None:
        wav = self.folder / "speech" / f"{case_id}.wav"
        return wav if wav.is_file() else None


def new_cell_record(cell: Cell) -> dict:
    return {"schema": SCHEMA, "cell": cell.id, "model": cell.model, "case": cell.case,
            "repeat": cell.repeat, "status": "pending", "attempt": 0, "attempts": [],
            "run_dir": None, "run_status": None, "scored": False, "error": None,
            "started": None, "finished": None, "log": f"logs/{cell.stem}.log"}


# --- planning: every mistake before anything is written --------------------------------------


def parse_names(text: str | None, what: str, example: str) -> list[str]:
    """``"a,b"`` → ``["a", "b"]``; empty, blank or repeated names are a mistake."""
    names = [n.strip() for n in (text or "").split(",")]
    if not text or not all(names):
        raise UserError(f"the {what} list {text!r} has an empty name", f"e.g. --{what} {example}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"the {what} list names {', '.join(repeated)} more than once",
                        f"name each once, e.g. --{what} {example}")
    return names


def _metrics(text: str | None) -> list[str]:
    """The metric envs to score with: all (those not set up are said now, and recorded as
    "not computed" for every video), or the ones named, each of which must be set up."""
    if text is None:
        found = score.metric_specs()
        missing = [s for s in found if not score.ready(s)]
        if missing:
            console.print("[yellow]Not set up, so their metrics will read 'not computed': "
                          + ", ".join(f"{s.name} (`uv run nox -s {s.setup_session}`)"
                                      for s in missing))
        return [s.name for s in found]
    chosen = score.metric_specs(parse_names(text, "metrics", "face,identity"))
    for spec in chosen:
        envs.require_ready(spec)
    return [s.name for s in chosen]


def plan(req: Request) -> Bench:
    """Validate the whole matrix, then make the bench folder with every cell pending."""
    if req.repeat < 1:
        raise UserError(f"--repeat {req.repeat}: a bench runs each cell at least once",
                        "pass --repeat 1 or more")
    names = parse_names(req.models, "models", "still,mouth")
    models = [specs.get(Kind.MODEL, name) for name in names]
    outputs = (req.outputs or paths.outputs_root()).expanduser().resolve()
    for model in models:
        runs.require_gpu(model)
        runs.check_shell_safe(model, outputs, envs.require_ready(model).root)
    cases = case_files.load(req.cases or case_files.DEFAULT_FILE)
    req.speech.check()
    for case in cases:  # the voice, its licence and each text's language, before any folder
        if case.text:
            try:
                speech_mod.prepare(*case_speech(case, req.tts, req.speech), console=console)
            except UserError as err:
                raise UserError(f"case {case.id}: {err.message}", err.tip) from None
    if req.face_check:
        for image in sorted({c.image for c in cases}):
            try:
                face_check(image)
            except UserError as err:
                used = ", ".join(c.id for c in cases if c.image == image)
                raise UserError(f"case {used}: {err.message}", err.tip) from None
    metric_names = _metrics(req.metrics)
    runs.check_writable(outputs)
    # A fresh id whose folder this call made (never an earlier bench's, even in the same second).
    bench_id, folder = run_record.make_run_dir(outputs, "bench")
    try:
        for sub in ("cells", "speech", "logs", "runs"):
            (folder / sub).mkdir()
    except OSError as err:
        raise UserError(f"cannot make the bench folder {folder}: {err.strerror or err}",
                        "pass --outputs DIR to a folder you can write to") from None
    record = {
        "schema": SCHEMA, "kind": "bench", "bench_id": bench_id, "created": runs.now(),
        "thbench": thbench.__version__, "outputs": str(outputs), "models": names,
        "repeat": req.repeat, "cases_file": str(req.cases or case_files.DEFAULT_FILE),
        "cases": [c.to_dict() for c in cases], "tts": req.tts,
        "speech_settings": req.speech.to_dict(), "metrics": metric_names,
        "face_check": req.face_check, "executor": req.executor,
    }
    atomic_write_text(folder / "bench.json", json.dumps(record, indent=2) + "\n")
    bench = Bench(folder, record)
    for cell in bench.cells():
        bench.write_cell(new_cell_record(cell))
    return bench


def load(bench_id: str, outputs: Path | None = None) -> Bench:
    """An earlier bench by id (or by its folder's path), for --resume and the report."""
    root = (outputs or paths.outputs_root()).expanduser().resolve()
    folder = Path(bench_id).expanduser()
    if not (folder / "bench.json").is_file():
        folder = root / "bench" / bench_id
    try:
        record = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        known = sorted(p.parent.name for p in (root / "bench").glob("*/bench.json"))
        raise UserError(f"no bench '{bench_id}' under {root / 'bench'} ({err.__class__.__name__})",
                        "known benches: " + (", ".join(known[-5:]) or "none yet") + "; start one "
                        "with `uv run invoke bench --models still,mouth`") from None
    if record.get("schema") != SCHEMA or record.get("kind") != "bench":
        raise UserError(f"{folder / 'bench.json'} is not a bench record this version reads",
                        "start a new bench with `uv run invoke bench --models …`")
    return Bench(folder, record)


def check_resumable(bench: Bench, executor: dict) -> None:
    """What the remaining cells need is still there; the executor of this pass is recorded."""
    for name in bench.record["models"]:
        model = specs.get(Kind.MODEL, name)
        runs.require_gpu(model)
        envs.require_ready(model)
    for name in bench.record["metrics"]:
        specs.get(Kind.METRIC, name)  # still known; one not set up scores "not computed"
    bench.record.setdefault("resumed", []).append({"at": runs.now(), "executor": executor})
    atomic_write_text(bench.folder / "bench.json", json.dumps(bench.record, indent=2) + "\n")


# --- speech: once per text case --------------------------------------------------------------


def speech_settings(record: dict) -> speech_mod.Settings:
    """The bench's speech settings (a bench made before they were recorded: the defaults)."""
    return speech_mod.Settings(**record.get("speech_settings", {}))


def case_speech(case: case_files.Case, tts: str,
                settings: speech_mod.Settings) -> tuple[specs.Spec, str, speech_mod.Settings]:
    """A text case's backend, text and settings: its own tts and voice over the bench's."""
    if case.tts and case.tts != tts:  # the bench's voice, speaker, language are another's
        settings = replace(settings, voice=None, speaker=None, language=None)
    return (specs.get(Kind.TTS, case.tts or tts), case.text or "",
            replace(settings, voice=case.voice or settings.voice))


def speak_cases(bench: Bench) -> None:
    """Synthesise each text case into speech/<case>.wav, unless an earlier pass already did."""
    settings = speech_settings(bench.record)
    for case in map(case_files.Case.from_dict, bench.record["cases"]):
        if not case.text:
            continue
        wav = bench.folder / "speech" / f"{case.id}.wav"
        meta = wav.with_suffix(".json")
        if wav.is_file() and _speech_intact(wav, meta):
            continue
        plan = speech_mod.prepare(*case_speech(case, bench.record["tts"], settings), console)
        tts_spec = plan.tts
        (bench.folder / "speech" / f"{case.id}.txt").write_text(case.text + "\n", encoding="utf-8")
        partial = wav.with_name(f".{wav.name}.partial.wav")
        work = wav.with_name(f".{case.id}.work")
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        with console.status(f"speaking case {case.id} with {tts_spec.name}…"):
            made = speech_mod.speak(plan, case.text, partial, work,
                                    bench.folder / "logs" / f"speech-{case.id}.log")
        # The record first, then the WAV: a WAV in place always has the record that names it,
        # so a resume never speaks a case again under cells that already used its speech.
        atomic_write_text(meta, json.dumps({
            "case": case.id, "tts": tts_spec.name, "sha256": sha256_file(partial),
            "seconds": round(media.wav_duration(partial), 3), "made": made,
            "tts_env": made["tts_env"],
        }, indent=2, ensure_ascii=False) + "\n")
        partial.replace(wav)
        how = "from the speech cache" if made["cache"]["hit"] else "made once"
        console.print(f"  [green]✓[/] case {case.id}: speech {how} for every model")


def _speech_intact(wav: Path, meta: Path) -> bool:
    try:
        return json.loads(meta.read_text())["sha256"] == sha256_file(wav)
    except (OSError, ValueError, KeyError):
        return False


def pending(bench: Bench, retry_failed: bool = False) -> list[Cell]:
    """Cells still to run: not complete (or failed, when retrying those)."""
    again = ("ok",) if retry_failed else COMPLETE
    return [c for c in bench.cells() if bench.read_cell(c)["status"] not in again]
