"""What the invoke tasks and nox sessions call: plain functions with plain arguments."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import check, envs, gpu, paths, rehearsal, runs, specs
from thbench.errors import UserError, print_error
from thbench.specs import Gpu, Kind

console = Console(highlight=False)
DEFAULT_TTS = "piper"
DEMO_IMAGE = paths.REPO_ROOT / "assets" / "face.png"
DEMO_TEXT = paths.REPO_ROOT / "assets" / "sample.txt"


def setup_for_run(kind: Kind, name: str, *, force: bool = False, profile: str | None = None,
                  dry_run: bool = False, rehearse: bool = False) -> None:
    """Set up one env; a model also gets what `run` needs beside it (default TTS, face check)."""
    spec = specs.get(kind, name)
    if rehearse and kind is not Kind.MODEL:
        raise UserError(f"--rehearse is for models; {spec.name} is a {kind.label}",
                        f"run `uv run nox -s {spec.setup_session}`")
    if rehearse:
        rehearsal.spec_for(spec)  # ERROR + TIP now if the model has no [rehearsal]
    elif spec.gpu is Gpu.REQUIRED and not gpu.detect():
        console.print(f"[yellow]Note: '{name}' needs an NVIDIA GPU to run, and this machine has "
                      "none; setting it up anyway.")
    envs.setup(spec, force=force, profile=profile, dry_run=dry_run, rehearse=rehearse)
    if kind is Kind.MODEL:
        envs.setup(specs.get(Kind.TTS, DEFAULT_TTS), dry_run=dry_run)
        envs.setup(specs.get(Kind.CHECK, "face"), dry_run=dry_run)


def run(request: runs.Request) -> runs.Result:
    """Run the chain and show its outcome; the caller turns a failed run into a non-zero exit."""
    result = runs.run(request)
    marker = " — REHEARSAL: random stand-in weights" if request.rehearse else ""
    if result.report.items:
        console.print(check.render_table(result.report, note=marker))
    if result.record["status"] != "stopped":  # a stop is said by runs.run
        state = ("[green]ok[/]" if result.ok else
                 f"[red]failed[/] ({result.record['failure']['reason']})")
        console.print(f"{state}{marker}: {result.run_dir / 'video.mp4'}")
    console.print(f"[dim]record: {result.run_dir / 'run.json'}[/]")
    return result


def demo(outputs: Path | None = None) -> runs.Result:
    """The embedded default: set up `still` + Piper, speak the sample text, make and check the video."""
    setup_for_run(Kind.MODEL, "still")
    text = DEMO_TEXT.read_text(encoding="utf-8")
    return run(runs.Request(model="still", image=DEMO_IMAGE, text=text, outputs=outputs))


def list_models() -> None:
    table = Table(title="Models")
    for column in ("model", "gpu", "python", "env", "rehearsal", "description"):
        table.add_column(column, no_wrap=column not in ("description", "rehearsal"))
    for spec in specs.load_all()[Kind.MODEL].values():
        table.add_row(spec.name + (" (baseline)" if spec.baseline else ""), spec.gpu.value,
                      spec.python, _env_state(spec), _rehearsal_state(spec), spec.description)
    console.print(table)


def _env_state(spec: specs.Spec) -> str:
    if envs.Env.of(spec).is_ready():
        return "[green]ready[/]"
    if spec.rehearsal and envs.Env.of(spec, rehearse=True).is_ready():
        return "[yellow]rehearsal (stand-in weights)[/]"
    return f"[dim]nox -s {spec.setup_session}[/]"


def _rehearsal_state(spec: specs.Spec) -> str:
    if not spec.rehearsal:
        return "[dim]—[/]"
    record = rehearsal.read_record(spec)
    return f"{record['reached']} ({record['date']})" if record else "[dim]not yet run[/]"


def rehearse(name: str, *, text: str, force: bool = False,
             offline: bool = False) -> runs.Result | None:
    """Set up with stand-in weights, run the demo face, write solutions/<name>/rehearsal.json.

    A setup that fails is recorded too ("failed at setup: …"): how far a rehearsal got is the
    point of its record.
    """
    spec = specs.get(Kind.MODEL, name)
    try:
        setup_for_run(Kind.MODEL, name, force=force, rehearse=True)
    except UserError as err:
        if spec.rehearsal is not None:
            rehearsal.write_record(spec, rehearsal.setup_failure(spec, err.message))
        raise
    try:
        result = run(runs.Request(model=name, image=DEMO_IMAGE, text=text, rehearse=True,
                                  offline=offline))
        run_dir = result.run_dir
    except UserError as err:
        run_dir = getattr(err, "run_dir", None)
        if run_dir is None:  # a mistake before the run started: nothing to record
            raise
        print_error(err)
        result = None
    env = envs.Env.of(spec, rehearse=True)
    run_record = json.loads((run_dir / "run.json").read_text())
    record = rehearsal.build_record(env.spec, env.read_stamp() or {}, run_record)
    path = rehearsal.write_record(spec, record)
    console.print(f"[bold]{name}[/]: rehearsed up to [bold]{record['reached']}[/] "
                  f"[dim](record: {path})[/]")
    return result
