"""The kinds of spec (model, TTS backend, check, metric): where each lives and what it is called.

Declared once, apart from specs.py, so the modules parsing parts of a spec (spec_commands.py)
can key their tables by kind without importing the loader.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    MODEL = "model"
    TTS = "tts"
    CHECK = "check"
    METRIC = "metric"

    @property
    def folder(self) -> str:
        return {Kind.MODEL: "solutions", Kind.TTS: "tts", Kind.CHECK: "checks",
                Kind.METRIC: "metrics"}[self]

    @property
    def label(self) -> str:
        return {Kind.MODEL: "model", Kind.TTS: "TTS backend", Kind.CHECK: "check",
                Kind.METRIC: "metric"}[self]

    @property
    def command_table(self) -> str:
        return {Kind.MODEL: "inference", Kind.TTS: "synthesis", Kind.CHECK: "command",
                Kind.METRIC: "command"}[self]

