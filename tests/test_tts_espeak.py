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


def say(espeak, tmp_path: Path, text: str, *extra: str, check: bool = True) -> proc.Completed:
    spec, python = espeak
    text_file = tmp_path / "text.txt"
    text_file.write_text(text, encoding="utf-8")
    argv = spec.command.expand({"python": str(python), "spec_dir": str(spec.folder),
                                "text_file": str(text_file), "audio": str(tmp_path / "out.wav")})
    return proc.run([*argv, *extra], timeout=60, capture=True, check=check)


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
    done = say(espeak, tmp_path, text, "--voice", voice)
    channels, bits, seconds, rms = wav_facts(tmp_path / "out.wav")
    assert (channels, bits) == (1, 16)
    assert 1.0 <= seconds <= 4.0, done.stdout
    assert rms > 0.02  # eSpeak speaks at ~0.1 of full scale; silence is 0


def test_voices_differ(espeak, tmp_path: Path) -> None:
    text = "你好，今天天气很好。"
    (tmp_path / "cmn").mkdir()
    (tmp_path / "en").mkdir()
    say(espeak, tmp_path / "cmn", text, "--voice", "cmn")
    say(espeak, tmp_path / "en", text, "--voice", "en")
    spoken = wav_facts(tmp_path / "cmn" / "out.wav")[2]
    spelled = wav_facts(tmp_path / "en" / "out.wav")[2]
    assert spelled > 1.5 * spoken  # the English voice names each character instead


def test_language_tag_finds_a_voice(espeak, tmp_path: Path) -> None:
    done = say(espeak, tmp_path, "你好", "--voice", "zh")
    assert "'sit/cmn'" in done.stdout


def test_unknown_voice_exits_2_naming_the_listing(espeak, tmp_path: Path) -> None:
    done = say(espeak, tmp_path, "hello", "--voice", "no-such-voice", check=False)
    assert done.returncode == 2
    assert "no voice 'no-such-voice'" in done.stderr and "--list-voices" in done.stderr
    assert not (tmp_path / "out.wav").exists()


def test_list_voices(espeak) -> None:
    spec, python = espeak
    done = proc.run([python, spec.folder / "say.py", "--list-voices"], timeout=60, capture=True)
    voices = [json.loads(line) for line in done.stdout.splitlines()]
    by_id = {voice["identifier"]: voice for voice in voices}
    assert len(voices) > 100
    assert by_id["gmw/de"]["languages"] == ["de"] and by_id["gmw/de"]["name"] == "German"
    assert "cmn" in by_id["sit/cmn"]["languages"]
    assert {voice["gender"] for voice in voices} <= {"male", "female", "none"}
