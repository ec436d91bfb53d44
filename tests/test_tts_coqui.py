"""The Coqui backend for real: its env built from the lock, tiny randomly initialised VITS models
made with Coqui's own classes in that env (tests/coqui_tiny.py), spoken through say.py's
request contract; a named model fetched from a loopback GitHub stand-in; the licence gate."""

from __future__ import annotations

import array
import io
import json
import math
import time
import wave
import zipfile
from pathlib import Path

import pytest

from thbench import envs, proc, specs
from thbench.errors import UserError
from thbench.specs import Kind

from .conftest import envs_dir
from .weight_server import hermetic_env, serving

pytestmark = pytest.mark.slow

TINY = Path(__file__).with_name("coqui_tiny.py")
VITS = "tts_models/en/ljspeech/vits"
VITS_ZIP = "/coqui-ai/TTS/releases/download/v0.6.1_models/tts_models--en--ljspeech--vits.zip"
XTTS = "tts_models/multilingual/multi-dataset/xtts_v2"
CONSENT = "COQUI_TOS_AGREED"
TWO = ["Hello there, this is a test.", "A second sentence follows it."]


@pytest.fixture(scope="module")
def coqui(tmp_path_factory) -> dict:
    """The coqui spec, its env's interpreter and two tiny models (one and two speakers)."""
    spec = specs.get(Kind.TTS, "coqui")
    with envs_dir(tmp_path_factory.mktemp("envs")):
        envs.setup(spec)
        python = envs.require_ready(spec).python
    models = tmp_path_factory.mktemp("models")
    proc.run([python, TINY, models / "one"], timeout=300)
    proc.run([python, TINY, models / "two", "--speakers", "alice,bob"], timeout=300)
    proc.run([python, TINY, models / "tacotron2", "--tacotron2"], timeout=300)
    return {"spec": spec, "python": python, **{name: models / name
                                               for name in ("one", "two", "tacotron2")}}


def say(coqui, tmp_path: Path, *, env: dict | None = None, unset: tuple = (CONSENT,),
        **request) -> proc.Completed:
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    out.mkdir()
    body = {"schema": 1, "pieces": TWO, "out_dir": str(out), "voice": None, "voice_files": None,
            "speaker": None, "rate": 1.0, "device": "cpu", "cache_dir": str(tmp_path / "cache"),
            **request}
    file = out.with_suffix(".json")
    file.write_text(json.dumps(body), encoding="utf-8")
    argv = coqui["spec"].command.expand({"python": str(coqui["python"]),
                                         "spec_dir": str(coqui["spec"].folder),
                                         "request": str(file)})
    done = proc.run(argv, env=env, unset_env=unset, timeout=300, capture=True, check=False)
    return done


def wavs(done: proc.Completed) -> list[tuple[int, int, int, int, float]]:
    """(channels, bits, rate, frames, RMS as a fraction of full scale) of each WAV written."""
    request = json.loads(Path(done.argv[-1]).read_text(encoding="utf-8"))
    found = []
    for path in sorted(Path(request["out_dir"]).iterdir()):
        with wave.open(str(path)) as wav:
            samples = array.array("h", wav.readframes(wav.getnframes()))
            rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
            found.append((wav.getnchannels(), wav.getsampwidth() * 8, wav.getframerate(),
                          wav.getnframes(), rms))
    return found


def test_local_folder_speaks_each_piece(coqui, tmp_path: Path) -> None:
    done = say(coqui, tmp_path, voice_files={"model_dir": str(coqui["one"])})
    assert done.returncode == 0, done.stderr
    made = wavs(done)
    assert [w[:3] for w in made] == [(1, 16, 16000)] * 2  # the tiny config's own sample rate
    assert all(w[3] > 0.3 * 16000 and w[4] > 0.005 for w in made), made


def test_voice_as_a_path_and_rate(coqui, tmp_path: Path) -> None:
    plain = say(coqui, tmp_path, voice=str(coqui["one"]), pieces=TWO[:1])
    fast = say(coqui, tmp_path, voice=str(coqui["one"]), pieces=TWO[:1], rate=2.0)
    assert plain.returncode == fast.returncode == 0, plain.stderr + fast.stderr
    # VITS scales its predicted durations by 1/rate (rounded up per token, hence not half).
    assert wavs(fast)[0][3] < 0.9 * wavs(plain)[0][3]


def test_no_rate_control_is_refused(coqui, tmp_path: Path) -> None:
    done = say(coqui, tmp_path, voice=str(coqui["tacotron2"]), rate=1.5)
    assert done.returncode == 2
    assert "say.py: Coqui has no speaking-rate control for this model (Tacotron2" in done.stderr
    assert not wavs(done)


def test_phoneme_model_without_espeak_is_refused(coqui, tmp_path: Path) -> None:
    folder = tmp_path / "phonemes"
    folder.mkdir()
    (folder / "model.pth").symlink_to(coqui["one"] / "model.pth")
    config = json.loads((coqui["one"] / "config.json").read_text(encoding="utf-8"))
    # Only the config is read before the refusal; a phoneme model's own config says this.
    config.update(use_phonemes=True, phonemizer="espeak", phoneme_language="en-us")
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    done = say(coqui, tmp_path, voice=str(folder), env={"PATH": str(tmp_path / "no-programs")})
    assert done.returncode == 2
    assert "the espeak-ng program, which is not installed" in done.stderr


def test_speakers(coqui, tmp_path: Path) -> None:
    by_name = say(coqui, tmp_path, voice=str(coqui["two"]), pieces=TWO[:1], speaker="bob")
    by_index = say(coqui, tmp_path, voice=str(coqui["two"]), pieces=TWO[:1], speaker="1")
    assert by_name.returncode == by_index.returncode == 0, by_name.stderr + by_index.stderr
    unknown = say(coqui, tmp_path, voice=str(coqui["two"]), speaker="carol")
    assert unknown.returncode == 2
    assert "say.py: this model has no speaker 'carol' (2 speakers: alice, bob" in unknown.stderr
    single = say(coqui, tmp_path, voice=str(coqui["one"]), speaker="bob")
    assert single.returncode == 2 and "has one speaker" in single.stderr


def _zip_of(folder: Path) -> bytes:
    """A release zip as Coqui's ModelManager unpacks it: files in one top folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(folder / "config.json", "tts_models--en--ljspeech--vits/config.json")
        archive.write(folder / "model.pth", "tts_models--en--ljspeech--vits/model_file.pth")
    return buffer.getvalue()


def test_named_model_downloads_through_the_mirror(coqui, tmp_path: Path, monkeypatch) -> None:
    hermetic_env(monkeypatch)
    cache = tmp_path / "cache"
    half = cache / "tts" / "tts_models--en--ljspeech--vits"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{", encoding="utf-8")  # a download cut short earlier
    with serving() as standin:
        standin.serve(VITS_ZIP, _zip_of(coqui["one"]))
        mirror = {"THB_GITHUB_MIRROR": standin.base + "/"}
        first = say(coqui, tmp_path, voice=VITS, env=mirror)
        again = say(coqui, tmp_path, voice=VITS, env=mirror, pieces=TWO[:1])
        fetched = [s for s in standin.log(VITS_ZIP) if s.method == "GET"]
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert len(wavs(first)) == 2 and len(wavs(again)) == 1
    assert len(fetched) == 1  # the second run speaks from the cache
    assert (half / "model_file.pth").is_file() and (half / ".thbench-complete").is_file()
    voices = proc.run([coqui["python"], coqui["spec"].folder / "say.py", "--voices-json"],
                      env={"THB_COQUI_HOME": str(cache)}, capture=True, timeout=60)
    assert {v["name"]: v["installed"] for v in json.loads(voices.stdout)}[VITS] is True


def test_licence_gate_refuses_without_consent(coqui, tmp_path: Path, monkeypatch) -> None:
    hermetic_env(monkeypatch)
    with serving() as standin:
        hosts = {"THB_GITHUB_MIRROR": standin.base + "/", "HF_ENDPOINT": standin.base}
        start = time.monotonic()
        xtts = say(coqui, tmp_path, voice=XTTS, env=hosts)
        your_tts = say(coqui, tmp_path, voice="tts_models/multilingual/multi-dataset/your_tts",
                       env=hosts)
        took = time.monotonic() - start
        asked = standin.log()
    assert xtts.returncode == 2 and your_tts.returncode == 2
    assert xtts.stderr.strip().splitlines() == [
        f"say.py: {XTTS} is under the non-commercial licence CPML, which needs your explicit "
        f"acceptance: pass --accept-model-license (or set {CONSENT}=1) to accept it"]
    assert "CC BY-NC-ND 4.0" in your_tts.stderr
    assert asked == [] and not (tmp_path / "cache").exists()  # nothing fetched, nothing made
    assert took < 20  # refused before torch is even imported; never waits on stdin


def test_licence_gate_passes_with_consent(coqui, tmp_path: Path, monkeypatch) -> None:
    hermetic_env(monkeypatch)
    with serving() as standin:  # serves nothing: the Hub answers 404
        done = say(coqui, tmp_path, voice=XTTS, unset=(),
                   env={CONSENT: "1", "HF_ENDPOINT": standin.base})
        asked = [s.path for s in standin.log()]
    assert done.returncode == 1, done.stderr
    assert "needs your explicit acceptance" not in done.stderr
    assert f"say.py: could not download {XTTS} from tts-hub/XTTS-v2" in done.stderr
    assert any(path.startswith("/api/models/tts-hub/XTTS-v2") for path in asked), asked


def test_unknown_model(coqui, tmp_path: Path) -> None:
    done = say(coqui, tmp_path, voice="tts_models/en/ljspeech/nope")
    assert done.returncode == 2
    assert "say.py: Coqui has no TTS model 'tts_models/en/ljspeech/nope'" in done.stderr


def test_voices_json(coqui) -> None:
    started = time.monotonic()
    done = proc.run([coqui["python"], coqui["spec"].folder / "say.py", "--voices-json"],
                    capture=True, timeout=60, unset_env=("THB_COQUI_HOME",))
    listed = {v["name"]: v for v in json.loads(done.stdout)}
    assert time.monotonic() - started < 10  # no torch import
    assert listed[VITS]["language"] == "en" and listed[VITS]["license"] == "apache 2.0"
    assert listed[XTTS]["tos_required"] is True and listed[XTTS]["license"] == "CPML"
    assert listed[XTTS]["language"] == "multilingual"
    assert not any(name.startswith("vocoder_models/") for name in listed)
    assert all(not v["installed"] for v in listed.values())


def test_through_the_orchestrator_consent_language_and_a_local_model(coqui, tmp_path,
                                                                      monkeypatch):
    """thbench.speech on the real env: the licence gate and --language come before anything is
    made; a local model folder is spoken, joined and normalised."""
    from thbench import speech

    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    envs_root = Path(coqui["python"]).parents[3]
    xtts = "tts_models/multilingual/multi-dataset/xtts_v2"
    with envs_dir(envs_root):
        with pytest.raises(UserError) as refused:
            speech.prepare(coqui["spec"], "Hello.", speech.Settings(voice=xtts))
        assert "CPML" in refused.value.message and "--accept-model-license" in refused.value.tip
        accepted = speech.Settings(voice=xtts, accept_license=True)
        with pytest.raises(UserError) as unsaid:
            speech.prepare(coqui["spec"], "Hello.", accepted)
        assert "--language" in unsaid.value.tip
        with pytest.raises(UserError) as mismatch:
            speech.prepare(coqui["spec"], "你好，今天天气很好。",
                           speech.Settings(voice=xtts, accept_license=True, language="en"))
        assert "Han" in mismatch.value.message
        plan = speech.prepare(coqui["spec"], "One sentence. And another one.",
                              speech.Settings(voice=str(coqui["one"])))
        record = speech.speak(plan, "One sentence. And another one.", tmp_path / "out.wav",
                              tmp_path / "work", tmp_path / "tts.log")
    assert record["voice"]["local"] == str(coqui["one"]) and record["pieces"] == 2
    assert record["loudness"]["within_tolerance"] and record["sample_rate"] == 16000
