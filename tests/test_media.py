"""thbench.media on files made by real ffmpeg: what it accepts, and what each mistake says."""

from __future__ import annotations

import os
import sys
import types
import wave
from pathlib import Path

import pytest

from thbench import media, proc
from thbench.errors import UserError


def ffmpeg(*args: str | Path) -> Path:
    proc.run(["ffmpeg", "-v", "error", "-y", *args], timeout=120)
    return Path(args[-1])


def picture(path: Path, size: str = "128x96") -> Path:
    return ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}", "-frames:v", "1", path)


def tone(path: Path, *args: str, seconds: float = 2.0, rate: int = 16000) -> Path:
    return ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}",
                  *args, path)


def text_file(path: Path) -> Path:
    path.write_text("this is not media\n")
    return path


def user_error(func, *args) -> UserError:
    with pytest.raises(UserError) as caught:
        func(*args)
    assert type(caught.value) is UserError  # not a CommandFailed with a command line in it
    return caught.value


# --- finding the binaries ------------------------------------------------------------------------

@pytest.fixture
def no_tools_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import` now raises ImportError


def test_missing_ffmpeg_and_ffprobe_tell_how_to_install(no_tools_on_path):
    for find, name in ((media.ffmpeg, "ffmpeg"), (media.ffprobe, "ffprobe")):
        err = user_error(find)
        assert err.message == f"{name} not found on PATH" and err.tip == media.INSTALL_TIP


def test_ffmpeg_falls_back_to_imageio_ffmpeg(no_tools_on_path, monkeypatch):
    fake = types.SimpleNamespace(get_ffmpeg_exe=lambda: "/opt/imageio/ffmpeg-bundled")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", fake)
    assert media.ffmpeg() == "/opt/imageio/ffmpeg-bundled"


def test_ffmpeg_version_is_the_version_word():
    first = proc.run(["ffmpeg", "-version"], capture=True).stdout.splitlines()[0]
    version = media.ffmpeg_version()
    assert first.startswith(f"ffmpeg version {version} ") and version[0].isdigit()


# --- images --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "codec"), [("face.png", "png"), ("face.jpg", "mjpeg")])
def test_png_and_jpeg_are_images(tmp_path, name, codec):
    assert media.validate_image(picture(tmp_path / name)) == media.ImageInfo(128, 96, codec)


def test_a_name_starting_with_a_dash_is_a_file_not_an_option(tmp_path, monkeypatch):
    picture(tmp_path / "-i.png")
    monkeypatch.chdir(tmp_path)
    assert media.validate_image(Path("-i.png")).codec == "png"


def test_a_text_file_named_png_is_not_an_image(tmp_path):
    path = text_file(tmp_path / "face.png")
    err = user_error(media.validate_image, path)
    assert str(path) in err.message and "is not an image" in err.message
    assert "ffmpeg -i" in err.tip


def test_a_video_is_not_an_image(tmp_path):
    video = ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x96:duration=1", "-c:v", "mjpeg",
                   tmp_path / "clip.avi")
    err = user_error(media.validate_image, video)
    assert "is not an image" in err.message and "avi" in err.message


def test_a_missing_image_says_it_does_not_exist(tmp_path):
    err = user_error(media.validate_image, tmp_path / "nope.png")
    assert err.message.endswith("nope.png does not exist") and err.tip.startswith("check the path")


def test_a_directory_is_not_an_image(tmp_path):
    err = user_error(media.validate_image, tmp_path)
    assert "is a directory" in err.message and "ls" in err.tip


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_image_says_so(tmp_path):
    path = picture(tmp_path / "face.png")
    path.chmod(0)
    err = user_error(media.validate_image, path)
    assert "is not readable" in err.message and "chmod" in err.tip


@pytest.mark.parametrize("size", ["32x96", "4100x64"])
def test_absurd_sizes_are_refused_with_the_limits(tmp_path, size):
    err = user_error(media.validate_image, picture(tmp_path / "face.png", size))
    assert f"is {size} pixels" in err.message and "between 64 and 4096" in err.message
    assert "scale=" in err.tip


# --- audio ---------------------------------------------------------------------------------------

def test_a_wav_is_audio(tmp_path):
    info = media.validate_audio(tone(tmp_path / "hello.wav"))
    assert info == media.AudioInfo(pytest.approx(2.0), 16000, 1, "pcm_s16le")


def test_an_mp3_is_audio(tmp_path):
    info = media.validate_audio(tone(tmp_path / "hello.mp3", "-ac", "2", rate=44100))
    assert (info.codec, info.sample_rate, info.channels) == ("mp3", 44100, 2)
    assert info.duration == pytest.approx(2.0, abs=0.1)  # mp3 pads a few ms


def test_silence_is_still_valid_audio(tmp_path):
    path = ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1.5",
                  tmp_path / "quiet.wav")
    assert media.validate_audio(path).duration == pytest.approx(1.5)


def test_a_text_file_named_wav_is_not_audio(tmp_path):
    path = text_file(tmp_path / "hello.wav")
    err = user_error(media.validate_audio, path)
    assert f"{path} is not audio (ffprobe: Invalid data" in err.message
    assert "ffmpeg -i" in err.tip


def test_a_wav_with_no_samples_is_refused(tmp_path):
    path = ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0",
                  tmp_path / "empty.wav")
    err = user_error(media.validate_audio, path)
    assert "empty" in err.message and "--text" in err.tip


def test_a_video_without_sound_is_not_audio(tmp_path):
    video = ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x96:duration=1", tmp_path / "mute.mp4")
    err = user_error(media.validate_audio, video)
    assert "has no audio stream" in err.message and "video/" in err.message


def test_audio_over_the_limit_is_refused_with_a_trim_command(tmp_path):
    path = tone(tmp_path / "long.wav", seconds=3.0)
    err = user_error(media.validate_audio, path, 2.5)
    assert "3.0 s long; the limit is 2.5 s" in err.message and "-t 2.5" in err.tip
    assert media.validate_audio(path, 3.5).duration == pytest.approx(3.0)


def test_missing_audio_and_a_directory_are_refused(tmp_path):
    assert "does not exist" in user_error(media.validate_audio, tmp_path / "x.wav").message
    assert "is a directory" in user_error(media.validate_audio, tmp_path).message


# --- speech.wav ----------------------------------------------------------------------------------

def read_wav(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate()


def test_to_wav_makes_mono_16_bit_at_the_source_rate(tmp_path):
    src = tone(tmp_path / "in.mp3", "-ac", "2", rate=44100)
    dst = media.to_wav(src, tmp_path / "speech.wav")
    assert read_wav(dst) == (1, 2, 44100)
    assert media.wav_duration(dst) == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp3", "speech.wav"]  # no partial


def test_to_wav_resamples_when_asked(tmp_path):
    dst = media.to_wav(tone(tmp_path / "in.wav", rate=44100), tmp_path / "speech.wav",
                       sample_rate=16000)
    assert read_wav(dst) == (1, 2, 16000)
    assert media.wav_duration(dst) == pytest.approx(2.0)


def test_to_wav_never_overwrites(tmp_path):
    dst = tmp_path / "speech.wav"
    dst.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        media.to_wav(tone(tmp_path / "in.wav"), dst)
    assert dst.read_bytes() == b"keep me"


def test_to_wav_of_a_non_audio_file_leaves_nothing(tmp_path):
    with pytest.raises(UserError):
        media.to_wav(text_file(tmp_path / "in.wav"), tmp_path / "speech.wav")
    assert [p.name for p in tmp_path.iterdir()] == ["in.wav"]


def test_wav_duration_reads_the_header(tmp_path):
    path = tmp_path / "half.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 4000)
    assert media.wav_duration(path) == 0.5


def test_wav_duration_of_a_non_wav_is_a_user_error(tmp_path):
    err = user_error(media.wav_duration, text_file(tmp_path / "speech.wav"))
    assert "cannot read" in err.message and "pcm_s16le" in err.tip
