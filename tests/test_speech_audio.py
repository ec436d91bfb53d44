"""thbench.speech_audio on WAVs made with the stdlib and measured by real ffmpeg."""

from __future__ import annotations

import array
import math
import sys
import wave
from pathlib import Path

import pytest

from thbench import speech_audio
from thbench.errors import UserError


def write_wav(path: Path, samples: list[int] | array.array, rate: int = 16000,
              channels: int = 1, width: int = 2) -> Path:
    data = array.array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())
    return path


def sine(seconds: float, *, freq: float = 1000.0, peak_dbfs: float = -20.0, rate: int = 16000,
         phase: float = 0.0) -> list[int]:
    amplitude = 32767 * 10 ** (peak_dbfs / 20)
    return [round(amplitude * math.sin(phase + 2 * math.pi * freq * n / rate))
            for n in range(round(seconds * rate))]


def read_wav(path: Path) -> tuple:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        data = array.array("h", wav.readframes(params.nframes))
    if sys.byteorder == "big":
        data.byteswap()
    return params, data


def max_step(samples, start: int = 1, stop: int | None = None) -> int:
    stop = len(samples) if stop is None else stop
    return max(abs(samples[n] - samples[n - 1]) for n in range(max(start, 1), stop))


# --- join ----------------------------------------------------------------------------------------

@pytest.fixture
def two_pieces(tmp_path) -> list[Path]:
    # 440 Hz at 16 kHz, lengths that end at a non-zero sample (mid-cycle, near the crest)
    a = sine(0.5 + 9 / 16000, freq=440, peak_dbfs=-3)
    b = sine(0.3 + 5 / 16000, freq=440, peak_dbfs=-3, phase=math.pi / 2)  # starts at its crest
    assert abs(a[-1]) > 10000 and abs(b[0]) > 10000 and abs(b[-1]) > 10000
    return [write_wav(tmp_path / "0000.wav", a), write_wav(tmp_path / "0001.wav", b)]


def test_join_has_exact_silences_and_no_clicks(two_pieces, tmp_path):
    facts = speech_audio.join(two_pieces, tmp_path / "speech.wav", silence_s=0.25)
    params, out = read_wav(tmp_path / "speech.wav")
    lengths = [read_wav(p)[0].nframes for p in two_pieces]
    gap = round(0.25 * 16000)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    assert params.nframes == sum(lengths) + gap
    assert facts == {"sample_rate": 16000, "pieces": 2, "seconds": params.nframes / 16000,
                     "silence_s": 0.25, "fade_ms": 8.0}
    assert set(out[lengths[0]: lengths[0] + gap]) == {0}  # digital silence, exactly this long
    assert out[lengths[0] - 1] == 0 and out[lengths[0] + gap] == 0  # the edges faded to zero
    inside = max_step(out, 200, lengths[0] - 200)  # the waveform's own steepest step
    edge = round(0.008 * 16000) + 2
    for join_at in (lengths[0], lengths[0] + gap):
        assert max_step(out, join_at - edge, join_at + edge) <= inside
    assert max_step(out, 1, edge) <= inside and max_step(out, len(out) - edge) <= inside


def test_join_without_fade_clicks(two_pieces, tmp_path):
    # the control: the same pieces unfaded jump by far more than the waveform ever steps
    speech_audio.join(two_pieces, tmp_path / "raw.wav", silence_s=0.1, fade_ms=0)
    _, out = read_wav(tmp_path / "raw.wav")
    n = read_wav(two_pieces[0])[0].nframes
    assert max_step(out, n - 2, n + 2) > 3 * max_step(out, 200, n - 200)


def test_join_of_one_piece_adds_no_silence(two_pieces, tmp_path):
    facts = speech_audio.join(two_pieces[:1], tmp_path / "one.wav", silence_s=1.0)
    assert read_wav(tmp_path / "one.wav")[0].nframes == read_wav(two_pieces[0])[0].nframes
    assert facts["pieces"] == 1


def test_join_refuses_mixed_rates_and_other_formats(two_pieces, tmp_path):
    other = write_wav(tmp_path / "22k.wav", sine(0.1, rate=22050), rate=22050)
    with pytest.raises(UserError, match="22050 Hz but .* 16000 Hz"):
        speech_audio.join([two_pieces[0], other], tmp_path / "x.wav", silence_s=0.1)
    stereo = write_wav(tmp_path / "stereo.wav", sine(0.1) * 2, channels=2)
    with pytest.raises(UserError, match="2-channel 16-bit audio, not mono"):
        speech_audio.join([stereo], tmp_path / "y.wav", silence_s=0.1)
    (tmp_path / "junk.wav").write_text("not a wav")
    with pytest.raises(UserError, match="cannot read .* as a PCM WAV"):
        speech_audio.join([tmp_path / "junk.wav"], tmp_path / "z.wav", silence_s=0.1)
    assert not any(p.name.startswith((".x", ".y", ".z")) for p in tmp_path.iterdir())  # no leftovers
    assert not any((tmp_path / n).exists() for n in ("x.wav", "y.wav", "z.wav"))


def test_join_never_overwrites(two_pieces, tmp_path):
    out = tmp_path / "speech.wav"
    out.write_bytes(b"earlier")
    with pytest.raises(FileExistsError):
        speech_audio.join(two_pieces, out, silence_s=0.1)
    assert out.read_bytes() == b"earlier"


# --- loudness ------------------------------------------------------------------------------------

def test_loudness_of_a_known_sine(tmp_path):
    # BS.1770: a 1 kHz sine at 0 dBFS peak in one channel reads -3.01 LUFS
    tone = write_wav(tmp_path / "tone.wav", sine(3.0, peak_dbfs=-20))
    level = speech_audio.measure(tone)
    assert level.lufs == pytest.approx(-23.01, abs=0.1)
    assert level.true_peak_dbtp == pytest.approx(-20.0, abs=0.2)


def test_loudness_of_silence_is_none(tmp_path):
    quiet = write_wav(tmp_path / "zero.wav", [0] * 16000)
    assert speech_audio.loudness(quiet) is None


def test_loudness_of_a_sound_shorter_than_a_gating_block(tmp_path):
    blip = write_wav(tmp_path / "blip.wav", sine(0.25, peak_dbfs=-20))
    assert speech_audio.loudness(blip) == pytest.approx(-23.01, abs=0.3)


# --- normalise -----------------------------------------------------------------------------------

@pytest.mark.parametrize("peak_dbfs", [-45.0, -0.5])  # a quiet and a loud input
def test_normalise_lands_within_tolerance(tmp_path, peak_dbfs):
    src = write_wav(tmp_path / "src.wav", sine(4.0, freq=440, peak_dbfs=peak_dbfs, rate=22050),
                    rate=22050)
    facts = speech_audio.normalise(src, tmp_path / "speech.wav", sample_rate=16000)
    params, _ = read_wav(tmp_path / "speech.wav")
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    measured = speech_audio.loudness(tmp_path / "speech.wav")
    assert abs(measured - speech_audio.TARGET_LUFS) <= speech_audio.TOLERANCE_LU
    assert facts["output_lufs"] == pytest.approx(measured, abs=1e-3)
    assert facts["within_tolerance"] and not facts["peak_limited"]
    assert facts["input_lufs"] == pytest.approx(peak_dbfs - 3.65, abs=0.2)  # K-weighting at 440 Hz
    assert facts["gain_db"] == pytest.approx(speech_audio.TARGET_LUFS - facts["input_lufs"], abs=1e-3)
    assert facts["true_peak_dbtp"] <= speech_audio.PEAK_DBTP
    assert facts["sample_rate"] == 16000 and facts["seconds"] == pytest.approx(4.0, abs=1e-3)
    assert [p.name for p in tmp_path.iterdir()] in (["src.wav", "speech.wav"], ["speech.wav", "src.wav"])


def test_a_short_sound_is_normalised_not_called_silent(tmp_path):
    """"Hi." is ~0.3 s: shorter than one gating block, in the float WAV normalise measures."""
    src = write_wav(tmp_path / "hi.wav", sine(0.25, peak_dbfs=-35))
    facts = speech_audio.normalise(src, tmp_path / "out.wav", sample_rate=None)
    assert facts["within_tolerance"], facts
    assert facts["input_lufs"] == pytest.approx(-38.01, abs=0.3)


def test_normalise_keeps_the_rate_when_asked(tmp_path):
    src = write_wav(tmp_path / "src.wav", sine(1.0, rate=24000), rate=24000)
    facts = speech_audio.normalise(src, tmp_path / "out.wav", sample_rate=None)
    assert facts["sample_rate"] == 24000 and read_wav(tmp_path / "out.wav")[0].framerate == 24000


def test_a_peaky_input_is_limited_by_its_peak_not_compressed(tmp_path):
    # a quiet tone with sparse loud clicks: the full gain would push the clicks past -1 dBTP
    samples = sine(4.0, peak_dbfs=-40)
    for n in range(8000, len(samples), 16000):
        samples[n] = 16000
    src = write_wav(tmp_path / "src.wav", samples)
    facts = speech_audio.normalise(src, tmp_path / "out.wav", sample_rate=None)
    assert facts["peak_limited"] and not facts["within_tolerance"]
    assert facts["output_lufs"] < speech_audio.TARGET_LUFS - speech_audio.TOLERANCE_LU
    assert facts["true_peak_dbtp"] == pytest.approx(speech_audio.PEAK_DBTP, abs=0.3)
    # one linear gain: every sample scaled by the same factor (to within rounding)
    _, out = read_wav(tmp_path / "out.wav")
    factor = 10 ** (facts["gain_db"] / 20)
    assert max(abs(o - s * factor) for o, s in zip(out, samples, strict=True)) <= 1.0


def test_silent_speech_is_a_user_error(tmp_path):
    src = write_wav(tmp_path / "zero.wav", [0] * 32000)
    with pytest.raises(UserError, match="the speech is silent"):
        speech_audio.normalise(src, tmp_path / "out.wav", sample_rate=16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zero.wav"]  # nothing left behind


def test_normalise_never_overwrites(tmp_path):
    src = write_wav(tmp_path / "src.wav", sine(1.0))
    dst = tmp_path / "out.wav"
    dst.write_bytes(b"earlier")
    with pytest.raises(FileExistsError):
        speech_audio.normalise(src, dst, sample_rate=None)
    assert dst.read_bytes() == b"earlier"
