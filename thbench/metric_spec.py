"""A metric spec's ``[[metrics]]`` tables: what each number its command writes is, declared once.

::

    [[metrics]]
    id = "lip_open_loudness_r"    # the key in the command's JSON and in every record
    label = "landmark lip-sync r" # what the report's column says
    direction = "higher"          # higher | lower: which side is better; none: context only
    unit = "r"                    # optional
    about = "best Pearson r of inner-lip opening vs loudness, lags within ±15 frames"

The command (``[command] argv``) writes ``{out}``: ``{"implementation": …, "version": …,
"metrics": {id: {"value": number | null, "not_computed": why | null, "settings": {…}}}}``; a
metric it leaves out, or gives neither a value nor a reason, is recorded as not computed with
that said (thbench/score.py). Parsed here (not in specs.py) to keep that module's size in check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thbench.specs import _Checker

ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class Direction(StrEnum):
    HIGHER = "higher"  # ↑ better
    LOWER = "lower"  # ↓ better
    NONE = "none"  # context (an offset, a rate): no better side

    @property
    def arrow(self) -> str:
        return {Direction.HIGHER: "↑", Direction.LOWER: "↓", Direction.NONE: "·"}[self]


@dataclass(frozen=True)
class MetricDecl:
    id: str
    label: str
    direction: Direction
    about: str
    unit: str = ""


def _one_line(value: str) -> str | None:
    return None if value.strip() and "\n" not in value else "one non-empty line"


def parse(checker: _Checker, spec: dict[str, Any]) -> tuple[MetricDecl, ...]:
    items = checker.get(spec, "metrics", list, '[[metrics]] id = "face_found"')
    if items is not None and not items:
        checker.bad("metrics", items, "declare at least one metric", '[[metrics]] id = "face_found"')
    found: list[MetricDecl] = []
    seen: set[str] = set()
    directions = ", ".join(d.value for d in Direction)
    for i, table in enumerate(items or []):
        prefix = f"metrics[{i}]."
        if not isinstance(table, dict):
            checker.bad(f"metrics[{i}]", table, "must be a table", '[[metrics]] id = "face_found"')
            continue
        checker.unknown_keys(table, ["id", "label", "direction", "unit", "about"], prefix)
        metric_id = checker.get(table, "id", str, '"face_found"', prefix,
                                test=lambda v: None if ID_RE.match(v) else
                                "lowercase letters, digits and _")
        if metric_id in seen:
            checker.bad(f"{prefix}id", metric_id, "declared twice in this spec", '"face_found_2"')
        seen.add(metric_id or "")
        label = checker.get(table, "label", str, '"face found (MediaPipe FaceMesh)"', prefix,
                            test=_one_line)
        direction = checker.get(table, "direction", str, '"higher"', prefix,
                                test=lambda v: None if v in Direction.__members__.values() else
                                f"must be one of {directions}")
        unit = checker.get(table, "unit", str, '"s"', prefix, required=False) or ""
        about = checker.get(table, "about", str, '"share of frames with exactly one face"',
                            prefix, test=_one_line)
        if metric_id and label and direction and about:
            found.append(MetricDecl(metric_id, label, Direction(direction), about, unit))
    return tuple(found)
