"""Bench cases: a TOML file of inputs, each an image with a text or a recording, an id, tags.

::

    schema = 1

    [[case]]
    id = "short"                 # lowercase letters, digits, - and _; unique in the file
    image = "face.png"           # relative to this file (or absolute)
    text = "Hello there."        # give text (spoken by the TTS) or audio, not both
    tags = ["en", "short"]       # optional

    [[case]]
    id = "german"
    image = "face.png"
    text = "Guten Tag."
    tts = "espeak"               # optional, text cases: this case's TTS backend and voice,
    voice = "de"                 # over the bench's --tts / --voice

    [[case]]
    id = "recorded"
    image = "face.png"
    audio = "speech-sample.m4a"

Loading is parse → validate (every problem, with file, line, key and a good example) → typed
cases; images and audio are checked to be readable files here, so a bench never starts with a
case that cannot run.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from thbench import media, paths, speech
from thbench.errors import UserError

SCHEMA = 1
# No "__": it separates model, case and repeat in a bench's file names (bench.Cell.stem).
ID_RE = re.compile(r"^(?!.*__)[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_FILE = paths.REPO_ROOT / "assets" / "cases.toml"
CASE_KEYS = ("id", "image", "text", "audio", "tags", "tts", "voice")
EXAMPLE = '[[case]] id = "short", image = "face.png", text = "Hello there."'


@dataclass(frozen=True)
class Case:
    id: str
    image: Path
    text: str | None = None
    audio: Path | None = None
    tags: tuple[str, ...] = ()
    tts: str | None = None  # text cases: this case's backend and voice over the bench's
    voice: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "image": str(self.image), "text": self.text,
                "audio": str(self.audio) if self.audio else None, "tags": list(self.tags),
                "tts": self.tts, "voice": self.voice}

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        return cls(data["id"], Path(data["image"]), data.get("text"),
                   Path(data["audio"]) if data.get("audio") else None, tuple(data.get("tags", ())),
                   data.get("tts"), data.get("voice"))


class _Lines:
    """Line numbers for messages: tomllib gives values, not where they were written."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [n for n, line in enumerate(self.lines, 1)
                        if re.match(r"^\s*\[\[\s*case\s*\]\]", line)]

    def of(self, index: int | None, key: str | None) -> int | None:
        if index is None or index >= len(self.headers):
            for n, line in enumerate(self.lines, 1):
                if key and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                    return n
            return None
        start = self.headers[index]
        stop = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines) + 1
        for n in range(start, stop):
            if key and re.match(rf"^\s*{re.escape(key)}\s*=", self.lines[n - 1]):
                return n
        return start


def load(path: Path) -> list[Case]:
    """Every case in ``path``, or one UserError listing every problem."""
    path = path.expanduser()
    if not path.is_file():
        raise UserError(f"no cases file at {path}",
                        f"pass --cases FILE (the default set is {_shown(DEFAULT_FILE)})")
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text", f"save it as UTF-8 TOML, e.g. {EXAMPLE}") \
            from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}", f"write cases as {EXAMPLE}") from None
    lines = _Lines(text)
    problems: list[str] = []

    def bad(index: int | None, key: str, why: str, example: str) -> None:
        line = lines.of(index, key)
        where = f"{path}:{line}" if line else str(path)
        what = f"case[{index}].{key}" if index is not None else key
        problems.append(f"{where}: {what}: {why} (e.g. {example})")

    for key in raw:
        if key not in ("schema", "case"):
            bad(None, key, "unknown key; allowed at the top: schema, case", "schema = 1")
    if raw.get("schema", SCHEMA) != SCHEMA:
        bad(None, "schema", f"this version reads schema {SCHEMA}", f"schema = {SCHEMA}")
    items = raw.get("case", [])
    if not isinstance(items, list) or not items:
        bad(None, "case", "no [[case]] tables", EXAMPLE)
        items = []
    cases, seen = [], set()
    for index, table in enumerate(items):
        case = _case(table, index, path.parent, bad, seen)
        if case:
            cases.append(case)
    if problems:
        count = len(problems)
        raise UserError(f"{count} problem{'s' if count > 1 else ''} in the cases file: "
                        + "; ".join(problems), f"fix them; a good case: {EXAMPLE}")
    return cases


def _case(table: object, index: int, folder: Path, bad, seen: set[str]) -> Case | None:
    if not isinstance(table, dict):
        bad(index, "case", "must be a table", EXAMPLE)
        return None
    for key in table:
        if key not in CASE_KEYS:
            bad(index, key, f"unknown key; allowed: {', '.join(CASE_KEYS)}", 'text = "Hello"')
    case_id = table.get("id")
    if not isinstance(case_id, str) or not ID_RE.match(case_id):
        bad(index, "id", "a lowercase id (letters, digits, - and _, no __, at most 64)",
            'id = "short"')
        case_id = None
    elif case_id in seen:
        bad(index, "id", f"'{case_id}' is used by an earlier case", f'id = "{case_id}-2"')
    seen.add(case_id or "")
    image = _file(table, "image", index, folder, bad, 'image = "face.png"', required=True)
    text, audio = table.get("text"), table.get("audio")
    if (text is None) == (audio is None):
        bad(index, "text", "give text or audio" + (", not both" if text is not None else ""),
            'text = "Hello there."')
    if text is not None and not isinstance(text, str):
        bad(index, "text", "must be text", 'text = "Hello there."')
        text = None
    elif text is not None:
        try:
            speech.check_text(text)  # the same limits as `invoke run --text`
        except UserError as err:
            bad(index, "text", err.message, 'text = "Hello there."')
            text = None
    audio_path = _file(table, "audio", index, folder, bad, 'audio = "hello.m4a"',
                       required=False) if audio is not None else None
    tags = table.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        bad(index, "tags", "a list of non-empty strings", 'tags = ["en", "short"]')
        tags = []
    voice = {}
    for key, example in (("tts", 'tts = "espeak"'), ("voice", 'voice = "de"')):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            bad(index, key, "must be a name", example)
        elif value is not None and audio is not None:
            bad(index, key, "only for a text case (a recording is not spoken)", example)
        else:
            voice[key] = value
    if case_id and image and (text or audio_path):
        return Case(case_id, image, text.strip() if text else None, audio_path, tuple(tags),
                    voice.get("tts"), voice.get("voice"))
    return None


def _file(table: dict, key: str, index: int, folder: Path, bad, example: str,
          required: bool) -> Path | None:
    value = table.get(key)
    if value is None:
        if required:
            bad(index, key, "missing", example)
        return None
    if not isinstance(value, str) or not value:
        bad(index, key, "must be a path (relative to the cases file)", example)
        return None
    try:
        path = media.resolve_input(folder / Path(value).expanduser(), key)
    except UserError as err:
        bad(index, key, err.message, example)
        return None
    try:
        media.validate_image(path) if key == "image" else media.validate_audio(path)
    except UserError as err:
        bad(index, key, err.message, example)
        return None
    return path


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
