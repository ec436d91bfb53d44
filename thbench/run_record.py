"""A run's folder and its record, ``run.json``: a fresh folder per run, and the record's first
form, written before anything else happens there (runs.py then fills it in stage by stage).

The record is versioned (``schema``) and written atomically after every change, so a run that
fails or is interrupted is still recorded, never a missing or half-written file.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from thbench import gpu, resources
from thbench.errors import UserError
from thbench.files import atomic_write_text

if TYPE_CHECKING:
    from thbench.envs import Env
    from thbench.media import AudioInfo, ImageInfo
    from thbench.runs import Request
    from thbench.specs import Spec

RUN_SCHEMA = 1


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def write_record(run_dir: Path, record: dict) -> None:
    atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def make_run_dir(outputs: Path, model: str) -> tuple[str, Path]:
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


def first_record(req: Request, run_id: str, model: Spec, tts: Spec | None, *, extra: list[str],
                 image: Path, input_image: Path, image_info: ImageInfo, audio: Path | None,
                 audio_info: AudioInfo | None, face: dict | None, model_env: Env,
                 tts_env: Env | None, gpus: list[gpu.Gpu]) -> dict:
    """The record as a run starts: inputs, spec and env identity, host; empty slots for the stages."""
    return {
        "schema": RUN_SCHEMA,
        "run_id": run_id,
        "model": model.name,
        "baseline": model.baseline,
        "rehearsal": {"standins": True, "argv": extra, "reached": None} if req.rehearse else None,
        "status": "running",
        "failure": None,
        "created": now(),
        "finished": None,
        "inputs": {
            "image": {"source": str(image), "file": input_image.name,
                      "width": image_info.width, "height": image_info.height},
            "text": req.text,
            "audio": ({"source": str(audio), "seconds": round(audio_info.duration, 3)}
                      if audio and audio_info else None),
            "tts": tts.name if tts else None,
            "speech_settings": req.speech_settings.to_dict() if tts else None,
            "face": face,
        },
        "model_spec": {"path": str(model.path.relative_to(model.path.parents[2])),
                       "sha256": model.sha256, "gpu": model.gpu.value},
        "env": model_env.read_stamp(),
        "tts_env": tts_env.read_stamp() if tts_env else None,
        "gpus": [g.__dict__ for g in gpus],
        **gpu.driver_record(gpus),  # gpu_driver, driver_cuda: next to the env stamp's torch build
        "host": resources.host_info(),
        "measurements": None,
        "network": "none: inference ran under `unshare --net`" if req.offline else None,
        "tools": None,
        "stages": {},
        "speech": None,
        "video": None,
        "check": None,
    }
