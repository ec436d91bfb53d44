"""The inputs of the bad-input catalogue (benchmarks/bad_inputs.py): its files and its cases.

Pictures and sounds come from ffmpeg, made from assets/face.png where a face must be found;
what ffmpeg cannot write (a CMYK JPEG) comes from Pillow in the face-check env, the one env
the catalogue needs anyway. Odd headers (20000x20000 pixels, an EXIF orientation) are
written here with zlib and struct: small files that claim what a real one would.

A case is one command line and what it must end in. The runner lends the machinery: ``mount``
(a small tmpfs for a read-only or a full disk) and ``unprivileged`` (how to run a command that
must not read a chmod 000 file).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from thbench import envs, media, proc, score, specs
from thbench.errors import UserError
from thbench.specs import Kind

# A 200-character folder name: under NAME_MAX (255) but far past what people type.
LONG_NAME = "long-" + "x" * 195
CMYK_SCRIPT = """\
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("CMYK").save(sys.argv[2], quality=90)
"""


def ffmpeg(*args: str | Path) -> None:
    proc.run([media.ffmpeg(), "-v", "error", "-y", *map(str, args)], timeout=300)


def png_of_size(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit grey PNG of ``width`` x ``height`` black pixels: a few hundred KB of
    zlib for 400 MB of pixels, the shape of a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def with_exif_orientation(src: Path, dst: Path, orientation: int = 6) -> Path:
    """``src`` (a JPEG) with an EXIF APP1 segment saying how to turn it (6: 90° clockwise)."""
    data = src.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"{src} is not a JPEG")
    # Big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, count 1.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    dst.write_bytes(data[:2] + segment + data[2:])
    return dst


def make_all(folder: Path, face: Path, pillow_python: Path | None) -> dict[str, Path]:
    """Every input file, by name; ``pillow_python`` (a Python with PIL) makes the CMYK JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {"face": face}

    # --- images that must be refused ---
    loop_a, loop_b = folder / "loop-a.png", folder / "loop-b.png"
    loop_a.symlink_to(loop_b.name)
    loop_b.symlink_to(loop_a.name)
    f["symlink_loop"] = loop_a
    f["fifo"] = folder / "pipe.png"
    os.mkfifo(f["fifo"])
    f["directory"] = folder / "a-folder.png"
    f["directory"].mkdir()
    f["unreadable"] = folder / "unreadable.png"
    f["unreadable"].write_bytes(face.read_bytes())
    f["unreadable"].chmod(0)
    f["empty_image"] = folder / "empty.png"
    f["empty_image"].write_bytes(b"")
    whole = face.read_bytes()
    f["truncated"] = folder / "truncated.png"
    f["truncated"].write_bytes(whole[: len(whole) // 2])
    f["huge_pixels"] = png_of_size(folder / "huge-20000x20000.png", 20000, 20000)
    f["huge_bytes"] = folder / "huge-512MiB.png"
    f["huge_bytes"].write_bytes(whole)
    os.truncate(f["huge_bytes"], 512 << 20)  # sparse: 512 MiB to a reader, no disk used
    f["text_as_image"] = folder / "notes.png"
    f["text_as_image"].write_text("this is not a picture\n")
    f["text_as_video"] = folder / "notes.mp4"
    f["text_as_video"].write_text("this is not a film\n")
    f["tiny"] = folder / "tiny-16x16.png"
    ffmpeg("-i", face, "-vf", "scale=16:16", f["tiny"])

    # --- images that must work ---
    f["png16"] = folder / "face-16bit.png"
    ffmpeg("-i", face, "-pix_fmt", "rgb48be", f["png16"])
    f["alpha"] = folder / "face-alpha.png"
    ffmpeg("-i", face, "-vf", "format=rgba,colorchannelmixer=aa=0.85", f["alpha"])
    upright = folder / "face-upright.jpg"
    ffmpeg("-i", face, "-q:v", "3", upright)
    sideways = folder / "face-sideways.jpg"  # stored turned left, EXIF says turn it back
    ffmpeg("-i", face, "-vf", "transpose=2", "-q:v", "3", sideways)
    f["exif_rotated"] = with_exif_orientation(sideways, folder / "face-exif-rotated.jpg")
    if pillow_python is not None:
        script = folder / "cmyk.py"
        script.write_text(CMYK_SCRIPT)
        f["cmyk"] = folder / "face-cmyk.jpg"
        proc.run([pillow_python, script, face, f["cmyk"]], timeout=60)
    odd = folder / "ünïcödé-фото-照片"
    odd.mkdir()
    f["non_ascii"] = odd / "lächeln-微笑.png"
    f["non_ascii"].write_bytes(whole)
    deep = folder / LONG_NAME / LONG_NAME / LONG_NAME
    deep.mkdir(parents=True)
    f["long_path"] = deep / "face.png"
    f["long_path"].write_bytes(whole)
    shell = folder / "my photos $(echo hi) & more"  # harmless if a shell ever saw it
    shell.mkdir()
    f["shell_chars"] = shell / "face 'quoted' `x`.png"
    f["shell_chars"].write_bytes(whole)

    # --- audio ---
    f["empty_audio"] = folder / "empty.wav"
    f["empty_audio"].write_bytes(b"")
    f["silent"] = folder / "silent-3s.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", f["silent"])
    # 3 h of 8 kHz 16-bit mono: 173 MB written, removed with the work folder.
    f["hours"] = folder / "silent-3h.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "10800", "-c:a", "pcm_s16le",
           f["hours"])
    f["text_as_audio"] = folder / "notes.wav"
    f["text_as_audio"].write_text("this is not a sound\n")
    tone = "sine=frequency=220:duration=2"
    f["wav_8k_mono"] = folder / "tone-8k-mono.wav"
    ffmpeg("-f", "lavfi", "-i", tone, "-ar", "8000", "-ac", "1", f["wav_8k_mono"])
    f["wav_48k_stereo"] = folder / "tone-48k-stereo.wav"
    ffmpeg("-f", "lavfi", "-i", tone, "-ar", "48000", "-ac", "2", f["wav_48k_stereo"])
    f["mp3"] = folder / "tone.mp3"
    ffmpeg("-f", "lavfi", "-i", tone, f["mp3"])
    f["m4a"] = folder / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", tone, "-c:a", "aac", f["m4a"])

    f["video"] = folder / "made-elsewhere.mp4"  # for `invoke score`: 2 s of the face and a tone
    ffmpeg("-loop", "1", "-i", face, "-f", "lavfi", "-i", tone, "-t", "2", "-r", "25",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", f["video"])

    # --- text files ---
    sentence = "This is sentence number {}, and it says nothing much. "
    f["text_3k"] = _text_file(folder / "text-3k.txt", sentence, 3000)
    f["text_20k"] = _text_file(folder / "text-20k.txt", sentence, 20000)
    f["text_latin1"] = folder / "text-latin1.txt"
    f["text_latin1"].write_bytes("Grüße aus Köln.".encode("latin-1"))
    f["text_nul"] = folder / "text-nul.txt"
    f["text_nul"].write_text("Hello\x00there.")
    f["a_file"] = folder / "a-file"
    f["a_file"].write_text("a plain file where a folder is expected\n")
    return f


def _text_file(path: Path, sentence: str, size: int) -> Path:
    text, n = "", 1
    while len(text) + len(sentence) + 4 <= size:
        text += sentence.format(n)
        n += 1
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


@dataclass
class Case:
    name: str
    command: str  # run, bench, score, setup
    argv: list[str]  # after `python -m invoke` (or `python -m nox` for setup)
    expect: str  # "error" (a mistake) or "ok" (odd but valid)
    words: tuple[str, ...] = ()  # each must be in the ERROR line
    env: dict[str, str] = field(default_factory=dict)
    context: Callable[[], object] | None = None  # yields None, or why the case cannot run here
    prefix: list[str] = field(default_factory=list)  # e.g. setpriv


# --- the cases --------------------------------------------------------------------------------

Mount = Callable[..., AbstractContextManager[str | None]]  # (where, options, leave_free=)


def cases(f: dict[str, Path], work: Path, mount: Mount,
          unprivileged: tuple[list[str], str | None]) -> list[Case]:
    s = {k: str(v) for k, v in f.items()}
    hello = ["--text", "Hello there."]
    mnt = work / "mnt"

    def run(name, expect, *args, words=(), **kw) -> Case:
        return Case(f"run: {name}", "run", ["run", "still", *args], expect, words, **kw)

    def image(name, key, expect, words=(), **kw) -> Case:
        return run(f"image {name}", expect, "--image", s[key], *hello, words=words, **kw)

    def audio(name, key, expect, words=()) -> Case:
        return run(f"audio {name}", expect, "--image", s["face"], "--audio", s[key], words=words)

    def bench(name, expect, *args, words=(), **kw) -> Case:
        return Case(f"bench: {name}", "bench", ["bench", *args], expect, words, **kw)

    def scored(name, expect, *args, words=()) -> Case:
        return Case(f"score: {name}", "score", ["score", *args], expect, words)

    def setup(name, expect, session, *args, words=(), **kw) -> Case:
        return Case(f"setup: {name}", "setup", ["-s", session, *(["--", *args] if args else [])],
                    expect, words, **kw)

    prefix, why_not = unprivileged
    not_set_up = next((m for m in ("mouth", "wav2lip") if not ready(Kind.MODEL, m)), None)
    metric_ready = any(score.ready(spec) for spec in score.metric_specs())
    cases_dir = work / "cases"
    cases_dir.mkdir()
    toml = _cases_files(cases_dir, f)
    ro = lambda: mount(mnt / "ro", "ro,size=1m")  # noqa: E731
    full = lambda: mount(mnt / "full", "size=2m", leave_free=0)  # noqa: E731
    nearly = lambda: mount(mnt / "nearly", "size=4m", leave_free=160 << 10)  # noqa: E731
    na = (lambda reason: (lambda: nullcontext(reason)))  # noqa: E731
    long_text = "word " * 1001  # 5005 characters

    return [
        # odd but valid: the first also makes the earlier run every later case must keep
        run("assets/face.png + text (the earlier run)", "ok", "--image", s["face"], *hello),
        image("16-bit PNG", "png16", "ok"),
        image("PNG with alpha", "alpha", "ok"),
        image("CMYK JPEG", "cmyk", "ok") if "cmyk" in s else
        Case("run: image CMYK JPEG", "run", [], "ok", context=na("not applicable: no Pillow")),
        image("EXIF-rotated JPEG (orientation 6)", "exif_rotated", "ok"),
        image("non-ASCII path", "non_ascii", "ok"),
        image(f"very long path ({len(s['long_path'])} chars, 200-char folders)", "long_path", "ok"),
        image("path with spaces, quotes, $( ), &", "shell_chars", "ok"),
        audio("8 kHz mono WAV", "wav_8k_mono", "ok"),
        audio("48 kHz stereo WAV", "wav_48k_stereo", "ok"),
        audio("MP3", "mp3", "ok"),
        audio("M4A (AAC)", "m4a", "ok"),
        run("--text-file of 3 KB", "ok", "--image", s["face"], "--text-file", s["text_3k"]),
        run("non-ASCII text (Grüße, naïve, café)", "ok", "--image", s["face"],
            "--text", "Grüße aus Köln, a naïve café — übrigens."),
        run("--outputs folder that does not exist yet", "ok", "--image", s["face"], *hello,
            "--outputs", str(work / "new" / "deep" / "outputs")),
        # image mistakes
        image("that does not exist", "missing", "error", ("does not exist",)),
        run("no --image", "error", *hello, words=("no --image",)),
        image("symlink loop", "symlink_loop", "error"),
        image("FIFO", "fifo", "error", ("not a regular file",)),
        image("directory", "directory", "error", ("directory",)),
        image("unreadable (chmod 000)" + (", run without CAP_DAC_OVERRIDE" if prefix else ""),
              "unreadable", "error", ("not readable",), prefix=prefix,
              context=na(why_not) if why_not else None),
        image("empty file", "empty_image", "error", ("not an image",)),
        image("truncated PNG (first half)", "truncated", "error", ("not an image",)),
        image("20000x20000 PNG (270 KB)", "huge_pixels", "error", ("20000x20000",)),
        image("512 MiB PNG (valid picture + zeros, sparse)", "huge_bytes", "error"),
        image("text file named .png", "text_as_image", "error", ("not an image",)),
        image("16x16 PNG", "tiny", "error", ("16x16",)),
        # audio mistakes
        audio("empty file", "empty_audio", "error", ("not audio",)),
        audio("silent from start to end (3 s)", "silent", "error"),
        audio("3 hours long (8 kHz WAV, 173 MB)", "hours", "error", ("limit",)),
        audio("text file named .wav", "text_as_audio", "error", ("not audio",)),
        audio("a PNG given as audio", "face", "error", ("not audio",)),
        run("--text and --audio both", "error", "--image", s["face"], *hello, "--audio", s["mp3"],
            words=("not both",)),
        # text mistakes
        run("empty --text", "error", "--image", s["face"], "--text", "", words=("empty",)),
        run("whitespace-only --text", "error", "--image", s["face"], "--text", " \n\t ",
            words=("empty",)),
        run("only punctuation", "error", "--image", s["face"], "--text", "?! … — ...",
            words=("no words",)),
        run("--text of 5005 characters", "error", "--image", s["face"], "--text", long_text,
            words=("limit 5000",)),
        run("--text-file of 20 KB", "error", "--image", s["face"], "--text-file", s["text_20k"],
            words=("limit 5000",)),
        run("--text-file that does not exist", "error", "--image", s["face"], "--text-file",
            str(work / "nope.txt")),
        run("--text-file in Latin-1", "error", "--image", s["face"], "--text-file",
            s["text_latin1"], words=("UTF-8",)),
        run("--text-file holding a NUL", "error", "--image", s["face"], "--text-file",
            s["text_nul"], words=("NUL",)),
        run("--text and --text-file both", "error", "--image", s["face"], *hello,
            "--text-file", s["text_3k"], words=("not both",)),
        # other run mistakes
        Case("run: unknown model", "run", ["run", "stil", "--image", s["face"], *hello], "error",
             ("unknown model",)),
        Case(f"run: model not set up ({not_set_up})", "run",
             ["run", not_set_up or "mouth", "--image", s["face"], *hello], "error",
             ("not set up",), context=None if not_set_up else na("not applicable: all set up")),
        run("unknown --tts", "error", "--image", s["face"], *hello, "--tts", "pipr",
            words=("unknown",)),
        run("unknown --voice", "error", "--image", s["face"], *hello, "--voice", "xx_XX-nobody",
            words=("voice",)),
        run("--rate abc", "error", "--image", s["face"], *hello, "--rate", "abc",
            words=("not a number",)),
        run("--rate 9", "error", "--image", s["face"], *hello, "--rate", "9", words=("outside",)),
        # outputs folder mistakes
        run("--outputs is a file", "error", "--image", s["face"], *hello, "--outputs", s["a_file"],
            words=("not a folder",)),
        run("--outputs under a file", "error", "--image", s["face"], *hello, "--outputs",
            s["a_file"] + "/outputs", words=("cannot write",)),
        run("--outputs on a read-only filesystem", "error", "--image", s["face"], *hello,
            "--outputs", str(mnt / "ro" / "outputs"), words=("cannot write",), context=ro),
        run("--outputs on a full disk (2 MB tmpfs, 0 free)", "error", "--image", s["face"],
            *hello, "--outputs", str(mnt / "full" / "outputs"), context=full),
        run("--outputs on a nearly full disk (160 KB free)", "error", "--image", s["face"],
            *hello, "--outputs", str(mnt / "nearly" / "outputs"), context=nearly),
        # bench
        bench("one still cell (valid)", "ok", "--models", "still", "--cases", toml["ok"]),
        bench("cases file with bad TOML", "error", "--models", "still", "--cases", toml["bad"],
              words=("not valid TOML",)),
        bench("cases file with unknown keys", "error", "--models", "still", "--cases",
              toml["unknown"], words=("unknown key",)),
        bench("cases file with duplicate ids", "error", "--models", "still", "--cases",
              toml["duplicate"], words=("earlier case",)),
        bench("cases file with no cases", "error", "--models", "still", "--cases", toml["none"],
              words=("no [[case]]",)),
        bench("cases file that does not exist", "error", "--models", "still", "--cases",
              str(cases_dir / "nope.toml"), words=("no cases file",)),
        bench("a case image that is a FIFO", "error", "--models", "still", "--cases",
              toml["fifo"], words=("not a regular file",)),
        bench("a case image that is a symlink loop", "error", "--models", "still", "--cases",
              toml["loop"]),
        bench("--models with an unknown name", "error", "--models", "still,nope", "--cases",
              toml["ok"], words=("unknown model",)),
        bench("--models with a repeated name", "error", "--models", "still,still", "--cases",
              toml["ok"], words=("more than once",)),
        bench("--models with an empty name", "error", "--models", "still,,", "--cases",
              toml["ok"], words=("empty name",)),
        bench("--models ''", "error", "--models", "", "--cases", toml["ok"]),
        bench("--repeat 0", "error", "--models", "still", "--cases", toml["ok"], "--repeat", "0",
              words=("--repeat",)),
        bench("--metrics with an unknown name", "error", "--models", "still", "--cases",
              toml["ok"], "--metrics", "nope", words=("unknown",)),
        bench("--resume of an unknown bench", "error", "--resume", "20200101-000000-dead",
              words=("no bench",)),
        bench("--executor unknown", "error", "--models", "still", "--executor", "cloud",
              words=("executor",)),
        bench("--outputs is a file", "error", "--models", "still", "--cases", toml["ok"],
              "--outputs", s["a_file"], words=("cannot write",)),
        # score
        scored("a video made elsewhere" + ("" if metric_ready else " (no metric env set up)"),
               "ok" if metric_ready else "error", s["video"], "--image", s["face"],
               words=() if metric_ready else ("no metric env",)),
        scored("video that does not exist", "error", str(work / "nope.mp4"), "--image", s["face"],
               words=("does not exist",)),
        scored("video that is a folder", "error", s["directory"], "--image", s["face"],
               words=("folder",)),
        scored("a PNG as the video", "error", s["face"], "--image", s["face"],
               words=("still image",)),
        scored("a text file named .mp4 as the video", "error", s["text_as_video"], "--image",
               s["face"], words=("not a video",)),
        scored("--image that is a symlink loop", "error", s["video"], "--image",
               s["symlink_loop"]),
        scored("--image that is not an image", "error", s["video"], "--image",
               s["text_as_image"], words=("not an image",)),
        scored("--metrics with an unknown name", "error", s["video"], "--image", s["face"],
               "--metrics", "nope", words=("unknown",)),
        scored("--metrics with a repeated name", "error", s["video"], "--image", s["face"],
               "--metrics", "face,face", words=("more than once",)),
        # setup sessions
        setup("still, already set up", "ok", "setup-still"),
        setup("--dry-run of an env not set up", "ok", f"setup-{not_set_up or 'mouth'}",
              "--dry-run"),
        setup("a typo in the session name", "error", "setup-stil"),
        setup("an unknown option", "error", "setup-still", "--bogus"),
        setup("an unknown --profile", "error", "setup-still", "--profile", "nope",
              words=("profile",)),
        setup("--rehearse of a TTS", "error", "setup-tts-piper", "--rehearse",
              words=("--rehearse",)),
        setup("--rehearse of a model with no rehearsal", "error", "setup-still", "--rehearse"),
        setup("THB_ENVS_DIR is a file", "error", "setup-still", env={"THB_ENVS_DIR": s["a_file"]}),
        setup("THB_ENVS_DIR on a read-only filesystem", "error", "setup-still",
              env={"THB_ENVS_DIR": str(mnt / "ro" / "envs")}, context=ro),
        setup("THB_ENVS_DIR on a full disk", "error", "setup-still",
              env={"THB_ENVS_DIR": str(mnt / "full" / "envs")}, context=full),
    ]


def _cases_files(folder: Path, f: dict[str, Path]) -> dict[str, str]:
    face = json.dumps(str(f["face"]))
    texts = {
        "ok": f'schema = 1\n[[case]]\nid = "hello"\nimage = {face}\ntext = "Hello there."\n',
        "bad": f'schema = 1\n[[case]\nid = "hello"\nimage = {face}\n',
        "unknown": (f'schema = 1\ntitle = "mine"\n[[case]]\nid = "hello"\nimage = {face}\n'
                    'text = "Hello there."\nspeed = 2\n'),
        "duplicate": (f'[[case]]\nid = "same"\nimage = {face}\ntext = "Hello."\n'
                      f'[[case]]\nid = "same"\nimage = {face}\ntext = "Bye."\n'),
        "none": "schema = 1\n",
        "fifo": (f'[[case]]\nid = "pipe"\nimage = {json.dumps(str(f["fifo"]))}\n'
                 'text = "Hello."\n'),
        "loop": (f'[[case]]\nid = "loop"\nimage = {json.dumps(str(f["symlink_loop"]))}\n'
                 'text = "Hello."\n'),
    }
    out = {}
    for name, text in texts.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
        out[name] = str(folder / f"{name}.toml")
    return out


def ready(kind: Kind, name: str) -> bool:
    try:
        return envs.Env.of(specs.get(kind, name)).is_ready()
    except UserError:
        return False
