"""The whole chain on real parts: Piper speaks, `still` renders, ffmpeg checks; and every
input mistake ends in ERROR + TIP, a non-zero exit, no traceback and nothing left behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thbench import cli, envs, gpu, paths, proc, specs
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow
FACE = paths.REPO_ROOT / "assets" / "face.png"


@pytest.fixture
def outputs(tmp_path) -> Path:
    return tmp_path / "outputs"


def invoke(*args: str, envs_dir: Path, outputs: Path) -> subprocess.CompletedProcess[str]:
    """`invoke run …` exactly as a user types it (argv list: the text reaches no shell)."""
    env = dict(os.environ, THB_ENVS_DIR=str(envs_dir), THB_OUTPUTS_DIR=str(outputs))
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=paths.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def ffmpeg(*args: str | Path) -> None:
    proc.run(["ffmpeg", "-v", "error", "-y", *args])


def assert_clean_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR: ")]
    tips = [line for line in lines if line.startswith("TIP: ")]
    assert len(errors) == 1 and len(tips) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0] + "\n" + tips[0]


def test_smoke_chain_makes_a_checked_video(ready_envs, outputs, monkeypatch):
    """What `nox -s smoke` runs: the embedded default from text to a checked video."""
    monkeypatch.setenv("THB_ENVS_DIR", str(ready_envs))
    result = cli.demo(outputs)
    assert result.ok, result.record["failure"]
    run_dir = result.run_dir
    assert run_dir.parent == outputs / "still"
    names = {p.name for p in run_dir.iterdir()}
    assert {"input.png", "text.txt", "speech.wav", "video.mp4", "run.json", "logs"} <= names
    record = json.loads((run_dir / "run.json").read_text())
    assert record["schema"] == 1 and record["status"] == "ok" and record["baseline"] is True
    assert record["inputs"]["text"] == cli.DEMO_TEXT.read_text()
    assert record["inputs"]["face"]["faces"] >= 1
    assert record["env"]["identity"] and record["tts_env"]["packages"]["piper-tts"] == "1.8.0"
    assert set(record["stages"]) == {"prepare", "tts", "inference", "check"}
    assert all(stage["status"] == "ok" and stage["seconds"] >= 0
               for stage in record["stages"].values())
    checks = {item["name"]: item["ok"] for item in record["check"]["items"]}
    assert checks and all(checks.values()), checks
    assert {"decodes", "duration", "not_black"} <= set(checks)
    assert record["speech"]["seconds"] > 2  # Piper really spoke the sample sentence
    assert (run_dir / "logs" / "tts.log").read_text()


def test_text_is_data_never_shell(ready_envs, outputs, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    pwned = tmp_path / "pwned"
    text = (f'Say "hi" $(touch {pwned}) `touch {pwned}`; rm -rf {victim} && '
            "it's naïve — 日本語 too")
    result = invoke("run", "still", "--image", str(FACE), "--text", text,
                    envs_dir=ready_envs, outputs=outputs)
    assert result.returncode == 0, result.stderr
    assert not pwned.exists() and victim.is_dir()
    (run_dir,) = (outputs / "still").iterdir()
    assert (run_dir / "text.txt").read_text(encoding="utf-8") == text + "\n"
    assert json.loads((run_dir / "run.json").read_text())["inputs"]["text"] == text


def test_user_audio_skips_tts_and_runs_never_overwrite(ready_envs, outputs, tmp_path):
    audio = tmp_path / "speech.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=2", audio)
    first = invoke("run", "still", "--image", str(FACE), "--audio", str(audio),
                   envs_dir=ready_envs, outputs=outputs)
    assert first.returncode == 0, first.stderr
    (run_a,) = (outputs / "still").iterdir()
    digest = hashlib.sha256((run_a / "video.mp4").read_bytes()).hexdigest()
    record = json.loads((run_a / "run.json").read_text())
    assert record["inputs"]["tts"] is None and "audio" in record["stages"]
    assert abs(record["speech"]["seconds"] - 2.0) < 0.05
    second = invoke("run", "still", "--image", str(FACE), "--audio", str(audio),
                    envs_dir=ready_envs, outputs=outputs)
    assert second.returncode == 0, second.stderr
    assert len(list((outputs / "still").iterdir())) == 2
    assert hashlib.sha256((run_a / "video.mp4").read_bytes()).hexdigest() == digest


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    not_image = folder / "notes.png"
    not_image.write_text("this is not a picture\n")
    not_audio = folder / "notes.wav"
    not_audio.write_text("this is not a sound\n")
    no_face = folder / "pattern.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", no_face)
    audio = folder / "ok.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", audio)
    read_only_parent = folder / "a-file"
    read_only_parent.write_text("")
    return {"not_image": not_image, "not_audio": not_audio, "no_face": no_face, "audio": audio,
            "unwritable": read_only_parent / "outputs"}


BAD_INPUTS = {
    "missing image": (["--image", "{missing}", "--text", "hi"], ["does not exist"]),
    "no --image": (["--text", "hi"], ["no --image"]),
    "not an image": (["--image", "{not_image}", "--text", "hi"], ["not an image"]),
    "no face": (["--image", "{no_face}", "--text", "hi"], ["no face"]),
    "empty text": (["--image", "{face}", "--text", ""], ["empty"]),
    "whitespace text": (["--image", "{face}", "--text", "  \n\t "], ["empty"]),
    "text and audio": (["--image", "{face}", "--text", "hi", "--audio", "{audio}"], ["not both"]),
    "neither text nor audio": (["--image", "{face}"], ["--text or --audio"]),
    "audio not audio": (["--image", "{face}", "--audio", "{not_audio}"], ["not audio"]),
    "unknown tts": (["--image", "{face}", "--text", "hi", "--tts", "pipr"], ["'piper'"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gets_error_and_tip(case, ready_envs, outputs, bad_files, tmp_path):
    args, words = BAD_INPUTS[case]
    values = {k: str(v) for k, v in bad_files.items()} | {
        "missing": str(tmp_path / "nope.png"), "face": str(FACE)}
    result = invoke("run", "still", *[a.format(**values) for a in args],
                    envs_dir=ready_envs, outputs=outputs)
    assert_clean_error(result, *words)
    assert not outputs.exists(), "a mistake must leave nothing behind"


def test_unknown_model_suggests_closest(ready_envs, outputs):
    result = invoke("run", "sadtalkr", "--image", str(FACE), "--text", "hi",
                    envs_dir=ready_envs, outputs=outputs)
    shown = assert_clean_error(result, "unknown model 'sadtalkr'", "did you mean 'sadtalker'")
    assert "TIP: run the same command with sadtalker" in shown


def test_model_not_set_up_names_the_setup_command(tmp_path, outputs):
    result = invoke("run", "still", "--image", str(FACE), "--text", "hi",
                    envs_dir=tmp_path / "empty-envs", outputs=outputs)
    shown = assert_clean_error(result, "model 'still' is not set up")
    assert "TIP: run `uv run nox -s setup-still`" in shown


def test_unwritable_output_folder(ready_envs, bad_files):
    result = invoke("run", "still", "--image", str(FACE), "--text", "hi",
                    envs_dir=ready_envs, outputs=bad_files["unwritable"])
    shown = assert_clean_error(result, "cannot write run folders")
    assert "--outputs DIR" in shown


@pytest.mark.skipif(bool(gpu.detect()), reason="this machine has an NVIDIA GPU")
def test_gpu_only_model_refuses_before_asking_for_setup(tmp_path, outputs):
    result = invoke("run", "echomimic", "--image", str(FACE), "--text", "hi",
                    envs_dir=tmp_path / "empty-envs", outputs=outputs)
    shown = assert_clean_error(result, "'echomimic' needs an NVIDIA GPU")
    assert "setup" not in shown


def test_text_file_with_an_espeak_voice_then_the_speech_cache(ready_envs, outputs, tmp_path,
                                                              monkeypatch):
    with envs_dir(ready_envs):
        envs.setup(specs.get(Kind.TTS, "espeak"))
    monkeypatch.setenv("THB_CACHE_DIR", str(tmp_path / "cache"))
    text = tmp_path / "rede.txt"
    text.write_text("Guten Morgen. Heute ist ein schöner Tag!\nWie geht es Ihnen?\n",
                    encoding="utf-8")
    args = ("run", "still", "--image", str(FACE), "--text-file", str(text), "--tts", "espeak",
            "--voice", "de", "--sentence-silence", "0.5")
    first = invoke(*args, envs_dir=ready_envs, outputs=outputs)
    assert first.returncode == 0, first.stderr
    second = invoke(*args, envs_dir=ready_envs, outputs=outputs)
    assert second.returncode == 0, second.stderr
    made = [json.loads((run / "run.json").read_text())["speech"]["made"]
            for run in sorted((outputs / "still").iterdir())]
    assert [m["cache"]["hit"] for m in made] == [False, True]
    assert made[0]["voice"]["name"] == "gmw/de" and made[0]["pieces"] == 3
    assert made[0]["settings"]["sentence_silence"] == 0.5
    assert made[0]["loudness"]["within_tolerance"]
    assert made[0]["sha256"] == made[1]["sha256"]


def test_speech_flags_with_audio_are_a_mistake(ready_envs, outputs, tmp_path):
    audio = tmp_path / "speech.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=1", audio)
    result = invoke("run", "still", "--image", str(FACE), "--audio", str(audio), "--voice", "de",
                    "--rate", "1.2", envs_dir=ready_envs, outputs=outputs)
    shown = assert_clean_error(result, "--voice, --rate shape speech made from text")
    assert "--text instead of --audio" in shown and not outputs.exists()
