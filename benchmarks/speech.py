"""The speech front end on this machine: backends × voices, the cache, and bad texts.

    uv run python benchmarks/speech.py                       # every voice that needs no download
    uv run python benchmarks/speech.py --coqui-model DIR     # plus a local Coqui model folder

(a) Each backend × voice speaks a sentence of its language (the cache skipped, so it really
    synthesises): language, characters, seconds of speech, seconds to synthesise, real-time
    factor, loudness after normalisation. (b) The same request again: a cache hit against the
    fresh synthesis. (c) Bad texts and settings through `invoke run`: exit status and the ERROR
    and TIP lines it prints. Needs the Piper and eSpeak NG envs (`uv run nox -s setup-tts-piper
    setup-tts-espeak setup-still`); Coqui's is optional. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import envs, proc, specs, speech
from thbench.errors import UserError
from thbench.paths import REPO_ROOT
from thbench.specs import Kind

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)

# backend, voice (None: its default), text in the voice's language
VOICES = [
    ("piper", None, "Good morning. Today we compare talking head models, one sentence at a time."),
    ("espeak", "en", "Good morning. Today we compare talking head models, one sentence at a time."),
    ("espeak", "de", "Guten Morgen. Heute vergleichen wir sprechende Köpfe, Satz für Satz."),
    ("espeak", "fr", "Bonjour. Aujourd'hui nous comparons des modèles, une phrase à la fois."),
    ("espeak", "cmn", "早上好。今天我们一句一句地比较说话人头像模型。"),
    ("espeak", "ja", "おはようございます。今日はモデルを一文ずつ比べます。"),
    ("espeak", "ru", "Доброе утро. Сегодня мы сравниваем модели, по одному предложению."),
    ("espeak", "ar", "صباح الخير. اليوم نقارن النماذج جملة بجملة."),
    ("espeak", "hi", "सुप्रभात। आज हम मॉडलों की तुलना एक एक वाक्य से करते हैं।"),
]

FACE = REPO_ROOT / "assets" / "face.png"
BAD = [
    ("empty text", ["--text", "   "]),
    ("only punctuation", ["--text", "?!… -- ..."]),
    ("over the length limit", ["--text-file", "{long}"]),
    ("text file not UTF-8", ["--text-file", "{latin1}"]),
    ("--text and --text-file", ["--text", "Hi", "--text-file", "{latin1}"]),
    ("Chinese text, English voice", ["--text", "你好，今天天气很好。"]),
    ("Russian text, German eSpeak voice", ["--text", "Доброе утро.", "--tts", "espeak",
                                           "--voice", "de"]),
    ("unknown voice (typo)", ["--text", "Hallo.", "--voice", "de_DE-thorsten-mediun"]),
    ("speaker on a one-speaker voice", ["--text", "Hello.", "--speaker", "3"]),
    ("rate out of range", ["--text", "Hello.", "--rate", "9"]),
    ("rate not a number", ["--text", "Hello.", "--rate", "fast"]),
    ("negative sentence silence", ["--text", "Hello.", "--sentence-silence", "-1"]),
    ("unknown TTS backend", ["--text", "Hello.", "--tts", "festival"]),
    ("speech flags with --audio", ["--audio", "assets/speech-sample.m4a", "--voice", "de"]),
    ("XTTS (CPML) without consent", ["--text", "Hello.", "--tts", "coqui", "--voice",
                                     "tts_models/multilingual/multi-dataset/xtts_v2"]),
    ("XTTS accepted, no --language", ["--text", "Hello.", "--tts", "coqui", "--voice",
                                      "tts_models/multilingual/multi-dataset/xtts_v2",
                                      "--accept-model-license"]),
]


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coqui-model", type=Path, help="a local Coqui model folder to add")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def _speak(backend: str, voice: str | None, text: str, work: Path, use_cache: bool) -> dict:
    settings = speech.Settings(voice=voice, use_cache=use_cache)
    plan = speech.prepare(specs.get(Kind.TTS, backend), text, settings)
    name = f"{backend}-{(voice or 'default').replace('/', '_')}-{time.monotonic_ns()}"
    started = time.monotonic()
    record = speech.speak(plan, text, work / f"{name}.wav", work / f"{name}-work",
                          work / f"{name}.log")
    return {**record, "wall_s": time.monotonic() - started}


def voices_table(work: Path, extra: list) -> list[dict]:
    table = Table(title="(a) backends × voices, synthesised fresh")
    for column in ("backend", "voice", "language", "chars", "speech s", "synth s", "RTF",
                   "LUFS", "pieces"):
        table.add_column(column, justify="right" if column not in ("backend", "voice") else "left")
    rows = []
    for backend, voice, text in VOICES + extra:
        try:
            envs.require_ready(specs.get(Kind.TTS, backend))
            made = _speak(backend, voice, text, work, use_cache=False)
        except UserError as err:
            table.add_row(backend, str(voice), "–", str(len(text)), "not run: " + err.message,
                          "", "", "", "")
            continue
        rows.append({"backend": backend, "voice": made["voice"]["name"],
                     "language": made["language"], "characters": len(text),
                     "speech_s": made["seconds"], "synthesis_s": made["synthesis_seconds"],
                     "lufs": made["loudness"]["output_lufs"], "pieces": made["pieces"]})
        table.add_row(backend, made["voice"]["name"], made["language"] or "?", str(len(text)),
                      f"{made['seconds']:.2f}", f"{made['synthesis_seconds']:.2f}",
                      f"{made['synthesis_seconds'] / made['seconds']:.2f}",
                      f"{made['loudness']['output_lufs']:.2f}", str(made["pieces"]))
    console.print(table)
    return rows


def cache_table(work: Path) -> dict:
    text = "A cache hit is the same speech, made once: " + time.strftime("%H:%M:%S") + "."
    fresh = _speak("piper", None, text, work, use_cache=True)
    hit = _speak("piper", None, text, work, use_cache=True)
    table = Table(title="(b) the same request twice (piper, default voice)")
    for column in ("pass", "cache", "wall s", "key"):
        table.add_column(column)
    table.add_row("first", "hit" if fresh["cache"]["hit"] else "miss: synthesised",
                  f"{fresh['wall_s']:.3f}", fresh["cache"]["key"][:16])
    table.add_row("second", "hit" if hit["cache"]["hit"] else "miss", f"{hit['wall_s']:.3f}",
                  hit["cache"]["key"][:16])
    console.print(table)
    console.print(f"speed-up of the hit: {fresh['wall_s'] / hit['wall_s']:.0f}×")
    return {"fresh_s": fresh["wall_s"], "hit_s": hit["wall_s"], "hit": hit["cache"]["hit"]}


def bad_table(work: Path) -> list[dict]:
    long_text = work / "long.txt"
    long_text.write_text("This sentence is spoken many times over. " * 130, encoding="utf-8")
    latin1 = work / "latin1.txt"
    latin1.write_bytes("Grüße aus Köln.".encode("latin-1"))
    table = Table(title="(c) bad texts and settings: `uv run invoke run still --image assets/face.png …`")
    for column in ("input", "exit", "ERROR / TIP", "traceback"):
        table.add_column(column)
    rows = []
    for label, args in BAD:
        args = [a.format(long=long_text, latin1=latin1) for a in args]
        done = proc.run(["uv", "run", "invoke", "run", "still", "--image", str(FACE), *args,
                         "--outputs", str(work / "outputs")], cwd=REPO_ROOT, capture=True,
                        check=False, timeout=300)
        said = [line for line in done.stderr.splitlines() if line.startswith(("ERROR", "TIP"))]
        traceback = "Traceback" in done.stdout + done.stderr
        rows.append({"input": label, "exit": done.returncode, "said": said,
                     "traceback": traceback})
        table.add_row(label, str(done.returncode), "\n".join(said) or "(none)",
                      "yes" if traceback else "no")
    console.print(table)
    made = sorted(p.name for p in (work / "outputs").rglob("run.json"))
    console.print(f"run folders made by the bad inputs: {len(made)}")
    return rows


def main(argv: list[str]) -> int:
    options = _options(argv)
    extra = ([("coqui", str(options.coqui_model.resolve()), "Hello from a local Coqui model.")]
             if options.coqui_model else [])
    with tempfile.TemporaryDirectory(prefix="thb-speech-") as tmp:
        work = Path(tmp)
        os.environ["THB_CACHE_DIR"] = str(work / "cache")  # a cache of its own: (b) starts cold
        results = {"voices": voices_table(work, extra), "cache": cache_table(work),
                   "bad": bad_table(work)}
    if options.json:
        options.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
