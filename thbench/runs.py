"""The chain: inputs → speech (TTS or the user's audio) → model inference → output check.

Every run gets a new folder ``<outputs>/<model>/<run-id>/`` that is never reused::

    input.png        a copy of the image given
    text.txt         the text given (when TTS was used)
    speech.wav       the speech the video must carry
    video.mp4        the model's video
    logs/<stage>.log output of each step
    work/            the model's own files
    run.json         what happened: inputs, spec and env identity, timings, check, status

Input mistakes are found before the folder is made, so they leave nothing behind; a failure
after that is recorded in ``run.json`` as ``"status": "failed"`` with the stage and reason.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import thbench
from thbench import check, envs, gpu, health, media, paths, proc, rehearsal, specs
from thbench.errors import UserError
from thbench.files import atomic_write_text, sha256_file, waiting_lock
from thbench.specs import Gpu, Kind, Spec

RUN_SCHEMA = 1
MAX_TEXT_CHARS = 5000
console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Request:
    model: str
    image: Path
    text: str | None = None
    audio: Path | None = None
    tts: str = "piper"
    outputs: Path | None = None
    face_check: bool = True
    rehearse: bool = False  # the env's stand-in weights (thbench/rehearsal.py)
    offline: bool = False  # inference in a network namespace of its own: no network at all


@dataclass(frozen=True)
class Result:
    run_dir: Path
    record: dict
    report: check.CheckReport

    @property
    def ok(self) -> bool:
        """ok, or a rehearsal that stopped where its spec expects (a GPU, real weights)."""
        return self.record["status"] in ("ok", "stopped")


# --- validation: everything the user can get wrong, before anything is written -------------


def _validate(req: Request) -> tuple[Spec, Spec | None, Path]:
    if (req.text is None) == (req.audio is None):
        both = req.text is not None
        raise UserError(
            "give either --text or --audio, " + ("not both" if both else "(neither was given)"),
            'e.g. `uv run invoke run still --image assets/face.png --text "Hello there"`',
        )
    if req.text is not None:
        if not req.text.strip():
            raise UserError("the text is empty", 'give words to speak, e.g. --text "Hello there"')
        if len(req.text) > MAX_TEXT_CHARS:
            raise UserError(f"the text has {len(req.text)} characters (limit {MAX_TEXT_CHARS})",
                            "split it into shorter runs, or record it and pass --audio FILE")
        if "\x00" in req.text:
            raise UserError("the text holds a NUL character", "pass plain text")
    model = specs.get(Kind.MODEL, req.model)
    tts = specs.get(Kind.TTS, req.tts) if req.text is not None else None
    outputs = (req.outputs or paths.outputs_root()).expanduser().resolve()
    _writable(outputs)
    return model, tts, outputs


def _writable(folder: Path) -> None:
    """The run folder can be made under ``folder``; checked without creating anything."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "not a folder" if not existing.is_dir() else "not writable"
        raise UserError(
            f"cannot write run folders under {folder}: {existing} is {why}",
            "pass --outputs DIR (or set THB_OUTPUTS_DIR) to a folder you can write to",
        )


# Upstream scripts pass some paths through a shell unquoted (Wav2Lip's and Audio2Head's ffmpeg
# calls, SadTalker's os.system): a run path holding a space or shell syntax would break them or
# run as a command. Our own code never uses a shell; this guards theirs.
SHELL_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+-]+$")


def _shell_safe(model: Spec, *folders: Path) -> None:
    if not model.repo:
        return
    for folder in folders:
        if not SHELL_SAFE_PATH.match(str(folder)):
            raise UserError(
                f"{model.name}'s upstream code passes paths through a shell, and {folder} holds "
                "characters it would misread (spaces or shell syntax)",
                "use --outputs / THB_OUTPUTS_DIR and THB_ENVS_DIR paths made of letters, digits "
                "and . _ - / only")


def _require_gpu(model: Spec, rehearse: bool = False) -> list[gpu.Gpu]:
    found = gpu.detect()
    if model.gpu is Gpu.REQUIRED and not found and rehearse:
        console.print(f"[yellow]No GPU found: the '{model.name}' rehearsal runs on the CPU as "
                      "far as its code allows.")
    elif model.gpu is Gpu.REQUIRED and not found:
        raise UserError(
            f"model '{model.name}' needs an NVIDIA GPU and nvidia-smi finds none",
            "run it on a machine with an NVIDIA GPU and driver; "
            "`uv run invoke run still …` runs on the CPU",
        )
    if model.gpu is Gpu.OPTIONAL and not found:
        speed = model.cpu_speed or "not measured; expect many times longer than on a GPU"
        console.print(f"[yellow]No GPU found: '{model.name}' will run on the CPU ({speed}).")
    return found


def _face_check(image: Path) -> dict:
    spec = specs.get(Kind.CHECK, "face")
    env = envs.require_ready(spec)
    argv = spec.command.expand({"python": str(env.python), "spec_dir": str(spec.folder),
                                "image": str(image)})
    out = proc.run(argv, capture=True, check=False, timeout=spec.command.timeout)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = None
    if not isinstance(result, dict):  # the checker itself broke: not the photo's fault
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the face check failed (exit status {out.returncode}): {last}",
                        f"rebuild it with `uv run nox -s {spec.setup_session} -- --force`, or "
                        "add --no-face-check to run without it")
    if result.get("error"):
        raise UserError(f"the face check could not read {image}: {result['error']}",
                        "pass a PNG or JPEG photo")
    if not result.get("faces"):
        raise UserError(
            f"no face found in {image}",
            "use a photo with one clearly visible face, or add --no-face-check to run anyway",
        )
    return result


# --- the run folder and its record ---------------------------------------------------------


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_record(run_dir: Path, record: dict) -> None:
    atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def _make_run_dir(outputs: Path, model: str) -> tuple[str, Path]:
    for _ in range(20):
        run_id = new_run_id()
        run_dir = outputs / model / run_id
        try:
            run_dir.mkdir(parents=True)  # never exist_ok: an earlier run is never touched
            return run_id, run_dir
        except FileExistsError:
            continue
        except OSError as err:
            raise UserError(f"cannot make a run folder under {outputs}: {err.strerror or err}",
                            "pass --outputs DIR (or set THB_OUTPUTS_DIR) to a folder you can "
                            "write to") from None
    raise UserError(f"no free run id under {outputs / model} after 20 tries",
                    "run the same command again")


def _tool_versions() -> dict:
    uv = proc.run([envs.uv_binary(), "--version"], capture=True, check=False).stdout.strip()
    return {
        "thbench": thbench.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ffmpeg": media.ffmpeg_version(),
        "uv": uv,
    }


class _Stages:
    """Times each stage into the record and writes run.json after every change."""

    def __init__(self, run_dir: Path, record: dict) -> None:
        self.run_dir, self.record = run_dir, record

    def run(self, name: str, title: str, func):
        start = time.monotonic()
        entry = {"status": "running", "started": _now()}
        self.record["stages"][name] = entry
        write_record(self.run_dir, self.record)
        try:
            with console.status(f"{title}…"):
                value = func()
        except BaseException as err:
            entry.update(status="failed", seconds=round(time.monotonic() - start, 2))
            interrupted = isinstance(err, KeyboardInterrupt)
            reason = ("interrupted" if interrupted else err.message if isinstance(err, UserError)
                      else f"{type(err).__name__}: {err}")
            self.record.update(status="failed", finished=_now(),
                               failure={"stage": name, "reason": reason})
            write_record(self.run_dir, self.record)
            if interrupted or not isinstance(err, Exception):
                raise
            # A run that failed is not a user mistake: exit 1 (2 is for mistakes), and say
            # where the record is; the original tip (e.g. which log) comes first.
            tip = err.tip + "; " if isinstance(err, UserError) else ""
            failed = UserError(f"the {name} stage failed: {reason}",
                               f"{tip}the run is recorded in {self.run_dir / 'run.json'}",
                               exit_code=1)
            failed.run_dir = self.run_dir  # for callers that read the record (a rehearsal)
            raise failed from err
        entry.update(status="ok", seconds=round(time.monotonic() - start, 2))
        write_record(self.run_dir, self.record)
        console.print(f"  [green]✓[/] {title} [dim]({entry['seconds']:.1f}s)[/]")
        return value


IMAGE_SUFFIX = {"png": ".png", "mjpeg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}


def run(req: Request) -> Result:
    """Validate, make the run folder, then speech → inference → check, recording each stage."""
    model, tts, outputs = _validate(req)
    image = req.image.expanduser().resolve()
    audio = req.audio.expanduser().resolve() if req.audio else None
    image_info = media.validate_image(image)
    audio_info = media.validate_audio(audio) if audio else None
    gpus = _require_gpu(model, req.rehearse)  # before the env: no point setting up what cannot run
    model_env = envs.require_ready(model, rehearse=req.rehearse)
    tts_env = envs.require_ready(tts) if tts else None
    _shell_safe(model, outputs, model_env.root)
    face = _face_check(image) if req.face_check else None
    extra = rehearsal.run_argv(model_env.spec, face, image_info) if req.rehearse else []
    if req.offline and not shutil.which(NO_NETWORK[0]):
        raise UserError("--offline needs `unshare` (util-linux) to cut the network off, and it is "
                        "not on PATH", "install util-linux, or run without --offline")

    run_id, run_dir = _make_run_dir(outputs, model.name)
    input_image = run_dir / ("input" + IMAGE_SUFFIX.get(image_info.codec, ".png"))
    speech, work_dir = run_dir / "speech.wav", run_dir / "work"
    record: dict = {
        "schema": RUN_SCHEMA,
        "run_id": run_id,
        "model": model.name,
        "baseline": model.baseline,
        "rehearsal": {"standins": True, "argv": extra, "reached": None} if req.rehearse else None,
        "status": "running",
        "failure": None,
        "created": _now(),
        "finished": None,
        "inputs": {
            "image": {"source": str(image), "file": input_image.name,
                      "width": image_info.width, "height": image_info.height},
            "text": req.text,
            "audio": ({"source": str(audio), "seconds": round(audio_info.duration, 3)}
                      if audio and audio_info else None),
            "tts": tts.name if tts else None,
            "face": face,
        },
        "model_spec": {"path": str(model.path.relative_to(model.path.parents[2])),
                       "sha256": model.sha256, "gpu": model.gpu.value},
        "env": model_env.read_stamp(),
        "tts_env": tts_env.read_stamp() if tts_env else None,
        "gpus": [g.__dict__ for g in gpus],
        "network": "none: inference ran under `unshare --net`" if req.offline else None,
        "tools": None,
        "stages": {},
        "speech": None,
        "video": None,
        "check": None,
    }
    write_record(run_dir, record)  # first thing in the folder: whatever happens next is recorded
    console.print(f"[bold]Run {model.name}/{run_id}[/] [dim]→ {run_dir}[/]")
    stages = _Stages(run_dir, record)

    def prepare() -> None:
        (run_dir / "logs").mkdir()
        work_dir.mkdir()
        shutil.copyfile(image, input_image)
        record["inputs"]["image"]["sha256"] = sha256_file(input_image)
        if audio:
            record["inputs"]["audio"]["sha256"] = sha256_file(audio)
        record["tools"] = _tool_versions()

    def speak() -> None:
        if tts and tts_env:
            text_file = run_dir / "text.txt"
            text_file.write_text(req.text.strip() + "\n", encoding="utf-8")
            _synthesize(tts, tts_env, text_file, speech, run_dir)
        else:
            media.to_wav(audio, speech, log=run_dir / "logs" / "audio.log")
        record["speech"] = {"file": speech.name, "seconds": round(media.wav_duration(speech), 3)}

    def infer() -> Path | None:
        try:
            video = _infer(model, model_env, input_image, speech, run_dir, work_dir, extra,
                           offline=req.offline)
        except proc.CommandFailed:
            reached = req.rehearse and rehearsal.expected_stop(model, run_dir / "logs" /
                                                               "inference.log")
            if not reached:
                raise
            record["rehearsal"]["reached"] = reached
            return None
        record["video"] = {"file": video.name, "sha256": sha256_file(video),
                           "bytes": video.stat().st_size}
        return video

    stages.run("prepare", "copy the inputs", prepare)
    stages.run("tts" if tts else "audio",
               f"speak the text with {tts.name}" if tts else "convert the audio to WAV", speak)
    video = stages.run("inference", f"generate the video with {model.name}", infer)
    if video is None:  # a rehearsal that reached the stop its spec expects: recorded, not a crash
        return _stopped(run_dir, record)
    report = stages.run("check", "check the video", lambda: check.check_video(video, speech))
    record["check"] = report.to_dict()
    record["status"] = "ok" if report.passed else "failed"
    if not report.passed:
        failed = [item.name for item in report.items if not item.ok]
        record["failure"] = {"stage": "check", "reason": "failed checks: " + ", ".join(failed)}
    record["finished"] = _now()
    write_record(run_dir, record)
    return Result(run_dir, record, report)


def _stopped(run_dir: Path, record: dict) -> Result:
    record["stages"]["inference"]["status"] = "stopped"
    record.update(status="stopped", finished=_now())
    write_record(run_dir, record)
    console.print(f"[yellow]rehearsed up to: {record['rehearsal']['reached']}[/] (the expected stop)")
    return Result(run_dir, record, check.CheckReport(()))


def _synthesize(tts: Spec, env: envs.Env, text_file: Path, speech: Path, run_dir: Path) -> None:
    argv = tts.command.expand({"python": str(env.python), "spec_dir": str(tts.folder),
                               "text_file": str(text_file), "audio": str(speech)})
    proc.run(argv, cwd=run_dir, log=run_dir / "logs" / "tts.log", timeout=tts.command.timeout)
    if not speech.is_file():
        raise UserError(f"{tts.name} wrote no {speech.name}", f"see {run_dir / 'logs/tts.log'}")


# `--offline` goes further than health.OFFLINE_ENV (set for every inference): no network at all.
NO_NETWORK = (["unshare", "--net"] if os.geteuid() == 0 else
              ["unshare", "--user", "--map-root-user", "--net"])


def _infer(model: Spec, env: envs.Env, image: Path, speech: Path, run_dir: Path,
           work_dir: Path, extra: list[str] = (), *, offline: bool = False) -> Path:
    values = {"python": str(env.python), "spec_dir": str(model.folder), "image": str(image),
              "audio": str(speech), "work_dir": str(work_dir), "run_dir": str(run_dir),
              "repo": str(env.repo)}
    argv = model.command.expand(values) + [specs.expand(a, values) for a in extra]
    if offline:
        argv = [*NO_NETWORK, *argv]
    cwd = Path(specs.expand(model.command.cwd, values)) if model.command.cwd else work_dir
    log = run_dir / "logs" / "inference.log"
    # Upstream scripts write fixed temp files in their checkout (Wav2Lip's temp/, Audio2Head's
    # results/temp.wav): one inference per env at a time, others wait.
    with waiting_lock(Path(str(env.root) + ".run.lock"),
                      f"another {model.name} run is using {env.root}", console):
        proc.run(argv, cwd=cwd, log=log, env=health.OFFLINE_ENV, timeout=model.command.timeout)
    assert model.command.output is not None
    found = sorted(work_dir.glob(model.command.output), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            f"{model.name} finished but wrote nothing matching '{model.command.output}' "
            f"in {work_dir}", f"see {log}",
        )
    video = run_dir / "video.mp4"
    os.replace(found[-1], video)
    return video
