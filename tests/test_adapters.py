"""The per-model adapters, run against stand-in upstream scripts that record what they get."""

from __future__ import annotations

import json
import sys
import wave
from array import array
from pathlib import Path

import pytest

from thbench import paths, proc

SOLUTIONS = paths.REPO_ROOT / "solutions"
RECORDER = """\
import json, sys
json.dump(sys.argv[1:], open({out!r}, "w"))
"""


def silent_wav(path: Path, frames: int = 1600) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * frames)
    return path


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_wav2lip_adapter_gives_a_dot_free_face_and_dithered_speech(tmp_path):
    repo = tmp_path / "my.checkout"  # a dot in the path is what breaks upstream
    repo.mkdir()
    seen = tmp_path / "argv.json"
    # The stand-in checks what upstream checks, and keeps copies of what it was given.
    (repo / "inference.py").write_text(
        "import json, shutil, sys\n"
        "face = sys.argv[sys.argv.index('--face') + 1]\n"
        "assert face.split('.')[1] in ['jpg', 'png', 'jpeg'], face\n"
        f"shutil.copy(sys.argv[sys.argv.index('--audio') + 1], {str(tmp_path / 'got.wav')!r})\n"
        f"json.dump(sys.argv[1:], open({str(seen)!r}, 'w'))\n")
    image = tmp_path / "a.b" / "input.png"
    image.parent.mkdir()
    image.write_bytes((paths.REPO_ROOT / "assets/face.png").read_bytes())
    audio = silent_wav(tmp_path / "speech.wav")
    proc.run([sys.executable, SOLUTIONS / "wav2lip/adapter.py", "--face", image, "--audio", audio,
              "--checkpoint_path", "ck.pth", "--outfile", tmp_path / "out.mp4"], cwd=repo)
    argv = json.loads(seen.read_text())
    assert option(argv, "--checkpoint_path") == "ck.pth"  # the rest passes through
    assert option(argv, "--outfile") == str(tmp_path / "out.mp4")
    with wave.open(str(tmp_path / "got.wav")) as wav:
        samples = array("h", wav.readframes(wav.getnframes()))
        assert wav.getframerate() == 16000
    # 0.1 s of speech + the 0.12 s tail that lets the video cover it; no exact silence left
    assert len(samples) == 1600 + 1920 and set(samples) == {-1, 1}


@pytest.mark.slow
def test_audio2head_adapter_crops_square_and_makes_results(tmp_path, ready_envs):
    python = ready_envs / "check-face" / "venv" / "bin" / "python"  # has cv2, as A2H's env
    repo = tmp_path / "repo"
    repo.mkdir()
    seen = tmp_path / "argv.json"
    (repo / "inference.py").write_text(RECORDER.format(out=str(seen)))
    image = tmp_path / "wide.png"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=400x300",
              "-frames:v", "1", image])
    work = tmp_path / "work"
    work.mkdir()
    audio = silent_wav(tmp_path / "speech.wav")
    proc.run([python, SOLUTIONS / "audio2head/adapter.py", "--image", image, "--audio", audio,
              "--work-dir", work, "--model-path", "m.pth.tar"], cwd=repo)
    argv = json.loads(seen.read_text())
    assert (repo / "results").is_dir()
    face = Path(option(argv, "--img_path"))
    assert face == work / "face.jpg"
    probe = proc.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                      "-of", "csv=p=0", face], capture=True).stdout.strip()
    assert probe == "256,256"
    assert option(argv, "--save_path") == str(work)


@pytest.mark.parametrize("succeed", [True, False])
def test_echomimic_adapter_writes_the_config_and_collects_the_video(tmp_path, succeed):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "infer_audio2vid.py").write_text(
        "import sys, pathlib, re\n"
        "config = pathlib.Path(sys.argv[sys.argv.index('--config') + 1]).read_text()\n"
        "assert 'test_cases:' in config and 'denoising_unet_path' in config\n"
        "out = pathlib.Path('output/20261121/1200--seed_420-512x512')\n"
        "out.mkdir(parents=True)\n"
        "(out / 'ref_a_512x512_2_1200.mp4').write_bytes(b'silent')\n"
        f"if {succeed}: (out / 'ref_a_512x512_2_1200_withaudio.mp4').write_bytes(b'video')\n")
    work = tmp_path / "work"
    work.mkdir()
    result = proc.run([sys.executable, SOLUTIONS / "echomimic/adapter.py", "--repo", repo,
                       "--image", tmp_path / "ref.png", "--audio", tmp_path / "a.wav",
                       "--work-dir", work], cwd=repo, check=False)
    config = (work / "echomimic.yaml").read_text()
    assert json.dumps(str(tmp_path / "ref.png")) + ":" in config
    assert f"- {json.dumps(str(tmp_path / 'a.wav'))}" in config
    if succeed:
        assert result.returncode == 0
        assert (work / "ref_a_512x512_2_1200_withaudio.mp4").read_bytes() == b"video"
    else:
        assert result.returncode == 1
    assert not list((repo / "output").glob("*/*/*.mp4"))  # moved out of the checkout
