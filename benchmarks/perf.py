"""Performance of the orchestrator itself, measured on this machine; prints ratios, asserts nothing.

    uv run python benchmarks/perf.py                  # one short text case × 2 repeats
    uv run python benchmarks/perf.py --default-cases  # assets/cases.toml instead

(a) a real bench (`uv run invoke bench`): per cell, the wall time less the work it exists to do
    (TTS, inference, metric commands) is the overhead; (b) `invoke report` on a synthetic
    300-cell bench built from one real run; (c) each metric spec's compute seconds per second
    of video. Needs the model envs, Piper and the face check set up; metric envs are optional.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from thbench import envs, paths, proc, report, resources, specs
from thbench.errors import UserError, print_error
from thbench.specs import Kind

SHORT_CASE = 'schema = 1\n\n[[case]]\nid = "short"\nimage = {image}\ntext = "Hello there."\n'
# Piped output (a log, a report) gets room for the tables rather than rich's 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="still,mouth", help="models to bench (default: %(default)s)")
    parser.add_argument("--cases", type=Path, help="cases TOML (default: one short text case)")
    parser.add_argument("--default-cases", action="store_true", help="use assets/cases.toml")
    parser.add_argument("--repeat", type=int, default=2, help="repeats per cell (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells side by side (default 1: a cell's wall is its own, not shared)")
    parser.add_argument("--synthetic", default="5x20x3",
                        help="models x cases x repeats of the synthetic report bench (default: %(default)s)")
    parser.add_argument("--report-builds", type=int, default=3, help="report builds timed (median)")
    parser.add_argument("--json", type=Path, help="results file (default: in the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (bench, runs)")
    return parser.parse_args(argv)


def _median_seconds(argv: list, times: int = 3) -> float:
    return statistics.median(proc.run(argv, cwd=paths.REPO_ROOT, capture=True, timeout=300).seconds
                             for _ in range(times))


def _file_times(files: list[Path]) -> dict[Path, tuple[float | None, float]]:
    """path -> (birth, last write) in ns-resolution epoch seconds; birth None where the
    filesystem does not record it (Python 3.11's os.stat has no birth time on Linux)."""
    done = proc.run(["stat", "--format=%.9W\t%.9Y", *files], capture=True, timeout=60)
    out = {}
    for path, line in zip(files, done.stdout.splitlines(), strict=True):
        born, written = line.split("\t")
        out[path] = (float(born) if born not in ("-", "?") and float(born) > 0 else None,
                     float(written))
    return out


def _iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _cells(folder: Path) -> list[dict]:
    """Each cell of the bench in ``folder`` with its run and score records and its timings."""
    cells = [json.loads(p.read_text()) for p in sorted((folder / "cells").glob("*.json"))]
    failed = [c["cell"] for c in cells if c["status"] != "ok"]
    if failed:
        raise UserError(f"cells {', '.join(failed)} did not end ok: their overhead would be "
                        "another thing", f"read their logs under {folder / 'logs'}")
    logs = [folder / c["log"] for c in cells]
    runs = [(folder / c["run_dir"]).resolve() for c in cells]
    norms = [r / "score" / "logs" / "normalise.log" for r in runs]
    times = _file_times(logs + norms)
    for cell, log, run_dir, norm in zip(cells, logs, runs, norms, strict=True):
        cell["run"] = json.loads((run_dir / "run.json").read_text())
        cell["score"] = json.loads((run_dir / "score.json").read_text())
        cell["run_path"] = run_dir
        born, written = times[log]
        if born is not None:  # the log is made just before the cell's process starts
            cell["wall_s"], cell["wall_from"] = written - born, "cell log: birth → last write"
        else:
            cell["wall_s"] = _iso(cell["finished"]) - _iso(cell["started"])
            cell["wall_from"] = "cell record started → finished (1 s resolution)"
        nborn, nwritten = times[norm]
        cell["normalise_s"] = nwritten - nborn if nborn is not None else None
    return cells


def _stage(run: dict, name: str) -> float:
    return float((run["stages"].get(name) or {}).get("seconds") or 0.0)


def bench_overhead(opts: argparse.Namespace, work: Path, models: list[str]) -> dict:
    """Part (a): run a real bench, then split each cell's wall into work and overhead."""
    scale = {"python -c pass": _median_seconds([sys.executable, "-c", "pass"]),
             "python -c 'import thbench.cell'": _median_seconds(
                 [sys.executable, "-c", "import thbench.cell"]),
             "uv run python -c pass": _median_seconds(["uv", "run", "python", "-c", "pass"]),
             "uv run invoke --list": _median_seconds(["uv", "run", "invoke", "--list"])}
    cases = paths.REPO_ROOT / "assets" / "cases.toml" if opts.default_cases else \
        opts.cases.resolve() if opts.cases else None
    if cases is None:
        cases = work / "cases.toml"
        cases.write_text(SHORT_CASE.format(image=json.dumps(str(paths.REPO_ROOT / "assets" /
                                                                 "face.png"))))
    outputs = work / "outputs"
    argv = ["uv", "run", "invoke", "bench", "--models", ",".join(models), "--cases", cases,
            "--repeat", str(opts.repeat), "--jobs", str(opts.jobs), "--outputs", outputs]
    console.print(f"[dim]running: {' '.join(map(str, argv))} (log: {work / 'bench.log'})[/]")
    bench_s = proc.run(argv, cwd=paths.REPO_ROOT, log=work / "bench.log", timeout=7200).seconds
    (folder,) = (outputs / "bench").iterdir()
    cells = _cells(folder)
    speech = sorted((folder / "logs").glob("speech-*.log"))
    speech_s = sum(w - b for b, w in _file_times(speech).values() if b is not None) if speech else 0.0
    per_model = {}
    for model in models:
        rows = []
        for cell in (c for c in cells if c["model"] == model):
            run = cell["run"]
            metric_s = sum(s.get("seconds") or 0.0 for s in cell["score"]["specs"].values())
            work_s = _stage(run, "tts") + _stage(run, "inference") + metric_s
            rows.append({"wall_s": cell["wall_s"], "tts_s": _stage(run, "tts"),
                         "inference_s": _stage(run, "inference"), "metrics_s": metric_s,
                         "prepare_and_check_s": _stage(run, "prepare") + _stage(run, "check"),
                         "normalise_s": cell["normalise_s"], "overhead_s": cell["wall_s"] - work_s})
        mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0] if
                all(r[k] is not None for r in rows)}
        useful = sum(r["inference_s"] + r["metrics_s"] for r in rows)
        per_model[model] = {"cells": len(rows), "mean": mean, "per_cell": rows,
                            "overhead_per_inference_plus_metrics": (
                                sum(r["overhead_s"] for r in rows) / useful if useful else None)}
    cell_sum = sum(c["wall_s"] for c in cells)
    return {"scale_s": scale, "bench_wall_s": bench_s, "speech_once_s": speech_s,
            "cells_wall_sum_s": cell_sum, "bench_level_rest_s": bench_s - speech_s - cell_sum,
            "wall_from": sorted({c["wall_from"] for c in cells}), "bench_folder": str(folder),
            "cases_file": str(cases), "repeat": opts.repeat, "jobs": opts.jobs,
            "per_model": per_model, "_cells": cells}


def synthetic_bench(root: Path, source: dict, shape: tuple[int, int, int]) -> Path:
    """A bench folder of models × cases × repeats cells, each a copy of ``source``'s run
    (run.json and score.json with their own ids, video.mp4 a symlink to the real one)."""
    n_models, n_cases, repeats = shape
    run, score, video = source["run"], source["score"], source["run_path"] / "video.mp4"
    folder = root / "bench" / "20000101-000000-synth"
    (folder / "cells").mkdir(parents=True)
    cases = [{"id": f"case-{i:02d}", "image": run["inputs"]["image"]["source"],
              "text": f"Synthetic case {i}.", "audio": None, "tags": ["synthetic"]}
             for i in range(n_cases)]
    models = [f"model-{m}" for m in range(1, n_models + 1)]
    number = 0
    for model in models:
        for case in cases:
            for rep in range(1, repeats + 1):
                number += 1
                run_id = f"20000101-000000-{number:04d}"
                run_dir = root / model / run_id
                run_dir.mkdir(parents=True)
                (run_dir / "run.json").write_text(json.dumps(run | {"run_id": run_id, "model": model}))
                (run_dir / "score.json").write_text(json.dumps(score | {"run": score["run"] | {
                    "model": model, "run_id": run_id, "case": case["id"], "repeat": rep}}))
                (run_dir / "video.mp4").symlink_to(video)
                cell = {"schema": 1, "cell": f"{model}/{case['id']}/{rep}", "model": model,
                        "case": case["id"], "repeat": rep, "status": "ok", "attempt": 1,
                        "run_dir": f"../../{model}/{run_id}", "run_status": "ok", "scored": True,
                        "error": None, "started": source["started"], "finished": source["finished"],
                        "log": f"logs/{model}__{case['id']}__{rep}.log"}
                (folder / "cells" / f"{model}__{case['id']}__{rep}.json").write_text(json.dumps(cell))
    (folder / "bench.json").write_text(json.dumps({
        "schema": 1, "kind": "bench", "bench_id": folder.name, "created": run["created"],
        "models": models, "repeat": repeats, "cases_file": "synthetic", "cases": cases,
        "executor": {"name": "local"}, "metrics": sorted(score["specs"]), "thbench": "perf"}))
    return folder


def report_cost(work: Path, source: dict, shape: tuple[int, int, int], builds: int) -> dict:
    """Part (b): time thbench.report.build on the synthetic bench."""
    folder = synthetic_bench(work / "synthetic", source, shape)
    cells = shape[0] * shape[1] * shape[2]
    seconds, load_seconds = [], []
    for i in range(builds):
        start = time.perf_counter()
        report.load([folder], "2000-01-01T00:00:00+00:00")
        load_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        summary = report.build([folder], work / "reports" / str(i))
        seconds.append(time.perf_counter() - start)
    build_s, represented = statistics.median(seconds), cells * source["wall_s"]
    return {"cells": cells, "shape_models_cases_repeats": list(shape), "builds": builds,
            "build_s_median": build_s, "build_s_all": seconds,
            "load_s_median": statistics.median(load_seconds), "s_per_cell": build_s / cells,
            "represented_cell_wall_s": represented, "report_per_cell_wall": build_s / represented,
            "index_html_bytes": summary.index.stat().st_size,
            "source_run": str(source["run_path"]), "source_cell_wall_s": source["wall_s"]}


def metric_cost(cells: list[dict]) -> dict:
    """Part (c): per metric spec, compute seconds per second of video, from score.json."""
    out: dict[str, dict] = {}
    for name in sorted({n for c in cells for n in c["score"]["specs"]}):
        entries = [c["score"]["specs"][name] for c in cells if name in c["score"]["specs"]]
        costs = [e["cost_s_per_video_s"] for e in entries if e.get("status") == "ok"
                 and e.get("cost_s_per_video_s") is not None]
        if costs:
            out[name] = {"scorings": len(costs), "mean_s_per_video_s": statistics.fmean(costs),
                         "max_s_per_video_s": max(costs),
                         "mean_seconds": statistics.fmean(e["seconds"] for e in entries
                                                          if e.get("status") == "ok")}
        else:
            statuses = sorted({e.get("status") or "unknown" for e in entries})
            whys = sorted({e.get("why") or "" for e in entries} - {""})
            out[name] = {"not_measured": f"{name} {' / '.join(statuses)}"
                         + (f" ({'; '.join(whys)})" if "not set up" not in statuses else "")}
    return out


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def show(results: dict) -> None:
    a, b, c = results["bench_overhead"], results["report"], results["metric_cost"]
    host = results["machine"]
    console.print(f"[bold]machine:[/] {host['cpu']}, {host['cores']} logical cores, "
                  f"{host['memory_bytes'] / 2**30:.1f} GiB RAM; python {results['python']}")
    scale = Table(title="(a) for scale: start-up, s (median of 3)", title_justify="left")
    scale.add_column("command")
    scale.add_column("seconds", justify="right")
    for name, value in a["scale_s"].items():
        scale.add_row(name, _f(value))
    console.print(scale)
    cells = Table(title="(a) per cell of the bench, mean over its repeats", title_justify="left")
    cells.add_column("seconds (mean per cell)")
    for model in a["per_model"]:
        cells.add_column(model, justify="right")
    rows = (("cell wall", "wall_s"), ("  TTS stage (speech reused from the bench)", "tts_s"),
            ("  inference stage", "inference_s"), ("  metric commands (sum of specs)", "metrics_s"),
            ("  overhead = wall − TTS − inference − metrics", "overhead_s"),
            ("    of it: prepare + output-check stages", "prepare_and_check_s"),
            ("    of it: normalising the video for scoring", "normalise_s"))
    models = a["per_model"].values()
    for label, key in rows:
        cells.add_row(label, *(_f(m["mean"].get(key)) for m in models))
    cells.add_row("cells measured", *(str(m["cells"]) for m in models))
    cells.add_row("[bold]overhead / (inference + metrics)[/] (ratio of sums)",
                  *(f"[bold]{_f(m['overhead_per_inference_plus_metrics'], 3)}[/]" for m in models))
    console.print(cells)
    console.print(f"[dim]cell wall from: {', '.join(a['wall_from'])}; cells ran {a['jobs']} at a "
                  f"time, {a['repeat']} repeat(s) of {a['cases_file']}[/]")
    console.print(f"(a) whole bench: {_f(a['bench_wall_s'])} s wall = speech synthesised once "
                  f"{_f(a['speech_once_s'])} s + cells {_f(a['cells_wall_sum_s'])} s + bench-level "
                  f"rest (uv run, invoke, planning with the face check of the images, summary) "
                  f"{_f(a['bench_level_rest_s'])} s")
    rep = Table(title=f"(b) report of a synthetic {b['cells']}-cell bench "
                f"({'×'.join(map(str, b['shape_models_cases_repeats']))})", title_justify="left")
    rep.add_column("what")
    rep.add_column("value", justify="right")
    for label, value in (("report build, median of builds (s)", _f(b["build_s_median"], 3)),
                         ("of it: reading records, report.load (s)", _f(b["load_s_median"], 3)),
                         ("report time per cell", _f(b["s_per_cell"] * 1000, 2) + " ms"),
                         ("summed cell walls it represents (s)", _f(b["represented_cell_wall_s"], 0)),
                         ("report time / summed cell walls", f"{b['report_per_cell_wall']:.2e}"),
                         ("index.html size", f"{b['index_html_bytes'] / 1024:.0f} KiB")):
        rep.add_row(label, value)
    console.print(rep)
    cost = Table(title="(c) metric cost: compute seconds per second of video", title_justify="left")
    for column in ("spec", "scorings", "mean s/video s", "max s/video s", "mean s per scoring"):
        cost.add_column(column, justify="left" if column == "spec" else "right")
    for name, entry in c.items():
        if "not_measured" in entry:
            cost.add_row(name, f"[yellow]not measured: {entry['not_measured']}[/]", "", "", "")
        else:
            cost.add_row(name, str(entry["scorings"]), _f(entry["mean_s_per_video_s"]),
                         _f(entry["max_s_per_video_s"]), _f(entry["mean_seconds"]))
    console.print(cost)


def main(argv: list[str]) -> int:
    opts = _options(argv)
    shape = tuple(int(n) for n in opts.synthetic.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="thbench-perf-"))
    try:
        if len(shape) != 3 or min(shape) < 1 or opts.repeat < 1:
            raise UserError(f"--synthetic {opts.synthetic} / --repeat {opts.repeat}",
                            "e.g. --synthetic 5x20x3 --repeat 2")
        models = [m.strip() for m in opts.models.split(",")]
        for name in models:  # said now, not after a minute of start-up
            envs.require_ready(specs.get(Kind.MODEL, name))
        a = bench_overhead(opts, work, models)
        cells = a.pop("_cells")
        source = cells[0]
        results = {"schema": 1, "kind": "perf", "created": datetime.now(UTC).isoformat(timespec="seconds"),
                   "machine": resources.host_info(), "python": sys.version.split()[0],
                   "bench_overhead": a, "report": report_cost(work, source, shape, opts.report_builds),
                   "metric_cost": metric_cost(cells)}
        show(results)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = opts.json or Path(tempfile.gettempdir()) / f"thbench-perf-{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        console.print(f"results: {out}" + (f"; work folder kept: {work}" if opts.keep else ""))
        return 0
    except UserError as err:
        print_error(err)
        return 2
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
