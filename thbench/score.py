"""Scoring a video: normalise it one fixed way, run every metric env on it, record each number.

Lip-sync scores move with the codec alone, so every video — a bench run's, or one made
elsewhere (`invoke score`) — is first re-encoded the same way (``NORMALISATION``). Each metric
spec (``metrics/<name>/spec.toml``) then runs in its own env and writes its measurements; what
could not be computed is recorded as ``"not computed: why"`` with a null value, never a number.

A score folder holds ``score.json`` and ``score/`` (the normalised files, each command's raw
output and log). For a bench run the folder is the run folder itself.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import thbench
from thbench import envs, media, proc, specs, tools
from thbench.errors import UserError
from thbench.files import atomic_write_text, sha256_file
from thbench.specs import Kind, Spec

SCHEMA = 1
FPS = 25
SAMPLE_RATE = 16000
NORMALISATION = {
    "container": "matroska",
    "video_codec": "h264 (libx264, crf 18, preset veryfast, yuv420p)",
    "fps": FPS,
    "audio": f"pcm_s16le {SAMPLE_RATE} Hz mono, from time 0 (a late start padded with silence)",
    "why": "lip-sync scores move with the codec alone: every video is scored after the same "
           "re-encode",
}
console = Console(stderr=True, highlight=False, soft_wrap=True)


def metric_specs(names: list[str] | None = None) -> list[Spec]:
    """The metric specs to score with: ``names`` (each must exist), or all of them."""
    known = specs.load_all()[Kind.METRIC]
    chosen = list(known.values()) if names is None else [specs.get(Kind.METRIC, n) for n in names]
    owner: dict[str, str] = {}
    for spec in chosen:  # one id, one meaning: a record keys metrics by id alone
        for decl in spec.metrics:
            if decl.id in owner:
                raise UserError(f"metric id '{decl.id}' is declared by both metrics/{owner[decl.id]}"
                                f" and metrics/{spec.name}",
                                "rename one of them in its spec.toml [[metrics]]")
            owner[decl.id] = spec.name
    return chosen


def ready(spec: Spec) -> bool:
    return envs.Env.of(spec).is_ready()


def require_video(video: Path) -> dict:
    """ffprobe's view of ``video``, or ERROR + TIP: missing, not a video, a still image."""
    if video.is_dir():
        raise UserError(f"the video {video} is a folder", "pass a video file (MP4, MKV, MOV…)")
    if not video.is_file():
        raise UserError(f"the video {video} does not exist", "check the path: `ls -l VIDEO`")
    info = media.probe(video, expected="a video")
    streams = media.streams_of(info, "video")
    if not streams:
        raise UserError(f"{video} has no video stream", "pass a video file (MP4, MKV, MOV…)")
    form = info.get("format", {}).get("format_name", "")
    frames = streams[0].get("nb_frames")
    if form == "image2" or form.endswith("_pipe") or frames in ("0", "1"):
        raise UserError(f"{video} is a still image, not a video",
                        "score a video; a still image is what `still` makes a video of")
    return info


def normalise(video: Path, work: Path) -> tuple[Path, Path | None, dict]:
    """``work``/normalised.mkv (+ speech.wav if the video has sound) and what was done."""
    info = require_video(video)
    has_audio = bool(media.streams_of(info, "audio"))
    mkv, wav = work / "normalised.mkv", work / "speech.wav"
    log = work / "logs" / "normalise.log"
    argv = [media.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-n",
            "-i", media.path_arg(video), "-map", "0:v:0",
            "-vf", f"fps={FPS},scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
            "-c:v", "libx264", "-crf", "18", "-preset", "veryfast"]
    if has_audio:
        # Audio that starts after the picture (an offset is what lip-sync scores measure) is
        # padded with silence from time 0: the WAV below has no start time of its own.
        argv += ["-map", "0:a:0", "-af", "aresample=async=1:first_pts=0", "-c:a", "pcm_s16le",
                 "-ar", str(SAMPLE_RATE), "-ac", "1"]
    proc.run([*argv, media.path_arg(mkv)], log=log, timeout=1800)
    if has_audio:
        proc.run([media.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-n",
                  "-i", media.path_arg(mkv), "-map", "0:a:0", "-c:a", "pcm_s16le",
                  media.path_arg(wav)], log=log, timeout=600)
    seconds = media.probe(mkv).get("format", {}).get("duration")
    done = {**NORMALISATION, "audio": NORMALISATION["audio"] if has_audio else "none: the video "
            "has no audio track", "ffmpeg": media.ffmpeg_version(),
            "seconds": round(float(seconds), 3) if seconds else None}
    return mkv, wav if has_audio else None, done


def score(video: Path, image: Path, folder: Path, *, label: str, run: dict | None = None,
          names: list[str] | None = None) -> dict:
    """Score ``video`` made from ``image``; write ``folder``/score.json and return it."""
    chosen = metric_specs(names)
    work = folder / "score"
    if work.exists():  # a scoring that died part-way: its scratch is ours to redo
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    mkv, wav, done = normalise(video, work)
    record = {
        "schema": SCHEMA, "kind": "score", "created": _now(), "label": label, "run": run,
        "thbench": thbench.__version__,
        "video": {"source": str(video), "sha256": sha256_file(video), "seconds": done["seconds"]},
        "image": {"source": str(image), "sha256": sha256_file(image)},
        "normalised": done, "metrics": {}, "specs": {},
    }
    for spec in chosen:
        entry, metrics = _run_spec(spec, mkv, wav, image, work, done["seconds"])
        record["specs"][spec.name] = entry
        record["metrics"].update(metrics)
    atomic_write_text(folder / "score.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record


def _run_spec(spec: Spec, mkv: Path, wav: Path | None, image: Path, work: Path,
              seconds: float | None) -> tuple[dict, dict]:
    env = envs.Env.of(spec)
    if not env.is_ready():
        why = f"the {spec.name} metric env is not set up (`uv run nox -s {spec.setup_session}`)"
        return {"status": "not set up", "seconds": None, "cost_s_per_video_s": None,
                "why": why}, _not_computed(spec, why)
    out = work / f"{spec.name}.json"
    values = {"python": str(env.python), "spec_dir": str(spec.folder), "video": str(mkv),
              "audio": str(wav) if wav else "", "image": str(image), "out": str(out),
              "weights": str(env.weights_root)}
    log = work / "logs" / f"{spec.name}.log"
    try:
        with console.status(f"scoring with {spec.name}…"):
            done = proc.run(spec.command.expand(values), cwd=work, log=log,
                            env=tools.child_env(),  # a metric calling ffmpeg by name finds one
                            timeout=spec.command.timeout)
        produced = json.loads(out.read_text(encoding="utf-8"))
        if not isinstance(produced, dict) or not isinstance(produced.get("metrics"), dict):
            raise ValueError("no 'metrics' table in its output")
    except (UserError, OSError, ValueError) as err:
        why = f"the {spec.name} metric command failed: {getattr(err, 'message', err)}"
        return {"status": "failed", "seconds": None, "cost_s_per_video_s": None,
                "why": why, "log": str(log)}, _not_computed(spec, why)
    cost = round(done.seconds / seconds, 3) if seconds else None
    entry = {"status": "ok", "seconds": round(done.seconds, 2), "cost_s_per_video_s": cost,
             "why": None, "log": str(log), "env": {"python": (env.read_stamp() or {}).get("python")}}
    return entry, _merge(spec, produced)


def _declared(spec: Spec, decl) -> dict:
    return {"label": decl.label, "direction": decl.direction.value, "unit": decl.unit,
            "about": decl.about, "spec": spec.name}


def _not_computed(spec: Spec, why: str) -> dict:
    return {d.id: {"value": None, "not_computed": why, **_declared(spec, d),
                   "implementation": None, "version": None, "settings": None, "extra": None}
            for d in spec.metrics}


def _merge(spec: Spec, produced: dict) -> dict:
    """Each declared metric with what the command said of it; a gap is said, never filled."""
    merged = {}
    for decl in spec.metrics:
        got = produced["metrics"].get(decl.id)
        value, why = None, None
        if not isinstance(got, dict):
            why = f"{spec.name} wrote nothing for {decl.id}"
            got = {}
        else:
            value, why = got.get("value"), got.get("not_computed")
            if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
                value, why = None, f"{spec.name} wrote a value that is not a number: {value!r}"
            elif isinstance(value, float) and not math.isfinite(value):  # ints always are
                value, why = None, f"{spec.name} wrote a non-finite value ({value})"
            elif value is None and not why:
                why = f"{spec.name} gave no value and no reason"
            elif value is not None:
                why = None
        merged[decl.id] = {"value": value, "not_computed": why, **_declared(spec, decl),
                           "implementation": produced.get("implementation"),
                           "version": produced.get("version"),
                           "settings": got.get("settings"), "extra": got.get("extra")}
    return merged


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
