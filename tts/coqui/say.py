"""Speak pieces of text with Coqui TTS (coqui-tts), one mono 16-bit WAV per piece.

``--request FILE`` follows the backend contract (thbench/speech.py): the voice is a catalogue
model name (``tts_models/en/ljspeech/vits``, see ``--voices-json``) or a local model folder
(config.json + a .pth checkpoint; ``voice_files: {"model_dir": ...}`` or a path as the voice).
Catalogue models download on first use into the request's ``cache_dir``: GitHub release zips to
``<cache_dir>/tts/<type>--<lang>--<dataset>--<model>/`` (Coqui's own layout under TTS_HOME),
rewritten through ``THB_GITHUB_MIRROR``; Hub models to ``<cache_dir>/hub`` (HF_ENDPOINT is
honoured by huggingface_hub itself).

Models under a non-commercial licence (XTTS's CPML, CC BY-NC*) or marked ``tos_required`` are
refused unless ``COQUI_TOS_AGREED=1`` (what Coqui itself reads; the orchestrator sets it only
on ``--accept-model-license``). Coqui's own [y/n] prompt on standard input is never reached.
Exit 2 with one ``say.py:`` line on stderr for what the user can fix (voice, speaker, rate,
language, licence, a missing espeak-ng); 1 when a download fails. Coqui logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import sys
import wave
from pathlib import Path

CONSENT_VAR = "COQUI_TOS_AGREED"
MIRROR_VAR = "THB_GITHUB_MIRROR"
GITHUB = "https://github.com/"
HOME_VAR = "THB_COQUI_HOME"  # --voices-json: the cache_dir whose models count as installed
NON_COMMERCIAL = re.compile(r"cpml|\bnc\b|non-?commercial", re.IGNORECASE)
DONE_MARK = ".thbench-complete"  # written after a zip model is fully unpacked
FAIRSEQ = re.compile(r"^tts_models/[^/]+/fairseq/vits$")  # MMS: any of ~1100 ISO codes
# Coqui's own default (its `tts` CLI's), also spec.toml's default_voice: character input, so no
# espeak-ng program (as the catalogue tells it: its phoneme twin is tacotron2-DDC_ph).
DEFAULT_MODEL = "tts_models/en/ljspeech/tacotron2-DDC"
# "language" is beyond schema 1's keys: multilingual models (XTTS, YourTTS) need one.
REQUEST_KEYS = {"schema", "pieces", "out_dir", "voice", "voice_files", "speaker", "rate", "device",
                "cache_dir", "language"}


class Refusal(Exception):
    """Something the user can fix: one ``say.py:`` line, exit 2."""


def rewrite_url(url: str) -> str:
    """thbench.weights.rewrite_url's rule, restated here (this runs in the Coqui env, which has
    no thbench): the ``https://github.com/`` prefix becomes ``$THB_GITHUB_MIRROR``."""
    mirror = os.environ.get(MIRROR_VAR, "").strip()
    if not mirror or not url.startswith(GITHUB):
        return url
    return mirror + ("" if mirror.endswith("/") else "/") + url[len(GITHUB):]


# --- the catalogue, read without importing TTS (which imports torch) -------------------------


def catalogue() -> dict:
    spec = importlib.util.find_spec("TTS")  # locates the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("coqui-tts is not installed in this interpreter")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((folder / ".models.json").read_text(encoding="utf-8"))


def model_item(name: str, models: dict) -> dict | None:
    if FAIRSEQ.match(name):  # as TTS.utils.manage.ModelManager._set_model_item describes them
        return {"license": "CC BY-NC 4.0", "description": "Fairseq MMS VITS (Meta)"}
    parts = name.split("/")
    if len(parts) != 4:
        return None
    kind, lang, dataset, model = parts
    return models.get(kind, {}).get(lang, {}).get(dataset, {}).get(model)


def needs_consent(item: dict) -> bool:
    return bool(item.get("tos_required")) or bool(NON_COMMERCIAL.search(item.get("license") or ""))


def folder_name(name: str) -> str:
    return name.replace("/", "--")  # ModelManager's <type>--<lang>--<dataset>--<model>


def installed(name: str, item: dict, home: Path | None) -> bool:
    if home is None:
        return False
    if "repo_id" in item:  # a Hub snapshot in <home>/hub (huggingface_hub's cache layout)
        snapshots = home / "hub" / f"models--{item['repo_id'].replace('/', '--')}" / "snapshots"
        return snapshots.is_dir() and any(snapshots.iterdir())
    return (home / "tts" / folder_name(name) / DONE_MARK).is_file()


def voices_json() -> list[dict]:
    home = Path(os.environ[HOME_VAR]) if os.environ.get(HOME_VAR) else None
    rows = []
    for lang, datasets in catalogue().get("tts_models", {}).items():
        for dataset, models in datasets.items():
            for model, item in models.items():
                name = f"tts_models/{lang}/{dataset}/{model}"
                notes = [item.get("description", "").strip().rstrip(".")]
                if item.get("default_vocoder"):
                    notes.append(f"with vocoder {item['default_vocoder']}")
                if needs_consent(item):
                    notes.append("needs --accept-model-license")
                # .models.json names no language list for multilingual models (XTTS speaks 17).
                rows.append({"name": name, "language": lang, "quality": None, "speakers": None,
                             "installed": installed(name, item, home), "size_bytes": None,
                             "license": (item.get("license") or "").strip() or None,
                             "tos_required": bool(item.get("tos_required")),
                             "note": "; ".join(n for n in notes if n) or None})
    return rows


# --- the request ------------------------------------------------------------------------------


def read_request(path: Path) -> dict:
    request = json.loads(path.read_text(encoding="utf-8"))
    if request.get("schema") != 1:
        raise Refusal(f"{path} has schema {request.get('schema')!r}; this say.py reads schema 1")
    if unknown := sorted(set(request) - REQUEST_KEYS):
        raise Refusal(f"{path} has unknown keys: {', '.join(unknown)}")
    pieces = request.get("pieces")
    if not isinstance(pieces, list) or not pieces or not all(
            isinstance(p, str) and p.strip() for p in pieces):
        raise Refusal("the request's pieces must be a non-empty list of non-empty texts")
    rate = request.get("rate", 1.0)
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise Refusal(f"rate {rate!r} is not a positive speaking-rate multiplier")
    if request.get("device", "cpu") not in ("cpu", "cuda"):
        raise Refusal(f"device {request.get('device')!r}: Coqui runs on 'cpu' or 'cuda'")
    return request


def local_folder(request: dict) -> Path | None:
    files, voice = request.get("voice_files") or {}, request.get("voice")
    if files.get("model_dir"):
        folder = Path(files["model_dir"])
    elif voice and not voice.startswith("tts_models/") and Path(voice).is_dir():
        folder = Path(voice)
    else:
        return None
    if not (folder / "config.json").is_file() or not any(folder.glob("*.pth")):
        raise Refusal(f"model folder {folder} needs config.json and a .pth checkpoint")
    return folder.resolve()


def gate(name: str, item: dict) -> None:
    """Refuse a model whose licence needs consent, before anything is imported or fetched."""
    if needs_consent(item) and os.environ.get(CONSENT_VAR) != "1":
        licence = (item.get("license") or "terms of service").strip()
        kind = "non-commercial " if NON_COMMERCIAL.search(licence) else ""
        raise Refusal(f"{name} is under the {kind}licence {licence}, which needs your explicit "
                      f"acceptance: pass --accept-model-license (or set {CONSENT_VAR}=1) to "
                      "accept it")


def _refuse_prompt(model_dir: Path) -> bool:
    """Stands in for ModelManager.ask_tos, which would wait on input(); gate() ran first."""
    raise RuntimeError(f"{CONSENT_VAR}=1 is not set; refusing to prompt on stdin")


def download(name: str, cache_dir: Path | None) -> tuple[Path, Path, Path | None, Path | None]:
    """Checkpoint and config of ``name`` and of its default vocoder, fetched if missing."""
    import fcntl
    import shutil

    from TTS.utils.manage import ModelManager

    manager = ModelManager(output_prefix=cache_dir, progress_bar=False)  # None: Coqui's default
    manager.ask_tos = _refuse_prompt
    for datasets in (d for kind in manager.models_dict.values() for d in kind.values()):
        for item in (i for models in datasets.values() for i in models.values()):
            urls = item.get("github_rls_url")
            if isinstance(urls, str):
                item["github_rls_url"] = rewrite_url(urls)
            elif isinstance(urls, list):
                item["github_rls_url"] = [rewrite_url(u) for u in urls]

    def fetch(model: str) -> tuple[Path, Path, dict]:
        item = model_item(model, manager.models_dict) or {}
        gate(model, item)
        folder = Path(manager.output_prefix) / folder_name(model)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two runs never unpack into one folder
            zipped = "repo_id" not in item
            if zipped and folder.is_dir() and not (folder / DONE_MARK).is_file():
                shutil.rmtree(folder)  # a download cut short: Coqui would take it as complete
            try:
                model_path, config_path, item = manager.download_model(model)
            except Exception as err:
                if zipped and not (folder / DONE_MARK).is_file():
                    shutil.rmtree(folder, ignore_errors=True)
                elif not zipped and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()  # Coqui made it for a tos_agreed.txt; the files are in hub/
                where = item.get("github_rls_url") or item.get("repo_id") or "its host"
                why = " ".join(str(err).split())  # one line: the orchestrator shows the last
                raise DownloadFailed(f"could not download {model} from {where}: "
                                     f"{type(err).__name__}: {why}") from err
            if zipped:
                (folder / DONE_MARK).touch()
        return Path(model_path), Path(config_path), item

    model_path, config_path, item = fetch(name)
    if not item.get("default_vocoder"):
        return model_path, config_path, None, None
    vocoder_path, vocoder_config, _ = fetch(item["default_vocoder"])
    return model_path, config_path, vocoder_path, vocoder_config


class DownloadFailed(Exception):
    pass


# --- synthesis --------------------------------------------------------------------------------


def check_espeak(config_path: Path) -> None:
    """Phoneme models call the espeak-ng program (TTS/tts/utils/text/phonemizers/espeak_wrapper)."""
    import shutil

    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("use_phonemes") and config.get("phonemizer") in (None, "espeak") \
            and not (shutil.which("espeak-ng") or shutil.which("espeak")):
        raise Refusal("this model turns text into phonemes with the espeak-ng program, which is "
                      "not installed: install it (e.g. `apt install espeak-ng`) or pick a "
                      "character-based model")


def choose_speaker(tts, wanted: str | None) -> str | None:
    names = list(tts.speakers or [])
    if wanted is None:
        if names:
            print(f"say.py: {len(names)} speakers; using '{names[0]}'", file=sys.stderr)
        return names[0] if names else None
    if not names:
        raise Refusal(f"this model has one speaker; speaker '{wanted}' does not apply")
    if wanted in names:
        return wanted
    if wanted.isdigit() and int(wanted) < len(names):
        return names[int(wanted)]
    shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
    raise Refusal(f"this model has no speaker '{wanted}' ({len(names)} speakers: {shown}; or an "
                  f"index 0-{len(names) - 1})")


def rate_options(tts, rate: float) -> dict:
    """How the model speaks at ``rate``; a Refusal when it has no such control."""
    model = tts.synthesizer.tts_model
    if rate == 1.0:
        return {}
    if "xtts" in type(model).__name__.lower():
        return {"speed": rate}  # Xtts.inference divides its length scale by it
    # VITS, Glow-TTS, FastPitch/FastSpeech, AlignTTS, DelightfulTTS multiply their predicted
    # durations by length_scale at inference: rate 1.25 is length_scale / 1.25.
    scale = getattr(model, "length_scale", None)
    if isinstance(scale, (int, float)):
        model.length_scale = float(scale) / rate
        return {}
    raise Refusal(f"Coqui has no speaking-rate control for this model ({type(model).__name__} "
                  "predicts no durations); use rate 1.0 or a VITS / Glow-TTS / FastPitch model")


def write_wav(path: Path, samples, sample_rate: int) -> None:
    import numpy as np

    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with open(path, "xb") as raw, wave.open(raw, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())


def speak(request: dict) -> str:
    models = catalogue()
    folder = local_folder(request)
    name = None
    cache_dir = Path(request["cache_dir"]) if request.get("cache_dir") else None
    if folder is None:
        name = request.get("voice") or DEFAULT_MODEL
        item = model_item(name, models)
        if item is None or not name.startswith("tts_models/"):
            raise Refusal(f"Coqui has no TTS model '{name}' and there is no such model folder; "
                          "list the models with --voices-json")
        gate(name, item)  # before any import or download
    if cache_dir is not None:  # before huggingface_hub is imported: it reads these once
        os.environ["TTS_HOME"] = str(cache_dir)
        os.environ["HF_HUB_CACHE"] = str(cache_dir / "hub")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    import torch
    from TTS.api import TTS
    from TTS.utils.manage import ModelManager
    from TTS.utils.synthesizer import PAD_SILENCE_SAMPLES

    device = request.get("device") or "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise Refusal("the request asks for device cuda, but torch sees no CUDA GPU")
    if folder is not None:
        model_path, config_path = ModelManager._find_files(folder)  # as for a downloaded model
        vocoder_path = vocoder_config = None
        label = str(folder)
    else:
        model_path, config_path, vocoder_path, vocoder_config = download(name, cache_dir)
        label = name
    check_espeak(config_path)
    tts = TTS(model_path=str(model_path), config_path=str(config_path),
              vocoder_path=str(vocoder_path) if vocoder_path else None,
              vocoder_config_path=str(vocoder_config) if vocoder_config else None,
              progress_bar=False).to(device)
    speaker = choose_speaker(tts, request.get("speaker"))
    options = rate_options(tts, float(request.get("rate", 1.0)))
    language = request.get("language") if tts.is_multi_lingual else None
    if tts.is_multi_lingual and language not in (tts.languages or []):
        raise Refusal(f"{label} is multilingual: the request needs a \"language\", one of "
                      f"{', '.join(tts.languages or [])} (got {request.get('language')!r})")
    out_dir = Path(request["out_dir"])
    sample_rate = tts.synthesizer.output_sample_rate
    seconds = 0.0
    for index, text in enumerate(request["pieces"]):
        # One piece is one sentence already (the orchestrator splits and joins them): no
        # splitting here, and the silence Coqui appends to every sentence is cut off again.
        samples = tts.tts(text, speaker=speaker, language=language, split_sentences=False,
                          **options)[:-PAD_SILENCE_SAMPLES]
        write_wav(out_dir / f"{index:04d}.wav", samples, sample_rate)
        seconds += len(samples) / sample_rate
    return (f"say.py: {len(request['pieces'])} piece(s) spoken with Coqui {label} "
            f"({seconds:.2f} s at {sample_rate} Hz, {device})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--request", type=Path, help="speech request JSON (thbench/speech.py)")
    what.add_argument("--voices-json", action="store_true",
                      help=f"print the catalogue's TTS models as JSON (installed: in ${HOME_VAR})")
    args = parser.parse_args()
    sys.stdin.close()  # nothing here may wait on a prompt
    if args.voices_json:
        print(json.dumps(voices_json(), ensure_ascii=False))
        return 0
    try:
        print(speak(read_request(args.request)), flush=True)
    except Refusal as refusal:
        print(f"say.py: {refusal}", file=sys.stderr)
        return 2
    except DownloadFailed as failed:
        print(f"say.py: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
