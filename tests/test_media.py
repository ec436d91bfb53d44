"""thbench.media on files made by real ffmpeg: what it accepts, and what each mistake says."""

from __future__ import annotations

import os
import struct
import sys
import types
import wave
from pathlib import Path

import pytest

from thbench import image_header, media, proc
from thbench.errors import UserError

from .test_image_header import DQT, EOI, JFIF, SOI, frame, png_header


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


@pytest.mark.parametrize(("size", "limit"), [("32x96", "at least 64"), ("4100x64", "at most 4096")])
def test_absurd_sizes_are_refused_with_the_limits(tmp_path, size, limit):
    err = user_error(media.validate_image, picture(tmp_path / "face.png", size))
    assert f"is {size} pixels" in err.message and "between 64 and 4096" in err.message
    assert err.tip.startswith(f"resize it to {limit} px a side: `ffmpeg -i ") and "scale=" in err.tip


def test_a_picture_too_big_for_ffmpeg_is_told_to_resize_not_re_save(tmp_path, monkeypatch):
    monkeypatch.setattr(proc, "run", lambda *a, **kw: pytest.fail(f"ran {a[0]}"))  # the header says
    err = user_error(media.validate_image, png_header(tmp_path / "huge.png", 20000, 20000))
    assert err.message.endswith("huge.png is 20000x20000 pixels; each side must be between 64 and 4096")
    assert err.tip == ("resize it to at most 4096 px a side in an image editor "
                       "(ffmpeg cannot decode a picture this big)")


def test_without_a_header_ffmpegs_refusal_to_decode_gives_the_sides(tmp_path, monkeypatch):
    # as for a format the header reader does not know: ffprobe says 0x0, ffmpeg names the size
    monkeypatch.setattr(image_header, "sides", lambda path: None)
    err = user_error(media.validate_image, png_header(tmp_path / "huge.png", 20000, 20000))
    assert "is 20000x20000 pixels" in err.message and "in an image editor" in err.tip


def test_a_small_file_of_enormous_pixels_is_refused_without_probing(tmp_path, monkeypatch):
    # 16000 x 16000 16-bit RGBA is 2 GB of pixels, and ffprobe decodes them all to learn the size
    path = png_header(tmp_path / "huge.png", 16000, 16000, depth=16, colour=6)
    monkeypatch.setattr(proc, "run", lambda *a, **kw: pytest.fail(f"ran {a[0]}"))
    monkeypatch.setattr(media, "probe", lambda *a, **kw: pytest.fail("probed"))
    err = user_error(media.validate_image, path)
    assert err.message == f"{path} is 16000x16000 pixels; each side must be between 64 and 4096"
    assert err.tip == (f"resize it to at most 4096 px a side: `ffmpeg -i {path} -vf scale=512:-2 "
                       "photo.png`, then pass photo.png")  # ffmpeg can still decode this one


def test_a_jpeg_too_big_for_ffmpeg_is_refused_from_its_frame_header(tmp_path, monkeypatch):
    path = tmp_path / "huge.jpg"
    path.write_bytes(SOI + JFIF + DQT + frame(0xC2, 30000, 20000) + EOI)
    monkeypatch.setattr(media, "probe", lambda *a, **kw: pytest.fail("probed"))
    err = user_error(media.validate_image, path)
    assert "is 30000x20000 pixels" in err.message and "in an image editor" in err.tip


def test_a_header_within_bounds_still_leaves_ffprobe_to_judge(tmp_path):
    # the header only ever refuses: 128x96 said, but no pixels follow it
    err = user_error(media.validate_image, png_header(tmp_path / "face.png", 128, 96))
    assert "is not an image" in err.message


@pytest.mark.parametrize(("width", "height"), [(16255, 16255), (16256, 16256), (130000, 1000),
                                               (300000, 1000), (1000, 300000)])
def test_ffmpeg_decodes_agrees_with_ffmpeg(tmp_path, width, height):
    error = media.decode_error(png_header(tmp_path / "big.png", width, height), "-frames:v", "1")
    assert image_header.ffmpeg_decodes(width, height) is not bool(media.TOO_BIG_TO_DECODE.search(error or ""))


def test_sides_ffprobe_reads_are_refused_before_decoding(tmp_path, monkeypatch):
    path = picture(tmp_path / "wide.png", "5000x300")
    monkeypatch.setattr(media, "decode_error", lambda *a, **kw: pytest.fail("decoded"))
    err = user_error(media.validate_image, path)
    assert "is 5000x300 pixels" in err.message and "at most 4096 px a side" in err.tip


def test_an_image_enormous_in_bytes_is_refused_by_its_size_alone(tmp_path, monkeypatch):
    path = picture(tmp_path / "face.png")
    os.truncate(path, 1 << 30)  # sparse: a valid PNG and 1 GiB of zeros, no disk used
    monkeypatch.setattr(proc, "run", lambda *a, **kw: pytest.fail(f"ran {a[0]}"))
    monkeypatch.setattr(media, "probe", lambda *a, **kw: pytest.fail("probed"))
    err = user_error(media.validate_image, path)
    assert err.message == f"{path} is 1074 MB; an image must be at most 200 MB"
    assert err.tip == ("save it as a PNG or JPEG at most 4096 px a side (a photo that size is "
                       "a few MB) and pass that file")


def test_an_image_at_the_byte_cap_goes_on_to_be_probed(tmp_path, monkeypatch):
    path = picture(tmp_path / "face.png")
    os.truncate(path, media.MAX_IMAGE_BYTES)
    probed = []
    monkeypatch.setattr(media, "probe",
                        lambda path, **kw: probed.append(path) or {"streams": [], "format": {}})
    assert "is not an image" in user_error(media.validate_image, path).message  # no streams
    assert probed == [path]


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


def test_audio_enormous_in_bytes_is_judged_by_its_duration(tmp_path):
    # No byte cap for audio: ffprobe reads its header only, and a valid 600 s can be 900 MB.
    path = tmp_path / "long.wav"  # 8 kHz 16-bit mono, a header claiming 1 GiB of samples
    data = (1 << 30) - 44
    path.write_bytes(b"RIFF" + struct.pack("<I", data + 36) + b"WAVEfmt "
                     + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
                     + b"data" + struct.pack("<I", data))
    os.truncate(path, 1 << 30)
    err = user_error(media.validate_audio, path)
    assert "is 67108.9 s long; the limit is 600 s" in err.message and "trim it" in err.tip


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
