"""What the invoke tasks and nox sessions call: plain functions with plain arguments."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import bench as benches
from thbench import check, envs, executors, gpu, matrix, media, paths, rehearsal, runs, score, specs
from thbench.errors import UserError, print_error
from thbench.metric_spec import Direction
from thbench.specs import DEFAULT_TTS, Gpu, Kind

console = Console(highlight=False)
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


def list_voices(tts_name: str, language: str | None = None) -> None:
    """The backend's voices as a table; ``language`` keeps those of that language: its tag
    (``de``, ``en_GB``), or for eSpeak another language the voice answers to."""
    from thbench import voices

    tts = specs.get(Kind.TTS, tts_name)
    if language and tts.name in voices.CATALOGUED:
        from thbench import piper_voices

        rows = [voices.from_row(tts.name, row) for row in piper_voices.listing(language)]
    else:
        wanted = (language or "").replace("-", "_").lower()

        def speaks(v: voices.Voice) -> bool:
            tags = [t.replace("-", "_").lower() for t in (v.language or "", *v.aliases)]
            return any(t == wanted or t.split("_")[0] == wanted for t in tags)

        rows = [v for v in voices.listing(tts) if not wanted or speaks(v)]
    if not rows:
        other = (f", or `uv run invoke voices --tts espeak --language {language}`"
                 if tts.name != "espeak" else "")
        raise UserError(f"{tts.name} has no voice for language '{language}'",
                        f"list them all with `uv run invoke voices --tts {tts.name}`{other}")
    table = Table(title=f"{tts.name} voices" + (f" for '{language}'" if language else ""))
    licences = any(v.license for v in rows)
    for column in ("voice", "lang", "quality", "spk", "size", "state") + (
            ("licence",) if licences else ()):
        table.add_column(column, no_wrap=column != "licence")
    default = tts.command.default_voice
    for v in rows:
        size = f"{v.size_bytes / 1e6:.0f}M" if v.size_bytes else "–"
        state = "default" if v.name == default else "ready" if v.installed else "fetch"
        cells = [v.name, v.language or "?", v.quality or "–", str(len(v.speakers) or 1), size, state]
        if licences:
            cells.append((v.license or "–") + (" (consent)" if v.needs_consent else ""))
        table.add_row(*cells)
    # Piped into a file or grep, the table keeps its long voice names rather than 80 columns.
    wide = console if console.is_terminal else Console(highlight=False, width=160)
    wide.print(table)
    console.print(f"[dim]{len(rows)} voice(s). 'fetch': downloaded once on first use. Use one "
                  f"with `uv run invoke run MODEL --image … --text … --tts {tts.name} "
                  "--voice NAME`[/]")


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


# --- bench, score ---------------------------------------------------------------------------


def bench(request: benches.Request | None, options: executors.Options, *,
          resume: str | None = None, retry_failed: bool = False,
          outputs: Path | None = None) -> matrix.Summary:
    """Plan a new bench (or load one to resume), run its pending cells, print the summary."""
    executors.validate(options)
    if resume:
        found = benches.load(resume, outputs)
        benches.check_resumable(found, options.to_dict())
    else:
        assert request is not None
        found = benches.plan(replace(request, executor=options.to_dict()))
    cells = len(found.cells())
    console.print(f"[bold]Bench {found.id}[/]: {len(found.record['models'])} models × "
                  f"{len(found.record['cases'])} cases × {found.record['repeat']} = {cells} runs "
                  f"[dim]→ {found.folder}[/]")
    try:
        summary = matrix.execute(found, options, retry_failed=retry_failed)
    except KeyboardInterrupt:
        raise UserError(f"bench {found.id} was interrupted; complete cells are kept",
                        f"resume it with `uv run invoke bench --resume {found.ref}`",
                        exit_code=130) from None
    matrix.print_summary(summary)
    return summary


def score_video(video: Path, image: Path, *, label: str | None = None,
                outputs: Path | None = None, metrics: str | None = None) -> dict:
    """Score a video made anywhere into outputs/scores/<id>/score.json; print its metrics."""
    video, image = media.resolve_input(video, "video"), media.resolve_input(image, "image")
    media.validate_image(image)
    score.require_video(video)  # before the score folder: a mistake leaves nothing behind
    names = benches.parse_names(metrics, "metrics", "face,identity") if metrics else None
    chosen = score.metric_specs(names)
    if not any(score.ready(s) for s in chosen):
        raise UserError("no metric env is set up", "run `uv run nox -t metric` (or "
                        + ", ".join(f"`uv run nox -s {s.setup_session}`" for s in chosen) + ")")
    root = (outputs or paths.outputs_root()).expanduser().resolve() / "scores"
    runs.check_writable(root)
    folder = root / runs.new_run_id()
    folder.mkdir(parents=True)
    record = score.score(video, image, folder, label=label or video.stem,
                         names=[s.name for s in chosen])
    table = Table(title=f"score of {video.name}", title_justify="left")
    for column in ("metric", "", "value", "spec"):
        table.add_column(column)
    for item in record["metrics"].values():
        value = (f"{item['value']:.4g} {item['unit']}".strip() if item["value"] is not None
                 else f"[yellow]not computed: {item['not_computed']}[/]")
        table.add_row(item["label"], Direction(item["direction"]).arrow, value, item["spec"])
    console.print(table)
    console.print(f"[dim]record: {folder / 'score.json'}[/] — `uv run invoke report {folder}`")
    return record


def report(inputs: list[str], out: Path | None = None) -> Path:
    """A report folder from bench folders / ids and score records ("latest": the newest bench)."""
    from thbench import report as reports  # the page builder: only this command needs it

    if "latest" in inputs:
        found = sorted((paths.outputs_root() / "bench").glob("*/bench.json"))
        if not found:
            raise UserError(f"no bench under {paths.outputs_root() / 'bench'} to report on",
                            "run one first: `uv run invoke bench --models still,mouth`")
        inputs = [str(found[-1].parent) if i == "latest" else i for i in inputs]
    folder = out or paths.outputs_root() / "reports" / runs.new_run_id()
    summary = reports.build([reports.resolve_input(i.strip()) for i in inputs], folder)
    console.print(f"report of {', '.join(summary.benches) or 'score records'}: {summary.cells} "
                  f"cells, {summary.videos} videos → [bold]{summary.index}[/]")
    return summary.index


BASELINES = "still,mouth"
OFFLINE_METRICS = ("face", "identity")  # syncnet needs weights from a host this may not reach


def bench_baselines() -> matrix.Summary:
    """The two built-in baselines on the default cases, scored offline, and their report."""
    for name in BASELINES.split(","):
        setup_for_run(Kind.MODEL, name)
    for name in OFFLINE_METRICS:
        envs.setup(specs.get(Kind.METRIC, name))
    summary = bench(benches.Request(models=BASELINES, metrics=",".join(OFFLINE_METRICS)),
                    executors.Options())
    if summary.complete:
        report([str(summary.bench.folder)])
    return summary
