"""What the invoke tasks and nox sessions call: plain functions with plain arguments."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import check, envs, gpu, paths, runs, specs
from thbench.specs import Gpu, Kind

console = Console(highlight=False)
DEFAULT_TTS = "piper"
DEMO_IMAGE = paths.REPO_ROOT / "assets" / "face.png"
DEMO_TEXT = paths.REPO_ROOT / "assets" / "sample.txt"


def setup_for_run(kind: Kind, name: str, *, force: bool = False, profile: str | None = None,
                  dry_run: bool = False) -> None:
    """Set up one env; a model also gets what `run` needs beside it (default TTS, face check)."""
    spec = specs.get(kind, name)
    if spec.gpu is Gpu.REQUIRED and not gpu.detect():
        console.print(f"[yellow]Note: '{name}' needs an NVIDIA GPU to run, and this machine has "
                      "none; setting it up anyway.")
    envs.setup(spec, force=force, profile=profile, dry_run=dry_run)
    if kind is Kind.MODEL:
        envs.setup(specs.get(Kind.TTS, DEFAULT_TTS), dry_run=dry_run)
        envs.setup(specs.get(Kind.CHECK, "face"), dry_run=dry_run)


def run(request: runs.Request) -> runs.Result:
    """Run the chain and show its outcome; the caller turns a failed run into a non-zero exit."""
    result = runs.run(request)
    console.print(check.render_table(result.report))
    state = "[green]ok[/]" if result.ok else f"[red]failed[/] ({result.record['failure']['reason']})"
    console.print(f"{state}: {result.run_dir / 'video.mp4'}")
    console.print(f"[dim]record: {result.run_dir / 'run.json'}[/]")
    return result


def demo(outputs: Path | None = None) -> runs.Result:
    """The embedded default: set up `still` + Piper, speak the sample text, make and check the video."""
    setup_for_run(Kind.MODEL, "still")
    text = DEMO_TEXT.read_text(encoding="utf-8")
    return run(runs.Request(model="still", image=DEMO_IMAGE, text=text, outputs=outputs))


def list_models() -> None:
    table = Table(title="Models")
    for column in ("model", "gpu", "python", "env", "description"):
        table.add_column(column, no_wrap=column != "description")
    for spec in specs.load_all()[Kind.MODEL].values():
        ready = "[green]ready[/]" if envs.Env.of(spec).is_ready() else \
            f"[dim]nox -s {spec.setup_session}[/]"
        name = spec.name + (" (baseline)" if spec.baseline else "")
        table.add_row(name, spec.gpu.value, spec.python, ready, spec.description)
    console.print(table)
