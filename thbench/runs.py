"""The chain: inputs → speech (TTS or the user's audio) → model inference → output check.

Every run gets a new folder ``<outputs>/<model>/<run-id>/`` that is never reused::

    input.png        a copy of the image given
    text.txt         the text given (when TTS was used)
    tts.wav          the TTS output: sentences joined, loudness-normalised (thbench/speech.py)
    speech.wav       the speech the video must carry, mono, at the rate the model reads
    video.mp4        the model's video
    logs/<stage>.log output of each step
    work/            the model's own files
    run.json         what happened: inputs, spec and env identity, timings, check, status

Input mistakes are found before the folder is made, so they leave nothing behind; a failure
after that is recorded in ``run.json`` as ``"status": "failed"`` with the stage and reason.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

import thbench
from thbench import check, envs, gpu, inference, media, paths, proc, rehearsal, resources, specs, speech_audio
from thbench import speech as speech_mod  # `speech` is the run's WAV below
from thbench.errors import UserError
from thbench.face import face_check
from thbench.files import sha256_file
from thbench.run_record import (  # noqa: F401  (new_run_id, read_record: importers read them here)
    first_record,
    make_run_dir,
    new_run_id,
    now,
    read_record,
    write_record,
)
from thbench.specs import Gpu, Kind, Spec

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
    speech_settings: speech_mod.Settings = speech_mod.Settings()  # voice, rate, cache, ...
    # The text already spoken by ``tts`` (a bench speaks each case once): copied, not re-made.
    speech: Path | None = None
    # Told the run folder as soon as it exists (a bench cell records it before the run ends).
    started: Callable[[Path], None] | None = field(default=None, compare=False)


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
        speech_mod.check_text(req.text)
    elif flags := req.speech_settings.given():
        raise UserError(f"{', '.join(flags)} shape speech made from text; --audio is used as given",
                        f"drop {', '.join(flags)}, or pass --text instead of --audio")
    model = specs.get(Kind.MODEL, req.model)
    tts = specs.get(Kind.TTS, req.tts) if req.text is not None else None
    outputs = (req.outputs or paths.outputs_root()).expanduser().resolve()
    check_writable(outputs)
    return model, tts, outputs


def check_writable(folder: Path) -> None:
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


def check_shell_safe(model: Spec, *folders: Path) -> None:
    if not model.repo:
        return
    for folder in folders:
        if not SHELL_SAFE_PATH.match(str(folder)):
            raise UserError(
                f"{model.name}'s upstream code passes paths through a shell, and {folder} holds "
                "characters it would misread (spaces or shell syntax)",
                "use --outputs / THB_OUTPUTS_DIR and THB_ENVS_DIR paths made of letters, digits "
                "and . _ - / only")


def require_gpu(model: Spec, rehearse: bool = False) -> list[gpu.Gpu]:
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


# --- recording the stages (the folder and run.json's first form: run_record.py) ------------


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
        entry = {"status": "running", "started": now()}
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
            self.record.update(status="failed", finished=now(),
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
    image = media.resolve_input(req.image, "image")
    audio = media.resolve_input(req.audio, "audio") if req.audio else None
    image_info = media.validate_image(image)
    audio_info = media.validate_audio(audio) if audio else None
    if audio and speech_audio.loudness(audio) is None:  # a lip-sync model would get nothing
        raise UserError(f"the audio {audio} is silent from start to end",
                        "give a recording with speech in it, or --text to have it spoken")
    gpus = require_gpu(model, req.rehearse)  # before the env: no point setting up what cannot run
    model_env = envs.require_ready(model, rehearse=req.rehearse)
    plan = None  # the voice (fetched once), its licence and the text's language, checked
    if tts and req.text is not None and not req.speech:
        plan = speech_mod.prepare(tts, req.text, req.speech_settings, console)
    tts_env = plan.env if plan else envs.require_ready(tts) if tts else None
    check_shell_safe(model, outputs, model_env.root)
    face = face_check(image) if req.face_check else None
    extra = rehearsal.run_argv(model_env.spec, face, image_info) if req.rehearse else []
    if req.offline and not shutil.which(inference.NO_NETWORK[0]):
        raise UserError("--offline needs `unshare` (util-linux) to cut the network off, and it is "
                        "not on PATH", "install util-linux, or run without --offline")

    run_id, run_dir = make_run_dir(outputs, model.name)
    input_image = run_dir / ("input" + IMAGE_SUFFIX.get(image_info.codec, ".png"))
    speech, work_dir = run_dir / "speech.wav", run_dir / "work"
    record = first_record(req, run_id, model, tts, extra=extra, image=image,
                          input_image=input_image, image_info=image_info, audio=audio,
                          audio_info=audio_info, face=face, model_env=model_env,
                          tts_env=tts_env, gpus=gpus)
    write_record(run_dir, record)  # first thing in the folder: whatever happens next is recorded
    with _recorded_on_error(run_dir, record):
        if req.started:
            req.started(run_dir)
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
            reused, made = None, None
            if tts and req.text is not None:
                (run_dir / "text.txt").write_text(req.text.strip() + "\n", encoding="utf-8")
                master = req.speech or run_dir / "tts.wav"
                if req.speech:
                    reused = {"source": str(req.speech), "sha256": sha256_file(req.speech)}
                    made = speech_mod.record_beside(req.speech)
                else:
                    assert plan is not None
                    made = speech_mod.speak(plan, req.text, master, run_dir / "tts-work",
                                            run_dir / "logs" / "tts.log")
                # The model gets the rate its upstream reads (its own resampler stays idle).
                media.to_wav(master, speech, sample_rate=model.command.sample_rate,
                             log=run_dir / "logs" / "audio.log")
            else:
                media.to_wav(audio, speech, sample_rate=model.command.sample_rate,
                             log=run_dir / "logs" / "audio.log")
            record["speech"] = {"file": speech.name, "seconds": round(media.wav_duration(speech), 3),
                                "sample_rate": media.wav_rate(speech), "reused": reused,
                                "made": made}

        def infer() -> Path | None:
            monitor = resources.Monitor()
            try:
                video = inference.infer(model, model_env, input_image, speech, run_dir, work_dir,
                                        extra, offline=req.offline, monitor=monitor)
            except proc.CommandFailed:
                reached = req.rehearse and rehearsal.expected_stop(model, run_dir / "logs" /
                                                                   "inference.log")
                if not reached:
                    raise
                record["rehearsal"]["reached"] = reached
                return None
            finally:  # failed, timed-out and stopped runs are measured too
                record["measurements"] = {"inference": monitor.stop()}
            record["video"] = {"file": video.name, "sha256": sha256_file(video),
                               "bytes": video.stat().st_size}
            return video

        stages.run("prepare", "copy the inputs", prepare)
        title = ("convert the audio to WAV" if not tts else f"speak the text with {tts.name}"
                 if not req.speech else f"reuse the speech made with {tts.name}")
        stages.run("tts" if tts else "audio", title, speak)
        try:
            video = stages.run("inference", f"generate the video with {model.name}", infer)
        finally:
            _real_time_factor(record)
            write_record(run_dir, record)
        if video is None:  # a rehearsal that reached the stop its spec expects: recorded, not a crash
            return _stopped(run_dir, record)
        report = stages.run("check", "check the video", lambda: check.check_video(video, speech))
        record["check"] = report.to_dict()
        record["status"] = "ok" if report.passed else "failed"
        if not report.passed:
            failed = [item.name for item in report.items if not item.ok]
            record["failure"] = {"stage": "check", "reason": "failed checks: " + ", ".join(failed)}
        record["finished"] = now()
        write_record(run_dir, record)
        return Result(run_dir, record, report)


@contextmanager
def _recorded_on_error(run_dir: Path, record: dict) -> Iterator[None]:
    """Whatever stops the run outside a stage (an interrupt between two) is recorded too."""
    try:
        yield
    except BaseException as err:
        if record["status"] == "running":
            interrupted = isinstance(err, KeyboardInterrupt)
            reason = ("interrupted" if interrupted else err.message if isinstance(err, UserError)
                      else f"{type(err).__name__}: {err}")
            record.update(status="failed", finished=now(),
                          failure={"stage": "between stages", "reason": reason})
            write_record(run_dir, record)
        raise


def _real_time_factor(record: dict) -> None:
    """Inference seconds per second of speech: how far from real time the model is (null for
    an inference that did not finish: its seconds say when it died, not how fast it was)."""
    stage = record["stages"].get("inference", {})
    inference_s = stage.get("seconds") if stage.get("status") == "ok" else None
    speech_s = (record.get("speech") or {}).get("seconds")
    if record.get("measurements") is not None:
        record["measurements"]["rtf"] = (round(inference_s / speech_s, 3)
                                         if inference_s is not None and speech_s else None)


def _stopped(run_dir: Path, record: dict) -> Result:
    record["stages"]["inference"]["status"] = "stopped"
    record.update(status="stopped", finished=now())
    write_record(run_dir, record)
    console.print(f"[yellow]rehearsed up to: {record['rehearsal']['reached']}[/] (the expected stop)")
    return Result(run_dir, record, check.CheckReport(()))
