"""The eSpeak NG backend for real: its env built from the lock, say.py speaking German and
Mandarin through the library the espeakng-loader wheel ships."""

from __future__ import annotations

import array
import json
import math
import wave
from pathlib import Path

import pytest

from thbench import envs, proc, specs
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def espeak(tmp_path_factory) -> tuple[specs.Spec, Path]:
    """The espeak spec and its env's interpreter, built once in a folder of its own."""
    spec = specs.get(Kind.TTS, "espeak")
    with envs_dir(tmp_path_factory.mktemp("envs")):
        envs.setup(spec)
        python = envs.require_ready(spec).python
    return spec, python


def say(espeak, tmp_path: Path, text: str, voice: str | None = None, *, check: bool = True,
        **extra) -> proc.Completed:
    """say.py on a request of one piece; its WAV is tmp_path/pieces/0000.wav."""
    spec, python = espeak
    (tmp_path / "pieces").mkdir()
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"schema": 1, "pieces": [text], "out_dir": str(tmp_path / "pieces"),
                                   "voice": voice, "voice_files": None, "speaker": None,
                                   "rate": 1.0, "device": "cpu", "cache_dir": None, **extra}),
                       encoding="utf-8")
    argv = spec.command.expand({"python": str(python), "spec_dir": str(spec.folder),
                                "request": str(request)})
    return proc.run(argv, timeout=60, capture=True, check=check)


def wav_facts(path: Path) -> tuple[int, int, float, float]:
    """Channels, bits per sample, seconds, and RMS as a fraction of full scale."""
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        channels, bits = wav.getnchannels(), wav.getsampwidth() * 8
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768
    return channels, bits, seconds, rms


@pytest.mark.parametrize(("voice", "text"), [
    ("de", "Guten Tag, wie geht es Ihnen?"),
    # Ten Han characters: spoken Mandarin is ~2.5 s; an English voice spelling each one as
    # "Chinese letter" takes ~5.7 s, so the upper bound tells speech from spelling.
    ("cmn", "你好，今天天气很好。"),
])
def test_speaks_the_language(espeak, tmp_path: Path, voice: str, text: str) -> None:
    done = say(espeak, tmp_path, text, voice)
    channels, bits, seconds, rms = wav_facts(tmp_path / "pieces" / "0000.wav")
    assert (channels, bits) == (1, 16)
    assert 1.0 <= seconds <= 4.0, done.stdout
    assert rms > 0.02  # eSpeak speaks at ~0.1 of full scale; silence is 0


def test_voices_differ(espeak, tmp_path: Path) -> None:
    text = "你好，今天天气很好。"
    (tmp_path / "cmn").mkdir()
    (tmp_path / "en").mkdir()
    say(espeak, tmp_path / "cmn", text, "cmn")
    say(espeak, tmp_path / "en", text, "en")
    spoken = wav_facts(tmp_path / "cmn" / "pieces" / "0000.wav")[2]
    spelled = wav_facts(tmp_path / "en" / "pieces" / "0000.wav")[2]
    assert spelled > 1.5 * spoken  # the English voice names each character instead


def test_language_tag_finds_a_voice(espeak, tmp_path: Path) -> None:
    done = say(espeak, tmp_path, "你好", "zh")
    assert "'sit/cmn'" in done.stdout


def test_unknown_voice_exits_2_naming_the_listing(espeak, tmp_path: Path) -> None:
    done = say(espeak, tmp_path, "hello", "no-such-voice", check=False)
    assert done.returncode == 2
    assert "no voice 'no-such-voice'" in done.stderr and "invoke voices" in done.stderr
    assert not list((tmp_path / "pieces").iterdir())


def test_rate_scales_the_words_per_minute(espeak, tmp_path: Path) -> None:
    text = "The quick brown fox jumps over the lazy dog, twice over."
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    say(espeak, tmp_path / "slow", text, "en", rate=0.75)
    say(espeak, tmp_path / "fast", text, "en", rate=1.5)
    slow = wav_facts(tmp_path / "slow" / "pieces" / "0000.wav")[2]
    fast = wav_facts(tmp_path / "fast" / "pieces" / "0000.wav")[2]
    assert slow > 1.5 * fast


def test_voices_json(espeak) -> None:
    spec, python = espeak
    argv = [a.replace("{python}", str(python)).replace("{spec_dir}", str(spec.folder))
            for a in spec.command.voices]
    voices = json.loads(proc.run(argv, timeout=60, capture=True).stdout)
    by_name = {voice["name"]: voice for voice in voices}
    assert len(voices) > 100
    assert by_name["gmw/de"]["language"] == "de" and "German" in by_name["gmw/de"]["aliases"]
    assert "zh" in by_name["sit/cmn"]["aliases"]
    assert all(v["installed"] and not v["tos_required"] for v in voices)
