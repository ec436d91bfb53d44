"""Builders of the records `invoke report` reads: run folders, score records, bench folders.

They write the formats the bench and the scorer write (schema 1), with real tiny MP4s made by
ffmpeg, so the report is tested on files like the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from thbench import media, proc

HOST = {"cpu": "AMD EPYC 7B13", "cores": 2, "memory_bytes": 8 * 2**30}
NORMALISED = {"container": "matroska", "video_codec": "h264 (libx264 crf 18, yuv420p)",
              "fps": 25, "audio": "pcm_s16le 16000 Hz mono", "ffmpeg": "6.1"}
# id -> (label, direction, unit, spec)
METRICS = {
    "face_found": ("frames with a face", "higher", "%", "face"),
    "lip_open_loudness_r": ("landmark lip-sync r", "higher", "r", "face"),
    "identity_distance": ("dlib identity distance", "lower", "", "identity"),
    "av_offset": ("A/V offset", "none", "frames", "syncnet"),
}


def make_video(path: Path, seconds: float = 1.0, size: int = 128) -> Path:
    """A real H.264 + AAC MP4: a test pattern with a tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc.run([media.ffmpeg(), "-nostdin", "-y", "-loglevel", "error",
              "-f", "lavfi", "-i", f"testsrc=size={size}x{size}:rate=25",
              "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds),
              "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path],
             timeout=120)
    return path


def _write(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def write_run(outputs: Path, model: str, run_id: str, *, video: Path | None,
              status: str = "ok", failure: dict | None = None, speech_s: float = 1.0,
              inference_s: float | None = 2.0, rss_bytes: int | None = 300 * 2**20,
              baseline: bool = False, rehearsal: bool = False, text: str = "Hello.") -> Path:
    run_dir = outputs / model / run_id
    run_dir.mkdir(parents=True)
    if video is not None:
        shutil.copyfile(video, run_dir / "video.mp4")
    stages = {"prepare": {"status": "ok", "seconds": 0.1}, "tts": {"status": "ok", "seconds": 0.5}}
    if inference_s is not None:
        stages["inference"] = {"status": "ok" if status == "ok" else status,
                               "seconds": inference_s}
    _write(run_dir / "run.json", {
        "schema": 1, "run_id": run_id, "model": model, "baseline": baseline,
        "rehearsal": {"standins": True, "argv": [], "reached": None} if rehearsal else None,
        "status": status, "failure": failure,
        "inputs": {"text": text, "image": {"source": "face.png", "file": "input.png"}},
        "stages": stages, "speech": {"file": "speech.wav", "seconds": speech_s},
        "video": {"file": "video.mp4"} if video is not None else None, "check": None,
        "host": HOST,
        "measurements": {
            "rtf": inference_s / speech_s if inference_s is not None else None,
            "inference": {"peak_rss_bytes": rss_bytes, "rss_scope": "process tree",
                          "samples": 10, "interval_s": 0.2, "gpu": "not measured: no GPU"}}})
    return run_dir


def score_record(values: dict[str, float | str | None], *, video: str, run: dict | None,
                 label: str, image: str = "face.png", seconds: float = 1.0) -> dict:
    """``values``: metric id -> a number, or a string = the reason it was not computed."""
    metrics = {}
    for metric_id, value in values.items():
        label_, direction, unit, spec = METRICS[metric_id]
        number = value if isinstance(value, int | float) else None
        metrics[metric_id] = {
            "value": number, "not_computed": None if number is not None else value,
            "label": label_, "direction": direction, "unit": unit, "spec": spec,
            "about": f"what {label_} measures", "implementation": f"thbench {spec} script",
            "version": {"mediapipe": "0.10.21"} if spec == "face" else {spec: "1.0"},
            "settings": {"fps": 25}, "extra": {}}
    return {"schema": 1, "kind": "score", "created": "2026-12-01T22:00:00+00:00",
            "video": {"source": video, "sha256": "0" * 64, "seconds": seconds},
            "image": {"source": image, "sha256": "1" * 64}, "run": run, "label": label,
            "normalised": NORMALISED | {"seconds": seconds}, "metrics": metrics,
            "specs": {"face": {"status": "ok", "seconds": 1.5, "cost_s_per_video_s": 1.5,
                               "why": None},
                      "syncnet": {"status": "ok", "seconds": 4.0, "cost_s_per_video_s": 4.0,
                                  "why": None}}}


def write_score(run_dir: Path, values: dict[str, float | str | None]) -> Path:
    record = json.loads((run_dir / "run.json").read_text())
    run = {"model": record["model"], "run_id": record["run_id"], "dir": str(run_dir)}
    return _write(run_dir / "score.json", score_record(
        values, video=str(run_dir / "video.mp4"), run=run, label=record["model"],
        seconds=record["speech"]["seconds"]))


def write_bench(outputs: Path, bench_id: str, models: list[str], cases: list[dict],
                repeat: int, cells: dict[tuple[str, str, int], dict]) -> Path:
    """``cells``: (model, case, repeat) -> {"status", "run_dir" (absolute), "error", ...};
    a cell left out has no record (the bench never reached it)."""
    folder = outputs / "bench" / bench_id
    _write(folder / "bench.json", {
        "schema": 1, "kind": "bench", "bench_id": bench_id, "created": "2026-12-01T21:00:00+00:00",
        "models": models, "repeat": repeat, "cases_file": "cases.toml", "cases": cases,
        "executor": {"name": "local"}, "metrics": ["face", "identity", "syncnet"],
        "thbench": "0.1.0"})
    for (model, case, rep), cell in cells.items():
        run_dir = cell.get("run_dir")
        rel = str(Path(run_dir).relative_to(outputs).as_posix()) if run_dir else None
        _write(folder / "cells" / f"{model}__{case}__{rep}.json", {
            "schema": 1, "cell": f"{model}/{case}/{rep}", "model": model, "case": case,
            "repeat": rep, "status": cell["status"], "attempt": 1,
            "run_dir": f"../../{rel}" if rel else None, "run_status": cell.get("run_status"),
            "scored": cell.get("scored", False), "error": cell.get("error"),
            "started": "2026-12-01T21:00:01+00:00", "finished": "2026-12-01T21:00:09+00:00",
            "log": f"logs/{model}__{case}__{rep}.log"})
    return folder


CASES = [{"id": "hello", "image": "/data/face.png", "text": "Hello, this is a test.",
          "audio": None, "tags": ["short"]},
         {"id": "quote", "image": "/data/face.png", "text": "Quotes \"<b>and</b>\" & tags.",
          "audio": None, "tags": []}]
# model -> per-repeat face_found values on case "hello" (case "quote" subtracts 10)
SAMPLE_FACE = {"still": [100.0, 100.0, 100.0], "wav2lip": [90.0, 94.0, 98.0],
               "sadtalker": [80.0, 82.0]}


def sample_bench(outputs: Path, video: Path) -> Path:
    """A bench of three models × two cases × three repeats with every kind of cell.

    still (baseline): all ok. wav2lip: all ok; lip-sync r not computed ("no face in 3 frames");
    identity not computed on "quote" ("face too small"). sadtalker (rehearsal): repeats 1-2 ok
    on "hello", repeat 3 failed at inference ("CUDA out of memory" + a long tail); on "quote"
    repeat 1 failed, 2 pending, 3 has no cell record (not run).
    """
    cells: dict[tuple[str, str, int], dict] = {}
    for model, faces in SAMPLE_FACE.items():
        for case_no, case in enumerate(c["id"] for c in CASES):
            for rep in range(1, 4):
                key = (model, case, rep)
                run_id = f"2026120{case_no + 1}-21000{rep}-{model[:4]}"
                if model == "sadtalker" and (case == "quote" or rep == 3):
                    if case == "quote" and rep == 2:
                        cells[key] = {"status": "pending"}
                        continue
                    if case == "quote" and rep == 3:
                        continue
                    reason = "CUDA out of memory. Tried to allocate 2.00 GiB " + "x" * 80
                    run_dir = write_run(outputs, model, run_id, video=None, status="failed",
                                        failure={"stage": "inference", "reason": reason},
                                        rehearsal=True)
                    cells[key] = {"status": "failed", "run_dir": run_dir, "run_status": "failed",
                                  "error": reason}
                    continue
                speech = 1.0 + case_no
                run_dir = write_run(outputs, model, run_id, video=video, speech_s=speech,
                                    inference_s={"still": 0.5, "wav2lip": 3.0,
                                                 "sadtalker": 9.0}[model] * speech + rep * 0.1,
                                    baseline=model == "still", rehearsal=model == "sadtalker")
                values = {"face_found": faces[rep - 1] - 10 * case_no,
                          "lip_open_loudness_r": 0.1 * rep if model != "wav2lip"
                          else "no face in 3 frames",
                          "identity_distance": 0.0 if model == "still" else
                          ("face too small" if case == "quote" else 0.3 + 0.01 * rep),
                          "av_offset": float(rep - 2)}
                write_score(run_dir, values)
                cells[key] = {"status": "ok", "run_dir": run_dir, "run_status": "ok",
                              "scored": True}
    return write_bench(outputs, "20261201-210000-test", list(SAMPLE_FACE), CASES, 3, cells)
