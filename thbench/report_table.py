"""The report's data (cases, cells, columns) and the tables aggregated from it.

What `invoke report` shows, before any HTML: one :class:`Cell` per model × case × repeat, and
per model a mean and spread for each column, or why there is no number (not computed, failed,
not run). Nothing here reads files; :mod:`thbench.report` fills a :class:`Report` from records.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from thbench.metric_spec import Direction

OK, FAILED, NOT_RUN = "ok", "failed", "not run"
ARROWS = {d.value: d.arrow for d in Direction}  # one declaration of the arrows
DIRECTION_WORDS = {"higher": "higher is better", "lower": "lower is better",
                   "none": "context, no better side"}
CSV_FIELDS = ("bench_id", "model", "case", "repeat", "run_id", "run_status", "metric", "value",
              "not_computed", "direction", "unit")


@dataclass(frozen=True)
class Column:
    id: str
    label: str
    unit: str
    direction: str  # higher | lower | none
    kind: str  # "metric" (from score.json) or "run" (from run.json)


RUN_COLUMNS = (Column("inference_s", "inference", "s", "lower", "run"),
               Column("rtf", "RTF", "× speech", "lower", "run"),
               Column("peak_rss_mib", "peak RSS", "MiB", "lower", "run"))


@dataclass
class Case:
    key: str  # unique in the report (the case id, or bench:case where two benches disagree)
    id: str
    bench_id: str
    text: str | None
    audio: str | None
    image: str | None
    tags: list[str] = field(default_factory=list)


@dataclass
class Cell:
    """One model × case × repeat: what happened, and its numbers (None = not there, see why)."""

    bench_id: str
    model: str
    case: str  # Case.key
    repeat: int
    status: str  # ok | failed | not run
    reason: str | None = None  # why it failed or did not run
    run_id: str | None = None
    run_status: str | None = None
    video: str | None = None  # absolute path of an existing video
    video_href: str | None = None  # the same, relative to the report folder, URL-quoted
    speech_s: float | None = None
    measures: dict[str, float | None] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)  # id -> {"value", "not_computed"}
    unscored: str | None = None  # why no score record applies to this run
    baseline: bool = False
    rehearsal: bool = False
    outside: bool = False  # an outside video scored with `invoke score`
    host: str | None = None


@dataclass
class Report:
    now: str
    benches: list[dict]
    cases: list[Case]
    models: list[str]
    cells: list[Cell]
    columns: list[Column]
    metric_info: dict[str, dict]  # id -> about, spec, implementation, versions, settings
    spec_costs: dict[str, dict]  # spec -> statuses, cost_s_per_video_s values
    normalised: list[dict]
    summary: list[dict] = field(default_factory=list)  # one row per model over all cases
    per_case: dict[str, list[dict]] = field(default_factory=dict)  # case key -> rows

    def flags(self, model: str) -> dict[str, bool]:
        mine = [c for c in self.cells if c.model == model]
        return {k: any(getattr(c, k) for c in mine) for k in ("baseline", "rehearsal", "outside")}



# --- the tables ----------------------------------------------------------------------------------

def _get(cell: Cell, column: Column) -> tuple[float | None, str | None]:
    if column.kind == "run":
        value = cell.measures.get(column.id)
        return value, None if value is not None else "not recorded in run.json"
    if cell.unscored:
        return None, cell.unscored
    metric = cell.metrics.get(column.id)
    if metric is None:
        return None, "not in this run's score record"
    return metric["value"], metric["not_computed"]


def aggregate(cells: list[Cell], column: Column) -> dict:
    """Mean and spread over ``cells`` for one column, or why there is no number."""
    ran = [c for c in cells if c.status == OK]
    failed = [c for c in cells if c.status == FAILED]
    got = [_get(c, column) for c in ran]
    values = [v for v, _ in got if v is not None]
    whys = sorted({w for v, w in got if v is None})
    entry = {"n": len(values), "cells": len(cells), "failed": len(failed),
             "not_run": len(cells) - len(ran) - len(failed), "not_computed": whys,
             "mean": None, "spread": None, "sd": None, "min": None, "max": None, "best": False}
    if values:
        entry |= {"state": "value", "mean": statistics.fmean(values),
                  "min": min(values), "max": max(values)}
        if len(values) >= 3:
            entry |= {"spread": "sd", "sd": statistics.stdev(values)}
        elif len(values) == 2:
            entry["spread"] = "range"
    elif ran:
        entry |= {"state": "not computed", "reason": "; ".join(whys)}
    elif failed:
        entry |= {"state": "failed", "reason": "; ".join(sorted({c.reason or "" for c in failed}))}
    else:
        entry |= {"state": "not run", "reason": "; ".join(sorted({c.reason or "" for c in cells}))}
    entry["text"] = cell_text(entry)
    return entry


def fmt(value: float) -> str:
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{value:,.{digits}f}"


def cell_text(entry: dict) -> str:
    state = entry["state"]
    if state != "value":
        return state if state == "not run" else f"{state}: {entry['reason']}"
    if entry["spread"] == "sd":
        return f"{fmt(entry['mean'])} ± {fmt(entry['sd'])}"
    if entry["spread"] == "range":
        return f"{fmt(entry['mean'])} ({fmt(entry['min'])}–{fmt(entry['max'])})"
    return fmt(entry["mean"])


def table(report: Report, cells: list[Cell]) -> list[dict]:
    """One row per model over ``cells``: run counts and one aggregate per column, best marked."""
    rows = []
    for model in report.models:
        mine = [c for c in cells if c.model == model]
        if not mine:
            continue
        counts = {s: sum(c.status == s for c in mine) for s in (OK, FAILED, NOT_RUN)}
        rows.append({"model": model, **report.flags(model), "runs": counts,
                     "columns": {col.id: aggregate(mine, col) for col in report.columns}})
    # Stand-in weights give numbers that mean nothing: they compete only among themselves.
    contenders = [r for r in rows if not r["rehearsal"]] or rows
    for col in report.columns:
        if col.direction not in ("higher", "lower"):
            continue
        scored = [r["columns"][col.id] for r in contenders
                  if r["columns"][col.id]["state"] == "value"]
        if len(scored) >= 2:
            best = (max if col.direction == "higher" else min)(e["mean"] for e in scored)
            for entry in scored:
                entry["best"] = entry["mean"] == best
    return rows


def shown_videos(report: Report) -> dict[tuple[str, str], Cell]:
    """(case key, model) -> the cell whose video the page shows: the lowest repeat with one."""
    shown: dict[tuple[str, str], Cell] = {}
    for cell in sorted(report.cells, key=lambda c: c.repeat):
        if cell.video_href:
            shown.setdefault((cell.case, cell.model), cell)
    return shown



# --- the tidy rows of results.csv ----------------------------------------------------------------

def csv_rows(report: Report) -> list[dict]:
    rows = []
    metric_columns = [c for c in report.columns if c.kind == "metric"]
    for cell in report.cells:
        for col in metric_columns:
            value, why = _get(cell, col) if cell.status == OK else (None, None)
            rows.append({"bench_id": cell.bench_id, "model": cell.model, "case": cell.case,
                         "repeat": cell.repeat, "run_id": cell.run_id or "",
                         "run_status": cell.status if cell.status != OK else cell.run_status or OK,
                         "metric": col.id, "value": "" if value is None else repr(value),
                         "not_computed": why or "", "direction": col.direction, "unit": col.unit})
    return rows
