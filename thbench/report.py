"""`invoke report`: stored records (bench folders, score records) → one new report folder.

A pure function of what is on disk: it never runs a model or a metric, and the same records
and ``now`` give the same files. The folder holds ``index.html`` (self-contained: inline CSS,
SVG and JS, videos by paths relative to the folder, so it opens from disk with no network),
``results.csv`` (tidy: one row per cell × metric) and ``results.json`` (those rows, the cells
and the aggregated tables). A number that was not computed stays null with its reason; a cell
that failed or never ran says so; nothing becomes a 0.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from thbench import paths
from thbench.errors import UserError
from thbench.files import atomic_write_text
from thbench.report_table import (
    CSV_FIELDS,
    FAILED,
    NOT_RUN,
    OK,
    RUN_COLUMNS,
    Case,
    Cell,
    Column,
    Report,
    csv_rows,
    shown_videos,
    table,
)

REPORT_SCHEMA = 1
INPUT_TIP = ("give a bench folder (outputs/bench/<id>, holding bench.json), a bench id, or a "
             "score record (a score.json, or a folder holding one)")
DAMAGED_TIP = ("the file is damaged or was written by something else: re-run the bench or the "
               "scorer that writes it, or leave that input out")


@dataclass(frozen=True)
class ReportSummary:
    out: Path
    index: Path
    benches: list[str]
    cells: int
    videos: int


# --- inputs --------------------------------------------------------------------------------------

def resolve_input(arg: str) -> Path:
    """A path as given if it exists, else the bench id ``arg`` under outputs/bench/."""
    given = Path(arg).expanduser()
    if given.exists():
        return given
    benches = paths.outputs_root() / "bench"
    if "/" not in arg and (benches / arg).is_dir():
        return benches / arg
    known = sorted(p.name for p in benches.iterdir() if p.is_dir()) if benches.is_dir() else []
    listed = f"; bench ids under {benches}: {', '.join(known[-5:])}" if known else ""
    raise UserError(f"{arg} does not exist, and is not a bench id{listed}", INPUT_TIP)


def _read_json(path: Path, kind: str | None = None) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist", INPUT_TIP) from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path} cannot be read: {err}", DAMAGED_TIP) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: "
                        f"{err.msg})", DAMAGED_TIP) from None
    if not isinstance(record, dict):
        raise UserError(f"{path} holds a JSON {type(record).__name__}, not an object", DAMAGED_TIP)
    if kind and record.get("kind", kind) != kind:
        raise UserError(f"{path} is a {record.get('kind')!r} record, not a {kind!r} record",
                        INPUT_TIP)
    if record.get("schema", 1) != 1:
        raise UserError(f"{path} has schema {record.get('schema')!r}; this report reads schema 1",
                        "use the talking-head-bench version that wrote it")
    return record


def _need(record: dict, key: str, kind: type | tuple[type, ...], path: Path):
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise UserError(f"{path}: {key!r} is {value!r}, expected {getattr(kind, '__name__', kind)}",
                        DAMAGED_TIP)
    return value


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _host(run: dict) -> str | None:
    host = run.get("host")
    if not isinstance(host, dict) or not host.get("cpu"):
        return None
    parts = [str(host["cpu"])]
    parts += [f"{host['cores']} cores"] if host.get("cores") else []
    mem = _number(host.get("memory_bytes"))
    parts += [f"{mem / 2**30:.0f} GiB"] if mem else []
    return ", ".join(parts)


def _apply_run(cell: Cell, run_dir: Path) -> dict | None:
    """Fill ``cell`` from ``run_dir``/run.json; the score record there, if any."""
    run = _read_json(run_dir / "run.json")
    cell.run_id, cell.run_status = run.get("run_id"), run.get("status")
    cell.baseline, cell.rehearsal = bool(run.get("baseline")), run.get("rehearsal") is not None
    cell.host = _host(run)
    speech = run.get("speech") if isinstance(run.get("speech"), dict) else {}
    cell.speech_s = _number(speech.get("seconds"))
    inference = (run.get("stages") or {}).get("inference") or {}
    measures = run.get("measurements") if isinstance(run.get("measurements"), dict) else {}
    rss = _number((measures.get("inference") or {}).get("peak_rss_bytes"))
    seconds = _number(inference.get("seconds"))
    rtf = _number(measures.get("rtf"))
    if rtf is None and seconds is not None and cell.speech_s:  # older records: same definition
        rtf = seconds / cell.speech_s
    cell.measures = {"inference_s": seconds, "rtf": rtf,
                     "peak_rss_mib": rss / 2**20 if rss is not None else None}
    if cell.run_status != OK:
        failure = run.get("failure") if isinstance(run.get("failure"), dict) else {}
        stage = failure.get("stage") or "an unknown stage"
        why = f"{stage}: {failure.get('reason') or 'no reason recorded'}"
        why = why if cell.run_status == FAILED else f"{cell.run_status} at {why}"
        if cell.status == OK:  # a cell can be done while its run is not ok (a rehearsal stop)
            cell.status = FAILED
        cell.reason = cell.reason or why
    video = (run.get("video") or {}).get("file") if isinstance(run.get("video"), dict) else None
    if video and (run_dir / video).is_file():
        cell.video = str((run_dir / video).resolve())
    score = run_dir / "score.json"
    return _read_json(score, "score") if score.is_file() else None


def _load_bench(folder: Path, into: _Collector) -> None:
    path = folder / "bench.json"
    bench = _read_json(path, "bench")
    bench_id = _need(bench, "bench_id", str, path)
    models = _need(bench, "models", list, path)
    repeat = _need(bench, "repeat", int, path)
    cases = []
    for case in _need(bench, "cases", list, path):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise UserError(f"{path}: a case without an 'id': {case!r}", DAMAGED_TIP)
        cases.append(into.add_case(bench_id, case))
    into.benches.append({k: bench.get(k) for k in ("bench_id", "created", "models", "repeat",
                                                   "cases_file", "executor", "metrics",
                                                   "thbench")} | {"folder": str(folder)})
    for model in models:
        for case in cases:
            for rep in range(1, repeat + 1):
                into.cells.append(_bench_cell(folder, bench_id, model, case, rep, into))


def _bench_cell(folder: Path, bench_id: str, model: str, case: Case, rep: int,
                into: _Collector) -> Cell:
    cell = Cell(bench_id, model, case.key, rep, NOT_RUN, "the bench never reached this cell")
    path = folder / "cells" / f"{model}__{case.id}__{rep}.json"
    if not path.is_file():
        return cell
    record = _read_json(path)
    status, error = record.get("status"), record.get("error")
    if status not in (OK, FAILED):
        cell.reason = f"{status or 'no status'}: the bench stopped before this cell finished"
        return cell
    cell.status, cell.reason = status, error if status == FAILED else None
    run_dir = folder / record["run_dir"] if isinstance(record.get("run_dir"), str) else None
    if run_dir is None or not (run_dir / "run.json").is_file():
        cell.status = FAILED
        cell.reason = error or (f"its run folder {run_dir} has no run.json" if run_dir
                                else "no run folder recorded")
        return cell
    if status == FAILED and record.get("run_status") == OK:
        # The run made its video; scoring (or the executor after it) failed: keep the run.
        cell.status, cell.reason = OK, None
        cell.unscored = f"scoring failed: {error or 'no reason recorded'}"
    score = _apply_run(cell, run_dir)
    into.add_score(cell, score, "not scored (no score.json in the run folder)")
    return cell


def _load_score(path: Path, into: _Collector) -> None:
    score = _read_json(path, "score")
    video = score.get("video") if isinstance(score.get("video"), dict) else {}
    image = score.get("image") if isinstance(score.get("image"), dict) else {}
    image_source = image.get("source") or "unknown image"
    case = into.add_case("", {"id": Path(image_source).stem, "image": image_source,
                              "text": None, "audio": None, "tags": ["outside videos"]})
    run = score.get("run") if isinstance(score.get("run"), dict) else None
    label = (run or {}).get("model") or score.get("label") or path.parent.name
    rep = 1 + sum(1 for c in into.cells if c.model == label and c.case == case.key)
    cell = Cell("", label, case.key, rep, OK, outside=run is None)
    # The score record of a run usually sits in its run folder; else "dir" says where it is.
    run_dir = path.parent if (path.parent / "run.json").is_file() else \
        Path(run["dir"]) if run and isinstance(run.get("dir"), str) else None
    if run and run_dir and (run_dir / "run.json").is_file():
        _apply_run(cell, run_dir)
    elif video.get("source") and Path(video["source"]).is_file():
        cell.video = str(Path(video["source"]).resolve())
        cell.speech_s = _number(video.get("seconds"))
    into.add_score(cell, score, "")
    into.cells.append(cell)


class _Collector:
    def __init__(self) -> None:
        self.benches: list[dict] = []
        self.cases: dict[str, Case] = {}
        self.cells: list[Cell] = []
        self.metric_info: dict[str, dict] = {}
        self.spec_costs: dict[str, dict] = {}
        self.normalised: list[dict] = []

    def add_case(self, bench_id: str, raw: dict) -> Case:
        case = Case(raw["id"], raw["id"], bench_id, raw.get("text"), raw.get("audio"),
                    raw.get("image"), list(raw.get("tags") or []))
        same = self.cases.get(case.key)
        if same and (same.text, same.audio, same.image) == (case.text, case.audio, case.image):
            return same
        if same:  # two benches used one case id for different inputs: keep them apart
            case.key = f"{bench_id or 'scores'}:{case.id}"
        return self.cases.setdefault(case.key, case)

    def add_score(self, cell: Cell, score: dict | None, missing: str) -> None:
        if score is None:
            cell.unscored = cell.unscored or missing
            return
        # How videos were normalised for scoring, less what differs per video (its length).
        norm = {k: v for k, v in (score.get("normalised") or {}).items() if k != "seconds"}
        if norm and norm not in self.normalised:
            self.normalised.append(norm)
        for metric_id, m in (score.get("metrics") or {}).items():
            if not isinstance(m, dict):
                continue
            value = _number(m.get("value"))
            why = None if value is not None else (m.get("not_computed") or "no reason recorded")
            cell.metrics[metric_id] = {"value": value, "not_computed": why}
            info = self.metric_info.setdefault(metric_id, {
                k: m.get(k) for k in ("label", "unit", "direction", "about", "spec",
                                      "implementation")} | {"versions": [], "settings": []})
            for key, value in (("versions", m.get("version")), ("settings", m.get("settings"))):
                if value not in info[key]:  # shown each, should records disagree
                    info[key].append(value)
        for name, spec in (score.get("specs") or {}).items():
            entry = self.spec_costs.setdefault(name, {"statuses": {}, "cost_s_per_video_s": []})
            status = spec.get("status") or "unknown"
            entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
            if _number(spec.get("cost_s_per_video_s")) is not None:
                entry["cost_s_per_video_s"].append(float(spec["cost_s_per_video_s"]))


def load(inputs: list[Path], now: str) -> Report:
    """Read every input into one :class:`Report` with its tables; raises UserError."""
    if not inputs:
        raise UserError("no inputs given", INPUT_TIP)
    into = _Collector()
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir() and (path / "bench.json").is_file():
            _load_bench(path, into)
        elif path.is_dir() and (path / "score.json").is_file():
            _load_score(path / "score.json", into)
        elif path.is_file() and path.name == "bench.json":
            _load_bench(path.parent, into)
        elif path.is_file() and path.suffix == ".json":
            _load_score(path, into)
        elif path.exists():
            raise UserError(f"{path} holds no bench.json or score.json", INPUT_TIP)
        else:
            raise UserError(f"{path} does not exist", INPUT_TIP)
    models = list(dict.fromkeys(c.model for c in into.cells))
    columns = [Column(i, m.get("label") or i, m.get("unit") or "", m.get("direction") or "none",
                      "metric") for i, m in into.metric_info.items()] + list(RUN_COLUMNS)
    report = Report(now, into.benches, list(into.cases.values()), models, into.cells, columns,
                    into.metric_info, into.spec_costs, into.normalised)
    report.summary = table(report, report.cells)
    report.per_case = {case.key: table(report, [c for c in report.cells if c.case == case.key])
                       for case in report.cases}
    return report


# --- the folder ----------------------------------------------------------------------------------

def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder",
                        "a report never overwrites an earlier one: give a new folder with --out")


def build(inputs: list[Path], out: Path, now: datetime | None = None) -> ReportSummary:
    """Write the report folder ``out`` (new or empty) from ``inputs``; nothing else changes."""
    from thbench import report_html  # the page is only needed here

    out = Path(out).expanduser().resolve()
    _check_out(out)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    report = load(inputs, stamp)
    for cell in report.cells:
        if cell.video:
            cell.video_href = quote(Path(os.path.relpath(cell.video, out)).as_posix())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows := csv_rows(report))
    data = {"schema": REPORT_SCHEMA, "kind": "report", "created": stamp,
            "benches": report.benches, "columns": [asdict(c) for c in report.columns],
            "metrics": report.metric_info, "specs": report.spec_costs,
            "normalised": report.normalised, "cases": [asdict(c) for c in report.cases],
            "cells": [asdict(c) for c in report.cells], "rows": rows,
            "summary": report.summary, "per_case": report.per_case}
    files = {"index.html": report_html.render(report),
             "results.csv": buffer.getvalue(),
             "results.json": json.dumps(data, indent=1, ensure_ascii=False) + "\n"}
    # Written in a sibling folder, then renamed into place: a reader (or a crash) never sees
    # half a report, and an empty ``out`` is replaced in one step.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, text in files.items():
            atomic_write_text(staging / name, text)
        _check_out(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReportSummary(out, out / "index.html", [b["bench_id"] for b in report.benches],
                         len(report.cells), len(shown_videos(report)))
