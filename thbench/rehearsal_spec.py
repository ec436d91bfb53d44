"""A model spec's ``[rehearsal]`` table: how to run its real upstream code with stand-in weights.

::

    [rehearsal]
    script = "rehearse.py"        # beside spec.toml: makes every [[weights]] dest from the
                                  # upstream's own model classes, randomly initialised
    argv = ["--box", "{face_top}", "{face_bottom}", "{face_left}", "{face_right}"]
                                  # appended to [inference] argv in a rehearsal run
    stops = [{ when = "Found no NVIDIA driver", reached = "model loading (needs CUDA)" }]
                                  # an inference that fails with `when` (a regex) in its log
                                  # has rehearsed up to `reached`: recorded as such, no crash
    [rehearsal.torch]             # optional: the torch build a rehearsal installs instead
    packages = ["torch==2.0.1"]   # (the spec's index is unreachable here; the record says so)
    why = "…"

Parsed here (not in specs.py) to keep that module's size in check; specs.parse calls
:func:`parse` with its own checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thbench.specs import Torch, _Checker

# What a rehearsal argv may use beyond the [inference] placeholders: the face check's largest
# box, in pixels of the input image (Wav2Lip's --box order is top, bottom, left, right).
FACE_PLACEHOLDERS = {
    "face_top": "top edge of the face box, in pixels",
    "face_bottom": "bottom edge of the face box, in pixels",
    "face_left": "left edge of the face box, in pixels",
    "face_right": "right edge of the face box, in pixels",
}


@dataclass(frozen=True)
class Stop:
    when: str  # regex searched in the inference log
    reached: str  # how far the rehearsal got, in words

    def matches(self, log_text: str) -> bool:
        return re.search(self.when, log_text) is not None


@dataclass(frozen=True)
class Rehearsal:
    script: str  # relative to the spec folder
    argv: tuple[str, ...] = ()
    stops: tuple[Stop, ...] = ()
    torch: Torch | None = None  # replaces the spec's [torch] in a rehearsal env
    torch_why: str | None = None

    def uses_face(self) -> bool:
        return any(f"{{{name}}}" in arg for arg in self.argv for name in FACE_PLACEHOLDERS)


def parse(checker: _Checker, spec: dict[str, Any], folder, known: dict[str, str]) -> Rehearsal | None:
    """The ``[rehearsal]`` table, or None; problems go to ``checker``."""
    from thbench.specs import PLACEHOLDER_RE, _relative, _str_list, _torch

    table = checker.get(spec, "rehearsal", dict, '[rehearsal] script = "rehearse.py"',
                        required=False)
    if table is None:
        return None
    prefix = "rehearsal."
    checker.unknown_keys(table, ["script", "argv", "stops", "torch"], prefix)
    script = checker.get(table, "script", str, '"rehearse.py"', prefix, test=_relative)
    if script and not (folder / script).is_file():
        checker.bad(f"{prefix}script", script, "no such file beside spec.toml", '"rehearse.py"')
    allowed = {**known, **FACE_PLACEHOLDERS}

    def placeholders(value: str) -> str | None:
        unknown = [n for n in PLACEHOLDER_RE.findall(value) if n not in allowed]
        return (f"unknown placeholder {{{unknown[0]}}}; known: "
                + ", ".join("{" + k + "}" for k in allowed)) if unknown else None

    argv = checker.get(table, "argv", list, '["--box", "{face_top}", …]', prefix,
                       required=False, test=_str_list(placeholders)) or []
    stops = []
    for i, raw in enumerate(checker.get(table, "stops", list, '[{when = "regex", reached = "…"}]',
                                        prefix, required=False) or []):
        where = f"{prefix}stops[{i}]."
        if not isinstance(raw, dict):
            checker.bad(where[:-1], raw, "must be a table", '{when = "regex", reached = "…"}')
            continue
        checker.unknown_keys(raw, ["when", "reached"], where)
        when = checker.get(raw, "when", str, '"Found no NVIDIA driver"', where,
                           test=_regex)
        reached = checker.get(raw, "reached", str, '"the UNet forward pass (needs CUDA)"', where)
        if when and reached:
            stops.append(Stop(when, reached))
    torch, why = None, None
    if "torch" in table:
        torch_table = table["torch"]
        if isinstance(torch_table, dict):
            why = checker.get(torch_table, "why", str, '"the cu118 index is unreachable"',
                              f"{prefix}torch.")
            torch = _torch(checker, {"torch": {k: v for k, v in torch_table.items()
                                               if k != "why"}}, prefix)
        else:
            checker.bad(f"{prefix}torch", torch_table, "must be a table",
                        '[rehearsal.torch] packages = ["torch==2.0.1"]')
    if not script:
        return None
    return Rehearsal(script, tuple(argv), tuple(stops), torch, why)


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as err:
        return f"not a regular expression: {err}"
    return None
