"""The cases of the bad-input catalogue (benchmarks/bad_inputs.py), over the files that
bad_input_files.py makes.

A case is one command line and what it must end in. The runner lends the machinery: ``mount``
(a small tmpfs for a read-only or a full disk) and ``unprivileged`` (how to run a command that
must not read a chmod 000 file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from thbench import envs, score, specs
from thbench.errors import UserError
from thbench.specs import Kind


@dataclass
class Case:
    name: str
    command: str  # run, bench, score, setup
    argv: list[str]  # after `python -m invoke` (or `python -m nox` for setup)
    expect: str  # "error" (a mistake) or "ok" (odd but valid)
    words: tuple[str, ...] = ()  # each must be in the ERROR line
    tip_words: tuple[str, ...] = ()  # each must be in the TIP line
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
        image("20000x20000 PNG (270 KB, too big for ffmpeg)", "huge_pixels", "error",
              ("20000x20000",), tip_words=("resize it to at most 4096 px a side",)),
        image("8000x8000 PNG (62 KB, one ffmpeg can decode)", "big_pixels", "error",
              ("8000x8000",), tip_words=("resize it to at most 4096 px a side", "scale=")),
        image("16000x16000 16-bit RGBA PNG (2 MB, 2 GB of pixels; refused by its header)",
              "huge_rgba64", "error", ("16000x16000", "between 64 and 4096"),
              tip_words=("resize it to at most 4096 px a side", "scale=")),
        image("1 GiB PNG (valid picture + zeros, sparse; refused by size)", "huge_bytes", "error",
              ("1074 MB", "at most 200 MB"), tip_words=("PNG or JPEG at most 4096 px a side",)),
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
