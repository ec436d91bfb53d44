"""The speech cache: keys, lookups, and that a half-written entry is never served."""

from __future__ import annotations

import json
from pathlib import Path

from thbench import speech_cache
from thbench.files import sha256_file


def entry(tmp_path: Path, data: bytes = b"RIFF fake wav bytes") -> Path:
    wav = tmp_path / "made.wav"
    wav.write_bytes(data)
    return wav


def test_a_stored_entry_is_served_with_its_record(tmp_path):
    wav, root = entry(tmp_path), tmp_path / "cache"
    key = speech_cache.key({"text": "hello", "voice": "a"})
    speech_cache.store(key, wav, {"sha256": sha256_file(wav), "seconds": 1.0}, root)
    cached, record = speech_cache.lookup(key, root)
    assert cached.read_bytes() == wav.read_bytes() and record["seconds"] == 1.0


def test_every_part_of_the_key_matters():
    base = {"text": "hello", "voice": "a", "rate": 1.0}
    keys = {speech_cache.key(base), speech_cache.key({**base, "text": "hello!"}),
            speech_cache.key({**base, "voice": "b"}), speech_cache.key({**base, "rate": 1.1})}
    assert len(keys) == 4
    assert speech_cache.key(dict(reversed(base.items()))) == speech_cache.key(base)


def test_a_half_written_wav_is_not_served(tmp_path):
    wav, root = entry(tmp_path), tmp_path / "cache"
    key = speech_cache.key({"text": "hello"})
    cached = speech_cache.store(key, wav, {"sha256": sha256_file(wav)}, root)
    cached.write_bytes(wav.read_bytes()[:5])  # as if a crash cut the copy short
    assert speech_cache.lookup(key, root) is None


def test_a_wav_without_its_record_is_not_served(tmp_path):
    wav, root = entry(tmp_path), tmp_path / "cache"
    key = speech_cache.key({"text": "hello"})
    cached = speech_cache.store(key, wav, {"sha256": sha256_file(wav)}, root)
    cached.with_suffix(".json").unlink()  # the crash came between the WAV and its record
    assert speech_cache.lookup(key, root) is None
    cached.with_suffix(".json").write_text("{ half a rec", encoding="utf-8")
    assert speech_cache.lookup(key, root) is None


def test_a_crash_mid_copy_leaves_no_entry(tmp_path, monkeypatch):
    wav, root = entry(tmp_path), tmp_path / "cache"
    key = speech_cache.key({"text": "hello"})

    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(speech_cache.os, "fsync", crash)
    try:
        speech_cache.store(key, wav, {"sha256": sha256_file(wav)}, root)
    except OSError:
        pass
    assert speech_cache.lookup(key, root) is None
    assert not [p for p in root.rglob("*") if p.is_file()]  # no partial left behind


def test_a_newer_store_replaces_an_entry_whole(tmp_path):
    root = tmp_path / "cache"
    key = speech_cache.key({"text": "hello"})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = entry(tmp_path / "a"), entry(tmp_path / "b", b"RIFF other bytes")
    speech_cache.store(key, first, {"sha256": sha256_file(first)}, root)
    speech_cache.store(key, second, {"sha256": sha256_file(second)}, root)
    cached, record = speech_cache.lookup(key, root)
    assert cached.read_bytes() == b"RIFF other bytes"
    assert json.loads(cached.with_suffix(".json").read_text())["sha256"] == record["sha256"]


def test_the_speech_key_follows_every_setting_and_the_backend(tmp_path):
    """speech.cache_key on real plans: each thing that shapes the audio changes the key."""
    from dataclasses import replace

    from thbench import envs, specs, speech, voices
    from thbench.specs import Kind

    piper = specs.get(Kind.TTS, "piper")
    base = speech.Plan(piper, envs.Env.of(piper), voices.Voice("piper", "en_US-joe-medium", "en_US"),
                       speech.Settings())
    pieces = ["Hello there."]
    variants = [
        base,
        replace(base, settings=speech.Settings(speaker="1")),
        replace(base, settings=speech.Settings(rate=1.2)),
        replace(base, settings=speech.Settings(sentence_silence=0.5)),
        replace(base, settings=speech.Settings(language="en")),
        replace(base, voice=voices.Voice("piper", "en_US-lessac-medium", "en_US")),
        replace(base, env=envs.Env(replace(piper, python="3.12"), tmp_path)),  # another env
    ]
    espeak = specs.get(Kind.TTS, "espeak")
    variants.append(speech.Plan(espeak, envs.Env.of(espeak), voices.Voice("espeak", "gmw/en", "en"),
                                speech.Settings()))
    keys = [speech.cache_key(plan, pieces) for plan in variants]
    assert len(set(keys)) == len(keys)
    assert speech.cache_key(base, ["Hello there!"]) != keys[0]
    # What does not shape the audio does not change the key.
    assert speech.cache_key(replace(base, settings=speech.Settings(use_cache=False)), pieces) == keys[0]


def test_a_hit_is_copied_out_only_when_its_bytes_are_the_recorded_ones(tmp_path):
    wav, root = entry(tmp_path), tmp_path / "cache"
    key = speech_cache.key({"text": "hello"})
    cached = speech_cache.store(key, wav, {"sha256": sha256_file(wav)}, root)
    assert speech_cache.copy_out(cached, sha256_file(wav), tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == wav.read_bytes()
    # Another process stored the same key meanwhile (other bytes): no file is put in place.
    assert not speech_cache.copy_out(cached, "0" * 64, tmp_path / "other.wav")
    assert not (tmp_path / "other.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "made.wav", "out.wav"]
