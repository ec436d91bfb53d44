"""Speech for a run or a bench case: text → sentences → a TTS backend in its own env → one WAV,
joined with set silences, loudness-normalised, measured, recorded and cached.

``prepare`` checks everything that can be checked before a run folder exists (the settings,
the backend's env, the voice, its licence, the text's language); ``speak`` makes the WAV. The
backend gets a request file (see ``_request``) and writes one WAV per sentence; the text is
never on a command line. A bench speaks each case once (thbench/bench.py) and hands the WAV to
every model's run, which records where its speech came from instead of making it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console

from thbench import envs, proc, speech_audio, speech_cache, speech_text, voices
from thbench.errors import UserError
from thbench.files import sha256_file
from thbench.specs import Spec

MAX_TEXT_CHARS = 5000  # ~5-6 minutes of speech at a usual pace: beyond that, record it
DEFAULT_SILENCE_S = 0.25
RATES = (0.5, 2.0)  # speaking-rate multipliers a backend is asked for
SILENCES = (0.0, 3.0)
JOIN_FADE_MS = 8.0  # fade at each sentence's edges: no click where a piece ends mid-wave
CONSENT_VAR = "COQUI_TOS_AGREED"  # the variable Coqui itself reads; set only on consent


def check_text(text: str) -> None:
    """The text can be spoken: words, within the limit, plain (also a bench case's)."""
    if not text.strip():
        raise UserError("the text is empty", 'give words to speak, e.g. --text "Hello there"')
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"the text has {len(text)} characters (limit {MAX_TEXT_CHARS}, about "
                        "5 minutes of speech)",
                        "split it into shorter runs, or record it and pass --audio FILE")
    if "\x00" in text:
        raise UserError("the text holds a NUL character", "pass plain text")
    if not any(ch.isalnum() for ch in text):
        raise UserError("the text has no words, only punctuation or symbols",
                        'give words to speak, e.g. --text "Hello there"')


@dataclass(frozen=True)
class Settings:
    """What the user chose about the speech (``invoke run`` / ``invoke bench`` flags)."""

    voice: str | None = None
    speaker: str | None = None
    language: str | None = None  # for a voice that speaks many (XTTS): which one to speak
    rate: float = 1.0
    sentence_silence: float = DEFAULT_SILENCE_S
    accept_license: bool = False
    use_cache: bool = True

    def check(self) -> None:
        if not RATES[0] <= self.rate <= RATES[1]:
            raise UserError(f"--rate {self.rate} is outside {RATES[0]}-{RATES[1]} (a speaking-rate "
                            "multiplier: 1.0 is the voice's own pace)", "e.g. --rate 1.2")
        if not SILENCES[0] <= self.sentence_silence <= SILENCES[1]:
            raise UserError(f"--sentence-silence {self.sentence_silence} is outside "
                            f"{SILENCES[0]}-{SILENCES[1]} seconds", "e.g. --sentence-silence 0.3")

    def given(self) -> list[str]:
        """The flags set away from their defaults that shape speech (for a mistake's message)."""
        default = Settings()
        return [f"--{name.replace('_', '-')}" for name in ("voice", "speaker", "language", "rate",
                                                           "sentence_silence")
                if getattr(self, name) != getattr(default, name)]

    def consent(self) -> str | None:
        if self.accept_license:
            return "--accept-model-license"
        return CONSENT_VAR if os.environ.get(CONSENT_VAR) == "1" else None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A checked speech request: backend, its ready env, the voice, the settings."""

    tts: Spec
    env: envs.Env
    voice: voices.Voice
    settings: Settings
    voice_files: dict | None = None  # what the backend loads: a fetched voice, a model folder


def prepare(tts: Spec, text: str, settings: Settings, console: Console | None = None) -> Plan:
    """Everything checkable before anything is made, and the voice fetched (once, into the
    shared voice cache, verified); a UserError on the first problem."""
    settings.check()
    env = envs.require_ready(tts)
    voice = voices.resolve(tts, settings.voice, env)
    voices.check_consent(voice, settings.consent() is not None)
    _check_language_setting(voice, settings)
    checked = replace(voice, language=settings.language) if settings.language else voice
    voices.check_language(text, checked, tts, env)
    _check_speaker(voice, settings.speaker)
    files = _voice_files(tts, voice, console)
    if files and voice.local is None:  # just fetched: its MODEL_CARD now tells its licence
        voice = voices.resolve(tts, settings.voice, env)
        voices.check_consent(voice, settings.consent() is not None)
    return Plan(tts, env, voice, settings, files)


def _check_language_setting(voice: voices.Voice, settings: Settings) -> None:
    many = voice.language in voices.ANY_LANGUAGE
    if many and not settings.language:
        raise UserError(f"{voice.backend} voice {voice.name} speaks several languages: say which",
                        "pass --language, e.g. --language de")
    if settings.language and not many and voice.local is None:  # a folder's is unknown here
        raise UserError(f"--language is for voices that speak several languages; {voice.name} "
                        f"speaks {voice.language or 'its own'}", "drop --language")


def _check_speaker(voice: voices.Voice, speaker: str | None) -> None:
    """Speakers the listing knows are checked here; unknown ones (None: a Coqui model not yet
    loaded) by the backend, which exits 2 naming them."""
    if speaker is None or voice.speakers is None:
        return
    if not voice.speakers:
        raise UserError(f"voice {voice.name} has one speaker; --speaker does not apply",
                        "drop --speaker, or pick a multi-speaker voice (`uv run invoke voices`)")
    if speaker not in voice.speakers and not (speaker.isdigit()
                                              and int(speaker) < len(voice.speakers)):
        raise UserError(f"voice {voice.name} has no speaker '{speaker}'",
                        f"its speakers: {', '.join(voice.speakers[:8])}"
                        + (" …" if len(voice.speakers) > 8 else ""))


def _voice_files(tts: Spec, voice: voices.Voice, console: Console | None) -> dict | None:
    if voice.local is not None:
        return {"model_dir": str(voice.local)}
    if tts.name in voices.CATALOGUED and voice.name != tts.command.default_voice:
        from thbench import piper_voices

        return {k: str(v) for k, v in piper_voices.ensure(voice.name, console=console).items()}
    return None


def _voice_identity(plan: Plan) -> dict:
    """What pins the voice's bytes: the catalogue revision, or a local folder's file facts."""
    voice = plan.voice
    if voice.local is not None:
        files = sorted(p for p in voice.local.rglob("*") if p.is_file())
        return {"local": [(str(p.relative_to(voice.local)), p.stat().st_size, p.stat().st_mtime_ns)
                          for p in files]}
    if plan.tts.name == "piper":
        from thbench import piper_voices

        return {"name": voice.name, "revision": piper_voices.REVISION}
    return {"name": voice.name}


def _folder_digest(folder: Path) -> str:
    """The backend's own files (spec, say.py, lock, catalogue): an edit to any is new speech."""
    digests = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def cache_key(plan: Plan, pieces: list[str]) -> str:
    s = plan.settings
    return speech_cache.key({
        "pieces": pieces, "tts": plan.tts.name, "spec": _folder_digest(plan.tts.folder),
        "language": s.language,
        "env": plan.env.identity, "voice": _voice_identity(plan), "speaker": s.speaker,
        "rate": s.rate, "silence": s.sentence_silence,
        "loudness": [speech_audio.TARGET_LUFS, speech_audio.TOLERANCE_LU, speech_audio.PEAK_DBTP],
        "fade_ms": JOIN_FADE_MS,
    })


def _request(plan: Plan, pieces: list[str], out_dir: Path, voice_files: dict | None) -> dict:
    from thbench import paths

    return {"schema": 1, "pieces": pieces, "out_dir": str(out_dir),
            "voice": plan.voice.name if plan.voice.local is None else None,
            "voice_files": voice_files, "speaker": plan.settings.speaker,
            "rate": plan.settings.rate, "language": plan.settings.language, "device": "cpu",
            "cache_dir": str(paths.voices_root() / plan.tts.name)}


def speak(plan: Plan, text: str, dest: Path, work: Path, log: Path) -> dict:
    """Make ``dest`` (never overwritten) from ``text``; return the speech record. ``work`` is
    an empty or missing folder for the pieces, removed afterwards."""
    if dest.exists():
        raise FileExistsError(f"{dest} exists; speech is never written over")
    pieces = speech_text.split_sentences(text)
    if not pieces:
        raise UserError("the text has nothing to speak", 'give words, e.g. --text "Hello there"')
    key = cache_key(plan, pieces)
    consent = plan.settings.consent()
    if plan.settings.use_cache and (hit := speech_cache.lookup(key)):
        cached, record = hit
        if speech_cache.copy_out(cached, record["sha256"], dest):  # else: made again below
            return {**record, "license_accepted_by": consent if plan.voice.needs_consent else None,
                    "cache": {"key": key, "hit": True, "made_at": record.get("made_at"),
                              "note": "synthesis_seconds and tts_env are the first making's"}}
    out_dir = work / "pieces"
    out_dir.mkdir(parents=True)
    request = work / "request.json"
    request.write_text(json.dumps(_request(plan, pieces, out_dir, plan.voice_files), indent=2,
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    argv = plan.tts.command.expand({"python": str(plan.env.python),
                                    "spec_dir": str(plan.tts.folder), "request": str(request)})
    started = time.monotonic()
    proc.run(argv, cwd=work, log=log, timeout=plan.tts.command.timeout,
             env={CONSENT_VAR: "1"} if consent else None,
             unset_env=() if consent else (CONSENT_VAR,))
    synthesis_s = time.monotonic() - started
    made = [out_dir / f"{i:04d}.wav" for i in range(len(pieces))]
    if missing := [p.name for p in made if not p.is_file()]:
        raise UserError(f"{plan.tts.name} wrote no {', '.join(missing[:3])}", f"see {log}")
    joined = work / "joined.wav"
    join = speech_audio.join(made, joined, silence_s=plan.settings.sentence_silence,
                             fade_ms=JOIN_FADE_MS)
    loudness = speech_audio.normalise(joined, dest, sample_rate=None)
    record = {
        "backend": plan.tts.name, "voice": plan.voice.to_dict(),
        "language": plan.settings.language or plan.voice.language,
        "settings": {k: v for k, v in plan.settings.to_dict().items() if k != "accept_license"},
        "license_accepted_by": consent if plan.voice.needs_consent else None,
        "characters": len(text), "pieces": len(pieces), "synthesis_seconds": round(synthesis_s, 3),
        "join": join, "loudness": loudness, "seconds": round(loudness["seconds"], 3),
        "sample_rate": loudness.get("sample_rate"), "sha256": sha256_file(dest),
        "tts_env": {k: (plan.env.read_stamp() or {}).get(k) for k in ("identity", "created")},
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    speech_cache.store(key, dest, record)
    shutil.rmtree(work, ignore_errors=True)
    return {**record, "cache": {"key": key, "hit": False,
                                "skipped_lookup": not plan.settings.use_cache}}


def record_beside(wav: Path) -> dict | None:
    """The speech record a bench wrote beside a case's WAV (``<case>.json``), if any."""
    try:
        return json.loads(wav.with_suffix(".json").read_text(encoding="utf-8")).get("made")
    except (OSError, ValueError, AttributeError):
        return None
