"""invoke tasks: thin wrappers over thbench.cli. `uv run invoke --list` shows them.

Each task imports what it runs inside its body: listing the tasks (typed more than anything)
then costs invoke and the stdlib only, not requests, rich, huggingface_hub and the rest."""

from __future__ import annotations

from pathlib import Path

from invoke import task

from thbench.errors import UserError, exits_cleanly
from thbench.specs import DEFAULT_TTS


@task(help={
    "dry-run": "show the status table and the commands, change nothing",
    "uv-from": "how to install uv if missing: pypi (default) or installer (honours "
               "UV_INSTALLER_GITHUB_BASE_URL / UV_DOWNLOAD_URL)",
})
def bootstrap(c, dry_run=False, uv_from="pypi"):
    """Install the Debian packages in bootstrap/apt-packages.txt and uv, where missing."""
    from bootstrap import bootstrap as boot

    argv = ["--uv-from", uv_from] + (["--dry-run"] if dry_run else [])
    raise SystemExit(boot.main(argv))


SPEECH_HELP = {
    "voice": "TTS voice: piper catalogue name (e.g. de_DE-thorsten-medium, fetched once), "
             "espeak voice or language (de, cmn), coqui model name or model folder "
             "(see `invoke voices`)",
    "speaker": "speaker name or number, for multi-speaker voices",
    "language": "the language to speak, for voices that speak several (Coqui XTTS), e.g. de",
    "rate": "speaking-rate multiplier, 0.5-2.0 (default 1.0: the voice's own pace)",
    "sentence-silence": "seconds of silence between sentences (default 0.25)",
    "cache": "reuse speech made earlier from the same text, voice and settings (default); "
             "--no-cache makes it again",
    "accept-model-license": "accept a voice's non-commercial or click-through licence (XTTS's "
                            "CPML, CC BY-NC); same as COQUI_TOS_AGREED=1",
}


def _speech(voice, speaker, language, rate, sentence_silence, cache, accept_model_license):
    from thbench import speech

    return speech.Settings(
        voice=voice, speaker=speaker, language=language, rate=_number(rate, "rate", 1.0),
        sentence_silence=_number(sentence_silence, "sentence-silence", speech.DEFAULT_SILENCE_S),
        accept_license=accept_model_license, use_cache=cache)


def _number(text: str | None, flag: str, default: float) -> float:
    """``--flag X`` as a number, or ERROR + TIP (invoke would parse a float default itself,
    with a traceback on a typo)."""
    if text is None:
        return default
    try:
        return float(str(text))
    except ValueError:
        raise UserError(f"--{flag} {text}: not a number", f"e.g. --{flag} {default}") from None


def _text(text: str | None, text_file: str | None) -> str | None:
    if text is not None and text_file is not None:
        raise UserError("give --text or --text-file, not both", "drop one of them")
    if text_file is None:
        return text
    path = Path(text_file).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"--text-file {path} is not UTF-8 text ({err.reason} at byte {err.start})",
                        f"convert it: `iconv -t UTF-8 {path} > text.txt`") from None
    except OSError as err:
        raise UserError(f"cannot read --text-file {path}: {err.strerror or err}",
                        "give a readable UTF-8 text file") from None


@task(
    positional=["model"],
    help={
        "model": "model name, e.g. still, sadtalker (see `invoke models`)",
        "image": "face photo (PNG or JPEG)",
        "text": "text to speak (give this, --text-file or --audio)",
        "text-file": "UTF-8 file holding the text to speak (for text too long for a command line)",
        "audio": "speech recording to use instead of TTS",
        "tts": "TTS backend for --text (default: piper)",
        "outputs": "folder for run folders (default: outputs/, or THB_OUTPUTS_DIR)",
        "face-check": "refuse images with no detectable face (default); --no-face-check skips it",
        "rehearse": "run the env set up with `-- --rehearse` (random stand-in weights); the "
                    "record and the table say so",
        "offline": "run the inference with no network at all (its own network namespace)",
        **SPEECH_HELP,
    },
)
@exits_cleanly
def run(c, model, image=None, text=None, audio=None, tts=DEFAULT_TTS, outputs=None,
        face_check=True, rehearse=False, offline=False, text_file=None, voice=None, speaker=None,
        language=None, rate=None, sentence_silence=None, cache=True, accept_model_license=False):
    """Turn an image and a text (or audio) into a checked talking video in outputs/<model>/<run-id>/."""
    if image is None:
        raise UserError("no --image given", f"e.g. `uv run invoke run {model} --image "
                        'assets/face.png --text "Hello there"`')
    from thbench import cli, runs

    request = runs.Request(
        model=model, image=Path(image), text=_text(text, text_file),
        audio=Path(audio) if audio else None, tts=tts,
        outputs=Path(outputs) if outputs else None, face_check=face_check,
        rehearse=rehearse, offline=offline,
        speech_settings=_speech(voice, speaker, language, rate, sentence_silence, cache,
                                accept_model_license),
    )
    if not cli.run(request).ok:
        raise SystemExit(1)


@task(help={"outputs": "folder for run folders (default: outputs/)"})
@exits_cleanly
def demo(c, outputs=None):
    """Set up `still` + Piper and turn assets/face.png + assets/sample.txt into a checked video."""
    from thbench import cli

    if not cli.demo(Path(outputs) if outputs else None).ok:
        raise SystemExit(1)


@task
@exits_cleanly
def models(c):
    """List the models, their GPU needs and whether their env is set up."""
    from thbench import cli

    cli.list_models()


@task(
    iterable=["repo"],
    help={
        "dest": "folder to hold the mirror (<owner>/<name> bare repositories); made if missing",
        "repo": "owner/name=PATH: serve the git repository at PATH (bare, or a work tree) as "
                "github.com/owner/name; repeat for each repository",
    },
)
@exits_cleanly
def mirror(c, dest=None, repo=None):
    """Make a THB_GITHUB_MIRROR folder from git repositories here, leaving them untouched."""
    from thbench import mirror as mirrors  # `mirror` is this task

    if not dest:
        raise UserError("no --dest given", f"e.g. `uv run invoke mirror --dest ~/thb-mirror "
                        f"--repo {mirrors.EXAMPLE}`")
    for served in mirrors.make(Path(dest), mirrors.parse_pairs(repo or [])):
        refs = f"{served.refs} ref" + ("s" if served.refs != 1 else "")
        print(f"{served.action:>9}  {served.slug} → {served.source} ({refs})")
    print(f"export {mirrors.env_line(Path(dest))}")


@task(
    help={
        "models": "comma-separated models, e.g. still,mouth (see `invoke models`)",
        "cases": "cases TOML file (default: assets/cases.toml)",
        "repeat": "runs of each model on each case (default 1)",
        "resume": "an earlier bench id: run its cells that are not complete, keep the rest",
        "retry-failed": "with --resume: run failed cells again too (new run folders)",
        "metrics": "comma-separated metric envs (default: every one that is set up)",
        "tts": "TTS backend for the text cases (default: piper)",
        "outputs": "folder for run and bench folders (default: outputs/, or THB_OUTPUTS_DIR)",
        "face-check": "refuse case images with no detectable face (default)",
        "executor": "local (default), slurm (submitit), or submitit-local (submitit on this "
                    "machine)",
        "jobs": "local: CPU-only cells side by side (default: half the cores)",
        "partition": "slurm: the partition to submit to",
        "gpus-per-run": "slurm: GPUs per cell (default 1)",
        "time-limit": "slurm / submitit-local: minutes per cell (default 240)",
        **SPEECH_HELP,
    },
)
@exits_cleanly
def bench(c, models=None, cases=None, repeat=None, resume=None, retry_failed=False, metrics=None,
          tts=None, outputs=None, face_check=True, executor="local", jobs=None,
          partition=None, gpus_per_run=None, time_limit=None, voice=None, speaker=None,
          language=None, rate=None, sentence_silence=None, cache=True,
          accept_model_license=False):
    """Run every model on every case (× repeats) and score each video, in outputs/bench/<id>/."""
    # Numbers arrive as text (an int default would make invoke parse them, with a traceback).
    from thbench import bench as benches
    from thbench import cli, executors

    options = executors.Options(
        name=executor, jobs=_count(jobs, "jobs", None), partition=partition,
        gpus_per_run=_count(gpus_per_run, "gpus-per-run", 1),
        time_limit_min=_count(time_limit, "time-limit", 240))
    fixed = [flag for flag, given in (("--models", models), ("--cases", cases),
                                      ("--repeat", repeat), ("--metrics", metrics),
                                      ("--tts", tts), ("--no-face-check", not face_check),
                                      ("--voice", voice), ("--speaker", speaker),
                                      ("--language", language),
                                      ("--rate", rate), ("--sentence-silence", sentence_silence),
                                      ("--no-cache", not cache))
             if given]
    if resume and fixed:
        raise UserError(f"a resumed bench keeps its own matrix; {', '.join(fixed)} cannot change it",
                        f"run `uv run invoke bench --resume {resume}` without them")
    if not resume and not models:
        raise UserError("no --models given", "e.g. `uv run invoke bench --models still,mouth`")
    if retry_failed and not resume:
        raise UserError("--retry-failed is for a resumed bench",
                        "pass --resume BENCH_ID with it")
    request = None if resume else benches.Request(
        models=models, cases=Path(cases) if cases else None,
        repeat=_count(repeat, "repeat", 1), outputs=Path(outputs) if outputs else None,
        tts=tts or DEFAULT_TTS, metrics=metrics, face_check=face_check,
        speech=_speech(voice, speaker, language, rate, sentence_silence, cache,
                       accept_model_license))
    summary = cli.bench(request, options, resume=resume, retry_failed=retry_failed,
                        outputs=Path(outputs) if outputs else None)
    if summary.counts["ok"] != sum(summary.counts.values()):
        raise SystemExit(1)


def _count(text: str | None, flag: str, default: int | None, minimum: int = 1) -> int | None:
    """``--flag N`` as a whole number of at least ``minimum``, or ERROR + TIP."""
    if text is None:
        return default
    try:
        value = int(str(text))
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise UserError(f"--{flag} {text}: not a whole number of at least {minimum}",
                        f"e.g. --{flag} {max(minimum, 1)}")
    return value


@task(
    positional=["video"],
    help={
        "video": "the video to score (made by any model, anywhere)",
        "image": "the source face image it was made from",
        "label": "name for it in reports (default: the file name)",
        "metrics": "comma-separated metric envs (default: every one that is set up)",
        "outputs": "folder for the score folder (default: outputs/scores/)",
    },
)
@exits_cleanly
def score(c, video, image=None, label=None, metrics=None, outputs=None):
    """Score any video against its source image with the bench's metrics (outputs/scores/<id>/)."""
    if image is None:
        raise UserError("no --image given", f"e.g. `uv run invoke score {video} --image "
                        "assets/face.png`")
    from thbench import cli

    cli.score_video(Path(video), Path(image), label=label, metrics=metrics,
                    outputs=Path(outputs) if outputs else None)


@task(
    positional=["benches"],
    help={
        "benches": "bench ids or folders, comma-separated, and/or score records (a score.json or "
                   "a folder holding one); `latest`: the newest bench",
        "out": "the report folder to write, new or empty (default: outputs/reports/<id>/)",
    },
)
@exits_cleanly
def report(c, benches, out=None):
    """Write a report (index.html, results.csv, results.json) from stored records; runs nothing."""
    from thbench import cli

    cli.report(benches.split(","), Path(out) if out else None)


@task(help={
    "tts": "backend whose voices to list: piper (default), espeak, coqui",
    "language": "only voices of this language, e.g. de, zh, en_GB",
})
@exits_cleanly
def voices(c, tts=DEFAULT_TTS, language=None):
    """List a TTS backend's voices: language, quality, speakers, size, installed or fetchable."""
    from thbench import cli

    cli.list_voices(tts, language)


@task(help={"json": "print the same lines as JSON on stdout instead of the table"})
@exits_cleanly
def doctor(c, json=False):
    """Check this machine: package managers, Pythons, tools, GPU driver, disk, hosts, envs."""
    from thbench import doctor as checkup

    raise SystemExit(checkup.main(as_json=json))
