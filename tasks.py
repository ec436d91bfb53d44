"""invoke tasks: thin wrappers over thbench.cli. `uv run invoke --list` shows them."""

from __future__ import annotations

from pathlib import Path

from invoke import task

from thbench import cli, runs
from thbench import mirror as mirrors  # `mirror` is the task
from thbench.errors import UserError, exits_cleanly


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


@task(
    positional=["model"],
    help={
        "model": "model name, e.g. still, sadtalker (see `invoke models`)",
        "image": "face photo (PNG or JPEG)",
        "text": "text to speak (give this or --audio)",
        "audio": "speech recording to use instead of TTS",
        "tts": "TTS backend for --text (default: piper)",
        "outputs": "folder for run folders (default: outputs/, or THB_OUTPUTS_DIR)",
        "face-check": "refuse images with no detectable face (default); --no-face-check skips it",
        "rehearse": "run the env set up with `-- --rehearse` (random stand-in weights); the "
                    "record and the table say so",
        "offline": "run the inference with no network at all (its own network namespace)",
    },
)
@exits_cleanly
def run(c, model, image=None, text=None, audio=None, tts=cli.DEFAULT_TTS, outputs=None,
        face_check=True, rehearse=False, offline=False):
    """Turn an image and a text (or audio) into a checked talking video in outputs/<model>/<run-id>/."""
    if image is None:
        raise UserError("no --image given", f"e.g. `uv run invoke run {model} --image "
                        'assets/face.png --text "Hello there"`')
    request = runs.Request(
        model=model, image=Path(image), text=text, audio=Path(audio) if audio else None,
        tts=tts, outputs=Path(outputs) if outputs else None, face_check=face_check,
        rehearse=rehearse, offline=offline,
    )
    if not cli.run(request).ok:
        raise SystemExit(1)


@task(help={"outputs": "folder for run folders (default: outputs/)"})
@exits_cleanly
def demo(c, outputs=None):
    """Set up `still` + Piper and turn assets/face.png + assets/sample.txt into a checked video."""
    if not cli.demo(Path(outputs) if outputs else None).ok:
        raise SystemExit(1)


@task
@exits_cleanly
def models(c):
    """List the models, their GPU needs and whether their env is set up."""
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
    if not dest:
        raise UserError("no --dest given", f"e.g. `uv run invoke mirror --dest ~/thb-mirror "
                        f"--repo {mirrors.EXAMPLE}`")
    for served in mirrors.make(Path(dest), mirrors.parse_pairs(repo or [])):
        refs = f"{served.refs} ref" + ("s" if served.refs != 1 else "")
        print(f"{served.action:>9}  {served.slug} → {served.source} ({refs})")
    print(f"export {mirrors.env_line(Path(dest))}")
