"""thbench.check on videos made by real ffmpeg: each broken video fails its own check, and why."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from thbench import check, proc
from thbench.check import CHECK_NAMES

SECONDS = 2.0
FPS = 25


def ffmpeg(*args: str | Path) -> None:
    proc.run(["ffmpeg", "-v", "error", "-y", *args], timeout=120)


def make_video(path: Path, *, picture: str = "testsrc", size: str = "160x120", fps: int = FPS,
               seconds: float = SECONDS, audio: bool = True, extra: tuple[str, ...] = ()) -> Path:
    """An H.264 mp4 of ``picture`` (a lavfi source), with a sine tone unless ``audio`` is False."""
    options = f"size={size}:rate={fps}:duration={seconds}"
    source = f"{picture}:{options}" if "=" in picture else f"{picture}={options}"
    inputs = ["-f", "lavfi", "-i", source]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    ffmpeg(*inputs, "-c:v", "libx264", "-pix_fmt", "yuv420p", *extra,
           *(["-c:a", "aac"] if audio else []), path)
    return path


def failed(report: check.CheckReport) -> set[str]:
    return {item.name for item in report.items if not item.ok}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("check-media")


@pytest.fixture(scope="module")
def speech(media_dir) -> Path:
    """The speech every video is checked against: SECONDS of mono 16-bit WAV."""
    path = media_dir / "speech.wav"
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={SECONDS}",
           "-c:a", "pcm_s16le", path)
    return path


@pytest.fixture(scope="module")
def good_video(media_dir) -> Path:
    return make_video(media_dir / "good.mp4")


def test_a_good_video_passes_every_check_in_order(good_video, speech):
    report = check.check_video(good_video, speech)
    assert report.passed, report.items
    assert tuple(item.name for item in report.items) == CHECK_NAMES
    assert report.item("duration").value == 0.0
    assert report.item("fps").value == FPS
    assert report.item("resolution").value == "160x120"
    assert report.item("not_black").value > 16


def test_to_dict_is_json_with_every_item(good_video, speech):
    record = json.loads(json.dumps(check.check_video(good_video, speech).to_dict()))
    assert record["passed"] is True
    assert [item["name"] for item in record["items"]] == list(CHECK_NAMES)
    assert set(record["items"][0]) == {"name", "ok", "detail", "value"}


def test_no_audio_fails_only_audio_stream(media_dir, speech):
    report = check.check_video(make_video(media_dir / "mute.mp4", audio=False), speech)
    assert failed(report) == {"audio_stream"}
    assert report.item("audio_stream").detail == "0 audio streams"
    assert not report.passed


def test_an_all_black_video_fails_not_black(media_dir, speech):
    report = check.check_video(make_video(media_dir / "black.mp4", picture="color=c=black"),
                               speech)
    assert failed(report) == {"not_black"}
    assert report.item("not_black").value <= check.BLACK_LUMA


def test_a_plain_gray_video_is_not_black(media_dir, speech):
    report = check.check_video(make_video(media_dir / "gray.mp4", picture="color=c=gray"), speech)
    assert report.passed, report.items


def test_half_a_second_too_long_fails_duration_and_says_by_how_much(media_dir, speech):
    video = make_video(media_dir / "long.mp4", seconds=SECONDS + 0.5)
    report = check.check_video(video, speech)
    assert failed(report) == {"duration"}
    item = report.item("duration")
    assert item.value == pytest.approx(0.5, abs=1 / FPS)  # 62.5 frames: ffmpeg makes 63
    assert "video 2.5" in item.detail and f"speech {SECONDS:.3f} s" in item.detail


def test_one_frame_off_is_within_tolerance_three_are_not(media_dir, speech):
    one = make_video(media_dir / "one-frame.mp4", seconds=SECONDS + 1 / FPS, audio=False)
    three = make_video(media_dir / "three-frames.mp4", seconds=SECONDS - 3 / FPS, audio=False)
    assert check.check_video(one, speech).item("duration").ok
    late = check.check_video(three, speech).item("duration")
    assert not late.ok and late.value == pytest.approx(-3 / FPS, abs=0.001)


def test_odd_resolution_fails_resolution(media_dir, speech):
    # 4:4:4 chroma lets H.264 store odd sizes, as some model outputs do.
    video = make_video(media_dir / "odd.mp4", size="161x120", extra=("-pix_fmt", "yuv444p"))
    report = check.check_video(video, speech)
    assert failed(report) == {"resolution"}
    assert "width 161 is odd" in report.item("resolution").detail


def test_a_slideshow_frame_rate_fails_fps(media_dir, speech):
    report = check.check_video(make_video(media_dir / "slow.mp4", fps=5), speech)
    assert failed(report) == {"fps"}
    assert report.item("fps").value == 5


def test_a_truncated_file_fails_decodes_and_the_rest_is_skipped(media_dir, good_video, speech):
    data = good_video.read_bytes()
    video = media_dir / "cut.mp4"
    video.write_bytes(data[: len(data) // 2])  # moov is at the end: gone
    report = check.check_video(video, speech)
    assert failed(report) == set(CHECK_NAMES)
    assert "moov atom not found" in report.item("decodes").detail
    assert all(item.detail.startswith("skipped: ") for item in report.items[1:])


def test_damaged_frames_fail_decodes_while_the_streams_are_still_seen(media_dir, speech):
    # moov first (faststart): the header survives the cut, the frames do not.
    whole = make_video(media_dir / "faststart.mp4", extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    video = media_dir / "faststart-cut.mp4"
    video.write_bytes(data[: len(data) // 2])
    report = check.check_video(video, speech)
    assert failed(report) == {"decodes", "duration", "not_black"}
    assert report.item("decodes").detail  # ffmpeg's first error line
    assert report.item("duration").detail == "skipped: the file does not decode cleanly"


def test_a_text_file_named_mp4_fails_everything(tmp_path, speech):
    video = tmp_path / "video.mp4"
    video.write_text("not a video\n")
    report = check.check_video(video, speech)
    assert failed(report) == set(CHECK_NAMES)
    assert report.item("decodes").detail  # ffmpeg's reason, whatever demuxer it tried
    assert report.item("fps").detail == "skipped: ffprobe cannot read the file"


def test_a_missing_video_is_reported_not_raised(tmp_path, speech):
    report = check.check_video(tmp_path / "video.mp4", speech)
    assert failed(report) == set(CHECK_NAMES)
    assert report.item("decodes").detail.startswith("no file at ")


def test_unreadable_speech_fails_duration_with_the_reason(tmp_path, good_video):
    speech = tmp_path / "speech.wav"
    speech.write_text("not a wav\n")
    report = check.check_video(good_video, speech)
    assert failed(report) == {"duration"}
    assert "cannot read" in report.item("duration").detail


def test_render_table_marks_each_row_and_shows_ffmpeg_brackets_verbatim(tmp_path, good_video,
                                                                       speech):
    data = good_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    report = check.check_video(cut, speech)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(check.render_table(report))
    text = out.getvalue()
    assert "failed" in text and text.count("✗") == len(CHECK_NAMES) and "✓" not in text
    assert "moov atom not found" in text
    # Details come from ffmpeg and file names: brackets must print, not be read as rich markup.
    bracketed = check.CheckReport((check.CheckItem("decodes", False, "[bold]x[/bold] [mov @ 0x1]"),))
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(check.render_table(bracketed))
    assert "[bold]x[/bold] [mov @ 0x1]" in out.getvalue()

    good = io.StringIO()
    Console(file=good, width=200, color_system=None).print(
        check.render_table(check.check_video(good_video, speech)))
    assert good.getvalue().count("✓") == len(CHECK_NAMES) and "passed" in good.getvalue()
