"""Speak a UTF-8 text file into a WAV with eSpeak NG, in any of its ~100 languages, offline.

espeakng-loader ships the eSpeak NG shared library and its data but no `espeak-ng` program, so
this drives the library's C API (speak_lib.h) through ctypes: nothing is started, nothing is
downloaded. The text arrives inside the request file (thbench/speech.py), never as command-line
words, so nothing in it is parsed by a shell or taken for an option. Each piece becomes one WAV
(mono, 16-bit, at the library's own sample rate).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import wave
from pathlib import Path

from espeakng_loader import get_data_path, get_library_path

# Values from speak_lib.h (eSpeak NG 1.52).
AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_Synth returns once every sample went to the callback
INITIALIZE_DONT_EXIT = 0x8000  # missing data: return an error instead of calling exit()
POS_CHARACTER = 1
CHARS_UTF8 = 1  # no espeakSSML flag: '<' and '&' in the text are spoken, never markup
PARAM_RATE = 1
RATE_MIN, RATE_MAX = 80, 450  # words per minute the library accepts
EE_OK = 0
DEFAULT_VOICE = "en"  # the library's own default language
DEFAULT_WPM = 175  # the library's default speaking rate; request "rate" scales it
GENDERS = {0: "none", 1: "male", 2: "female"}

# int callback(short *wav, int numsamples, espeak_EVENT *events); non-zero aborts synthesis.
SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                 ctypes.c_void_p)


class Voice(ctypes.Structure):
    """espeak_VOICE. `languages` is not one C string: it is (priority byte, name, NUL) pairs
    ending in a zero byte, so it is read by hand from a raw pointer."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


def load() -> tuple[ctypes.CDLL, int]:
    """The library, initialised on the wheel's own data; returns it and its sample rate."""
    lib = ctypes.CDLL(get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(Voice))
    # buflength 0: the library's default chunk (200 ms) per callback.
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, get_data_path().encode(),
                                 INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {get_data_path()}")
    return lib, rate


def _languages(pointer: int | None) -> list[tuple[int, str]]:
    """(priority, language) pairs; a lower priority number is a better match."""
    found, at = [], pointer
    while at and (priority := ctypes.string_at(at, 1)[0]) != 0:  # a zero byte ends the list
        name = ctypes.string_at(at + 1)
        found.append((priority, name.decode()))
        at += 1 + len(name) + 1
    return found


def voices(lib: ctypes.CDLL) -> list[dict]:
    listed, out = lib.espeak_ListVoices(None), []
    for i in range(10_000):  # a NULL pointer ends the array
        if not listed[i]:
            break
        voice = listed[i].contents
        languages = _languages(voice.languages)
        out.append({"name": voice.name.decode(), "identifier": voice.identifier.decode(),
                    "languages": [language for _, language in languages],
                    "priorities": [priority for priority, _ in languages],
                    "gender": GENDERS.get(voice.gender, str(voice.gender))})
    return out


def set_voice(lib: ctypes.CDLL, wanted: str) -> str | None:
    """Select ``wanted`` and return the voice identifier in use, or None if there is none.

    espeak_SetVoiceByName knows voice files ("de", "gmw/de", "en+f3") and names ("German") but
    not every language tag: "zh" is a language of three voices and no file. A tag is therefore
    matched against the voices' own language lists, best priority first, as the library's
    voice selection ranks them; ties keep the library's list order (e.g. "zh" -> sit/cmn).
    """
    if lib.espeak_SetVoiceByName(wanted.encode()) == EE_OK:
        return wanted
    tag = wanted.lower()
    ranked = sorted((priority, order, voice["identifier"])
                    for order, voice in enumerate(voices(lib))
                    for priority, language in zip(voice["priorities"], voice["languages"], strict=True)
                    if language == tag)
    if ranked and lib.espeak_SetVoiceByName(ranked[0][2].encode()) == EE_OK:
        return ranked[0][2]
    return None


def synthesise(lib: ctypes.CDLL, lines: list[str]) -> bytes:
    chunks: list[bytes] = []

    def collect(wav, numsamples, _events) -> int:
        if wav and numsamples > 0:  # a NULL wav marks the end of the utterance
            chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0

    callback = SynthCallback(collect)  # kept in a local so it outlives every call into C
    lib.espeak_SetSynthCallback(callback)
    for line in lines:
        text = line.encode("utf-8")
        error = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None,
                                 None)
        if error != EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({error}) on: {line[:60]}")
    lib.espeak_Synchronize()
    return b"".join(chunks)


def listing(lib: ctypes.CDLL) -> list[dict]:
    """The voices in the contract's --voices-json shape. ``aliases`` are the other names
    set_voice accepts for a voice: its file name and its languages (``de`` for gmw/de)."""
    rows = []
    for voice in voices(lib):
        ident = voice["identifier"]
        rows.append({"name": ident, "language": voice["languages"][0] if voice["languages"] else None,
                     "quality": "formant", "speakers": [], "installed": True, "size_bytes": None,
                     "license": "GPL-3.0-or-later", "tos_required": False,
                     "note": f"{voice['name']}, {voice['gender']}",
                     "aliases": sorted({ident.rsplit("/", 1)[-1], voice["name"],
                                        *voice["languages"]} - {ident})})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--request", help="speech request JSON (thbench/speech.py)")
    parser.add_argument("--voices-json", action="store_true",
                        help="print the voices as one JSON list (name, language, aliases, ...)")
    args = parser.parse_args()
    if not args.voices_json and not args.request:
        parser.error("--request is required (or --voices-json)")

    lib, sample_rate = load()
    if args.voices_json:
        print(json.dumps(listing(lib), ensure_ascii=False))
        return 0

    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    wanted = request.get("voice") or DEFAULT_VOICE
    if request.get("speaker") is not None:
        print("say.py: eSpeak NG voices have no speakers; pick a variant voice instead, "
              "e.g. en+f3", file=sys.stderr)
        return 2
    voice = set_voice(lib, wanted)
    if voice is None:
        print(f"say.py: eSpeak NG has no voice '{wanted}'; list them with "
              "`uv run invoke voices --tts espeak`", file=sys.stderr)
        return 2
    wpm = round(DEFAULT_WPM * float(request.get("rate") or 1.0))
    if not RATE_MIN <= wpm <= RATE_MAX:
        print(f"say.py: rate {request.get('rate')} is {wpm} words per minute, outside "
              f"{RATE_MIN}-{RATE_MAX}", file=sys.stderr)
        return 2
    lib.espeak_SetParameter(PARAM_RATE, wpm, 0)  # after the voice, which brings its own defaults

    out_dir, total = Path(request["out_dir"]), 0
    for index, piece in enumerate(request["pieces"]):
        samples = synthesise(lib, [piece])
        if not samples:
            print(f"say.py: eSpeak NG produced no audio for piece {index} with voice '{voice}'",
                  file=sys.stderr)
            return 1
        with open(out_dir / f"{index:04d}.wav", "xb") as raw, wave.open(raw, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)  # the callback's samples are C shorts: 16-bit
            wav.setframerate(sample_rate)
            wav.writeframes(samples)
        total += len(samples)
    print(f"say.py: {len(request['pieces'])} piece(s) spoken with eSpeak NG voice '{voice}' "
          f"({total / 2 / sample_rate:.2f} s at {sample_rate} Hz, {wpm} wpm)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
