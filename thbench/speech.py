"""Speech for a run: a TTS backend's synthesis from a text file, in that backend's own env.

A bench speaks each case once (thbench/bench.py) and hands the WAV to every model's run, which
records where its speech came from instead of synthesising it again.
"""

from __future__ import annotations

from pathlib import Path

from thbench import envs, proc
from thbench.errors import UserError
from thbench.specs import Spec


def synthesize(tts: Spec, env: envs.Env, text_file: Path, speech: Path, log: Path) -> None:
    """Speak the UTF-8 text in ``text_file`` into the WAV ``speech`` (the text is never argv)."""
    argv = tts.command.expand({"python": str(env.python), "spec_dir": str(tts.folder),
                               "text_file": str(text_file), "audio": str(speech)})
    proc.run(argv, cwd=text_file.parent, log=log, timeout=tts.command.timeout)
    if not speech.is_file():
        raise UserError(f"{tts.name} wrote no {speech.name}", f"see {log}")
