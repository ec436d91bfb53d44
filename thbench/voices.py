"""Voices: what each TTS backend can speak, in which language, and the one a run asks for.

Piper's voices come from its committed catalogue (thbench/piper_voices.py), so they list
offline, fetched or not. Other backends print theirs (``[synthesis] voices`` argv in their spec,
run in their env: the contract's ``--voices-json``). A voice given as a path to a folder is a
local model (Coqui): its language is unknown until the backend reads it, so the language check
is skipped for it and the record says so.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from thbench import envs, language, paths, proc
from thbench.errors import UserError
from thbench.specs import Spec

CATALOGUED = ("piper",)  # backends whose voices are a committed catalogue, not an env's listing
# Licences used only with the user's explicit acceptance: Coqui's CPML and the CC BY-NC family
# (the same rule as tts/coqui/say.py's gate).
CONSENT_RE = re.compile(r"\bcpml\b|\bnc\b|non-?commercial", re.IGNORECASE)
ANY_LANGUAGE = ("multilingual",)  # a voice speaking whatever language it is told (XTTS)


@dataclass(frozen=True)
class Voice:
    backend: str
    name: str
    language: str | None
    quality: str | None = None
    speakers: tuple[str, ...] | None = ()  # None: not known until the backend loads the model
    installed: bool = True
    size_bytes: int | None = None
    license: str | None = None
    tos_required: bool = False
    note: str | None = None
    aliases: tuple[str, ...] = field(default=(), repr=False)
    local: Path | None = None  # a model folder given by path

    @property
    def needs_consent(self) -> bool:
        """Usable only with the user's explicit acceptance of its licence (XTTS's CPML, the
        CC BY-NC models)."""
        return self.tos_required or bool(CONSENT_RE.search(self.license or ""))

    def to_dict(self) -> dict:
        return {"backend": self.backend, "name": self.name, "language": self.language,
                "quality": self.quality,
                "speakers": None if self.speakers is None else list(self.speakers),
                "installed": self.installed, "size_bytes": self.size_bytes,
                "license": self.license, "tos_required": self.tos_required, "note": self.note,
                "local": str(self.local) if self.local else None}


def from_row(backend: str, row: dict) -> Voice:
    speakers = row.get("speakers", [])
    return Voice(backend, row["name"], row.get("language"), row.get("quality"),
                 None if speakers is None else tuple(str(s) for s in speakers),
                 bool(row.get("installed", True)),
                 row.get("size_bytes"), row.get("license"), bool(row.get("tos_required")),
                 row.get("note"), tuple(row.get("aliases") or ()))


_LISTED: dict[tuple[str, str], tuple[Voice, ...]] = {}  # (backend, interpreter): its voices


def _env_listing(tts: Spec, python: str) -> tuple[Voice, ...]:
    assert tts.command.voices
    if (tts.name, python) not in _LISTED:
        argv = [a.replace("{python}", python).replace("{spec_dir}", str(tts.folder))
                for a in tts.command.voices]
        # THB_COQUI_HOME: where the backend's downloads live (the request's cache_dir), so
        # its listing can tell fetched models from the rest.
        home = {"THB_COQUI_HOME": str(paths.voices_root() / tts.name)}
        done = proc.run(argv, capture=True, timeout=120, env=home,
                        tip=f"rebuild the env: `uv run nox -s {tts.setup_session}`")
        try:
            rows = json.loads(done.stdout)
            _LISTED[tts.name, python] = tuple(from_row(tts.name, row) for row in rows)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise UserError(f"{tts.name} listed its voices in a form this version cannot read "
                            f"({err.__class__.__name__}: {err})",
                            f"rebuild its env: `uv run nox -s {tts.setup_session} -- --force`"
                            ) from None
    return _LISTED[tts.name, python]


def listing(tts: Spec, env: envs.Env | None = None) -> list[Voice]:
    """Every voice ``tts`` can speak now or fetch. Needs the backend's env unless catalogued."""
    if tts.name in CATALOGUED:
        from thbench import piper_voices

        return [from_row(tts.name, row) for row in piper_voices.listing()]
    if not tts.command.voices:
        return []
    env = env or envs.require_ready(tts)
    return list(_env_listing(tts, str(env.python)))


def resolve(tts: Spec, name: str | None, env: envs.Env | None = None) -> Voice:
    """The voice ``name`` of ``tts`` (None: its default), or a UserError naming close ones."""
    name = name or tts.command.default_voice
    if not name:
        raise UserError(f"{tts.name} has no default voice",
                        f"name one: `uv run invoke voices --tts {tts.name}` lists them, then "
                        "pass --voice NAME")
    if tts.name not in CATALOGUED and ("/" in name or name.startswith(".")) \
            and Path(name).expanduser().is_dir():
        return _local(tts, Path(name).expanduser().resolve())
    voices = listing(tts, env)
    base = name.split("+", 1)[0]  # eSpeak variants: en+f3 is the en voice, another timbre
    # The full name, then a voice file's own name (eSpeak "de" is gmw/de, not a voice that
    # merely also speaks de), then the other languages a voice answers to.
    variant = name[len(base):]  # "+f3", kept: it is what the backend is asked to speak with
    for matches in (lambda v: base == v.name, lambda v: base == v.name.rsplit("/", 1)[-1],
                    lambda v: base in v.aliases):
        for voice in voices:
            if matches(voice):
                return replace(voice, name=voice.name + variant) if variant else voice
    close = difflib.get_close_matches(name, [v.name for v in voices], n=4, cutoff=0.6)
    hint = f"close ones: {', '.join(close)}; " if close else ""
    raise UserError(f"{tts.name} has no voice '{name}'",
                    f"{hint}list them with `uv run invoke voices --tts {tts.name}`")


# A local model folder's config names its architecture; XTTS's weights are CPML whoever holds
# them, so a folder of them needs the same consent as the catalogue's XTTS.
LOCAL_LICENCES = {"xtts": "CPML"}


def _local(tts: Spec, folder: Path) -> Voice:
    try:
        arch = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        arch = None
    licence = LOCAL_LICENCES.get(str(arch).lower())
    return Voice(tts.name, folder.name, None, speakers=None, license=licence,
                 tos_required=licence is not None, note=f"local model folder ({arch or '?'})",
                 local=folder)


def check_language(text: str, voice: Voice, tts: Spec, env: envs.Env | None = None) -> None:
    """Refuse text the voice cannot speak (Chinese to an English Piper voice is spelt out as
    "Chinese letter", silently), naming voices of the text's language."""
    if voice.language is None or voice.language in ANY_LANGUAGE:
        return
    wrong = language.mismatch(text, voice.language)
    if wrong is None:
        return
    able = [v for v in listing(tts, env)
            if v.language and language.mismatch(text, v.language) is None]
    ranked = sorted(able, key=lambda v: _rank(v.language, wrong.languages))  # stable: by name
    suggestions = [v.name for v in ranked][:3]
    where = (f"{tts.name} voices for it: {', '.join(suggestions)}" if suggestions
             else f"{tts.name} has no voice for it")
    raise UserError(
        f"the text is mostly {wrong.script} script ({wrong.share:.0%} of its letters), which "
        f"{tts.name} voice {voice.name} ({voice.language}) cannot speak",
        f"{where}; pass --voice NAME" + (
            f", or `--tts espeak --voice {wrong.languages[0]}` (robotic, offline, ~100 "
            "languages)" if wrong.languages and tts.name != "espeak" else ""))


def _rank(tag: str, preferred: tuple[str, ...]) -> int:
    """Where a voice's language comes in the languages the text's script suggests."""
    primary = tag.replace("-", "_").split("_")[0].lower()
    return preferred.index(primary) if primary in preferred else len(preferred)


def check_consent(voice: Voice, accepted: bool) -> None:
    if voice.needs_consent and not accepted:
        also = " (or set COQUI_TOS_AGREED=1)" if voice.backend == "coqui" else ""
        raise UserError(f"{voice.backend} voice {voice.name} is under "
                        f"{voice.license or 'terms of use'}, which you must accept explicitly "
                        "(a non-commercial licence, or terms to agree to)",
                        f"read the licence; to accept it, run again with --accept-model-license"
                        f"{also}")
