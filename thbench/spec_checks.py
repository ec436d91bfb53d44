"""The checks every spec table is validated with: one collector of problems, small value tests.

Each problem names the file, key, value and an example of a good value; all of a file's problems
are collected and reported together (thbench/specs.py). Kept apart from the spec types so the
table parsers (specs, rehearsal_spec, metric_spec) share them without growing one module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9.+!_-]+$")


@dataclass
class _Checker:
    file: Path
    problems: list[str] = field(default_factory=list)

    def bad(self, key: str, value: object, why: str, example: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        self.problems.append(f"{_rel(self.file)}: {key} = {shown}: {why} (e.g. {example})")

    def unknown_keys(self, table: dict[str, Any], allowed: Iterable[str], prefix: str) -> None:
        allowed = list(allowed)
        for key, value in table.items():
            if key not in allowed:
                self.bad(
                    f"{prefix}{key}",
                    value,
                    f"unknown key; allowed here: {', '.join(allowed)}",
                    _near(key, allowed) or allowed[0],
                )

    def get(
        self,
        table: dict[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        example: str,
        prefix: str = "",
        required: bool = True,
        test: Callable[[Any], str | None] | None = None,
    ) -> Any:
        if key not in table:
            if required:
                self.bad(f"{prefix}{key}", None, "missing", example)
            return None
        value = table[key]
        # bool is an int subclass in Python; never accept true for a number.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.bad(f"{prefix}{key}", value, f"must be a {names}", example)
            return None
        if test is not None and (why := test(value)):
            self.bad(f"{prefix}{key}", value, why, example)
            return None
        return value


def _rel(path: Path) -> str:
    """``solutions/<name>/spec.toml``: a spec's path from the folder holding the kind folders."""
    return "/".join(path.parts[-3:])


def _near(word: str, options: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1)
    return close[0] if close else None


def _str_list(item_test: Callable[[str], str | None] | None = None):
    def test(value: list) -> str | None:
        for item in value:
            if not isinstance(item, str) or not item:
                return "every item must be a non-empty string"
            if item_test and (why := item_test(item)):
                return why
        return None

    return test


def _http_url(value: str) -> str | None:
    return None if re.match(r"^(https?|file)://\S+$", value) else "must be an http(s):// URL"


def pin_name(pin: str) -> str:
    """The normalised distribution name of a requirement such as ``torch==2.1.2+cu118``."""
    return pin.split("==", 1)[0].split("[", 1)[0].lower().replace("_", "-")


def _pin(value: str) -> str | None:
    return None if PIN_RE.match(value) else "must pin one exact version with =="


def _relative(value: str) -> str | None:
    p = Path(value)
    if p.is_absolute() or ".." in p.parts or not value:
        return "must be a relative path inside the folder, without '..'"
    return None


def _check_lock(checker: _Checker, lock: Path, key: str) -> None:
    """A lock pins every requirement exactly; ranges mean it was not compiled."""
    for number, raw in enumerate(lock.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("--"):
            continue
        requirement = line.split(";", 1)[0].strip()
        if not PIN_RE.match(requirement):
            checker.bad(
                f"{key} line {number}",
                raw.strip(),
                "a lock pins every package with == (compile it with `uv pip compile`)",
                "numpy==1.26.4",
            )
