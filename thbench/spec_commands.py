"""A spec's command table (``[inference]``, ``[synthesis]`` or ``[command]``): the argv template,
its placeholders per kind, and how it expands into one argv list (never shell text).

Parsed with the shared checks of spec_checks.py; specs.parse calls :func:`_command`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from thbench.spec_checks import _Checker, _relative, _str_list
from thbench.spec_kinds import Kind

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Placeholders an argv template may use, per kind, and what each expands to.
PLACEHOLDERS: dict[Kind, dict[str, str]] = {
    Kind.MODEL: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "repo": "the pinned upstream checkout (only with [repo])",
        "image": "the input face image",
        "audio": "the speech WAV",
        "work_dir": "an empty folder for the model's files, inside the run folder",
        "run_dir": "the run folder",
    },
    Kind.TTS: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "request": "speech request JSON: pieces of text, voice, speaker, rate, out_dir "
                   "(thbench/speech.py)",
    },
    Kind.CHECK: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "image": "the image to check",
    },
    Kind.METRIC: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "video": "the normalised video to score (thbench/score.py)",
        "audio": "its speech, normalised to a mono WAV",
        "image": "the source image the video was made from",
        "out": "the JSON file the command writes its measurements to",
        "weights": "the env's weights folder ([[weights]] dest are relative to it)",
    },
}


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    cwd: str | None  # template; None: the work folder
    timeout: float
    output: str | None  # glob relative to {work_dir} where the result appears (models)
    # TTS only: the argv printing the backend's voices as JSON (thbench/voices.py; None: the
    # backend's voices come from a committed catalogue), and the voice used when none is asked.
    voices: tuple[str, ...] | None = None
    default_voice: str | None = None
    sample_rate: int | None = None  # models: the speech rate upstream reads (None: any)

    def expand(self, values: dict[str, str]) -> list[str]:
        return [expand(arg, values) for arg in self.argv]


def expand(template: str, values: dict[str, str]) -> str:
    """Fill ``{name}`` placeholders; the result is one argv element, never shell text."""
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def _command(checker: _Checker, spec: dict[str, Any], kind: Kind, has_repo: bool) -> Command | None:
    table_name = kind.command_table
    table = checker.get(spec, table_name, dict, f"[{table_name}] argv = [...]")
    if table is None:
        return None
    prefix = f"{table_name}."
    allowed = ["argv", "cwd", "timeout"] + (["output", "sample_rate"] if kind is Kind.MODEL else [])
    if kind is Kind.TTS:
        allowed += ["voices", "default_voice"]
    checker.unknown_keys(table, allowed, prefix)
    known = dict(PLACEHOLDERS[kind])
    if not has_repo:
        known.pop("repo", None)

    def placeholders_known(value: str) -> str | None:
        for name in PLACEHOLDER_RE.findall(value):
            if name not in known:
                return f"unknown placeholder {{{name}}}; known: " + ", ".join(
                    "{" + k + "}" for k in known
                )
        return None

    example = '["{python}", "{spec_dir}/run.py", "--image", "{image}"]'
    argv = checker.get(table, "argv", list, example, prefix, test=_str_list(placeholders_known))
    if argv is not None and not argv:
        checker.bad(f"{prefix}argv", argv, "must not be empty", example)
        argv = None
    cwd = checker.get(table, "cwd", str, '"{repo}"', prefix, required=False, test=placeholders_known)
    timeout = checker.get(
        table,
        "timeout",
        (int, float),
        "timeout = 3600",
        prefix,
        required=False,
        test=lambda v: None if v > 0 else "must be a positive number of seconds",
    )
    output, sample_rate = None, None
    if kind is Kind.MODEL:
        output = checker.get(table, "output", str, '"*.mp4"', prefix, test=_relative)
        sample_rate = checker.get(table, "sample_rate", int, "sample_rate = 16000", prefix,
                                  required=False, test=lambda v: None if 8000 <= v <= 96000
                                  else "a rate in Hz, 8000-96000")
    voices, default_voice = None, None
    if kind is Kind.TTS:
        listing = {k: v for k, v in known.items() if k in ("python", "spec_dir")}
        voices = checker.get(table, "voices", list, '["{python}", "{spec_dir}/say.py", "--voices-json"]',
                             prefix, required=False, test=_str_list(
                                 lambda v: None if set(PLACEHOLDER_RE.findall(v)) <= set(listing)
                                 else "only {python} and {spec_dir} are known here"))
        default_voice = checker.get(table, "default_voice", str, '"en"', prefix, required=False)
    if argv is None:
        return None
    return Command(tuple(argv), cwd, float(timeout or 3600), output,
                   tuple(voices) if voices else None, default_voice, sample_rate)
