"""thbench/report.py and report_html.py on real record folders with real MP4s (ffmpeg).

The headless-browser test opens the page with Chromium when it is installed (CI installs it
through bootstrap/apt-packages.txt) and is skipped, saying so, where it is not.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import statistics
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import report_fixtures as fx
from thbench import proc, report
from thbench.errors import UserError

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return fx.make_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture
def bench(tmp_path, video) -> Path:
    return fx.sample_bench(tmp_path / "outputs", video)


def _row(rows: list[dict], model: str) -> dict:
    (row,) = [r for r in rows if r["model"] == model]
    return row


# --- the table data ------------------------------------------------------------------------------

def test_summary_means_spread_and_best(bench):
    data = report.load([bench], NOW.isoformat())
    still = _row(data.summary, "still")["columns"]
    face = still["face_found"]
    assert face["n"] == 6 and face["spread"] == "sd"
    assert face["mean"] == pytest.approx(95.0)
    assert face["sd"] == pytest.approx(statistics.stdev([100, 100, 100, 90, 90, 90]))
    assert face["text"] == "95.0 ± 5.48"
    assert face["best"] and not _row(data.summary, "wav2lip")["columns"]["face_found"]["best"]
    # Lower is better: the still image keeps its identity perfectly.
    assert still["identity_distance"]["best"] and still["identity_distance"]["text"] == "0.000 ± 0.000"
    # A context metric has no best side.
    assert not any(r["columns"]["av_offset"]["best"] for r in data.summary)
    # Two values: the spread is the range, and the rehearsal never competes with real runs.
    sad = _row(data.summary, "sadtalker")
    assert sad["rehearsal"] and sad["runs"] == {"ok": 2, "failed": 2, "not run": 2}
    assert sad["columns"]["face_found"]["spread"] == "range"
    assert sad["columns"]["face_found"]["text"] == "81.0 (80.0–82.0)"
    assert not sad["columns"]["face_found"]["best"]
    assert sad["columns"]["inference_s"]["mean"] == pytest.approx((9.1 + 9.2) / 2)
    # Videos of 1 s and 2 s were normalised the same way: the header names that once.
    assert data.normalised == [fx.NORMALISED]


def test_not_computed_failed_and_not_run(bench):
    data = report.load([bench], NOW.isoformat())
    lip = _row(data.summary, "wav2lip")["columns"]["lip_open_loudness_r"]
    assert lip["state"] == "not computed" and lip["mean"] is None
    assert lip["text"] == "not computed: no face in 3 frames"
    quote = data.per_case["quote"]
    assert _row(quote, "wav2lip")["columns"]["identity_distance"]["text"] == \
        "not computed: face too small"
    # Some repeats scored, one not: the mean is over the values, the gap is said.
    wav_id = _row(data.summary, "wav2lip")["columns"]["identity_distance"]
    assert wav_id["n"] == 3 and wav_id["not_computed"] == ["face too small"]
    failed = _row(quote, "sadtalker")
    assert failed["runs"] == {"ok": 0, "failed": 1, "not run": 2}
    entry = failed["columns"]["face_found"]
    assert entry["state"] == "failed" and entry["mean"] is None
    assert entry["text"].startswith("failed: CUDA out of memory. Tried to allocate 2.00 GiB")
    cells = {(c.model, c.case, c.repeat): c for c in data.cells}
    assert cells["sadtalker", "quote", 2].status == "not run"
    assert "pending" in cells["sadtalker", "quote", 2].reason
    assert cells["sadtalker", "quote", 3].status == "not run"


def test_a_model_that_never_ran_shows_not_run(tmp_path, video):
    outputs = tmp_path / "outputs"
    run_dir = fx.write_run(outputs, "still", "r1", video=video, baseline=True)
    fx.write_score(run_dir, {"face_found": 100.0})
    folder = fx.write_bench(outputs, "b1", ["still", "wav2lip"], fx.CASES[:1], 1,
                            {("still", "hello", 1): {"status": "ok", "run_dir": run_dir,
                                                     "run_status": "ok", "scored": True},
                             ("wav2lip", "hello", 1): {"status": "running"}})
    data = report.load([folder], NOW.isoformat())
    entry = _row(data.summary, "wav2lip")["columns"]["face_found"]
    assert entry["state"] == "not run" and entry["text"] == "not run" and entry["mean"] is None
    assert "running" in entry["reason"]
    assert _row(data.summary, "still")["columns"]["face_found"]["text"] == "100"


def test_unscored_run_and_scoring_failure(tmp_path, video):
    outputs = tmp_path / "outputs"
    scored = fx.write_run(outputs, "still", "r1", video=video)
    fx.write_score(scored, {"face_found": 50.0})
    bare = fx.write_run(outputs, "still", "r2", video=video)
    broken = fx.write_run(outputs, "still", "r3", video=video)
    folder = fx.write_bench(outputs, "b2", ["still"], fx.CASES[:1], 3, {
        ("still", "hello", 1): {"status": "ok", "run_dir": scored, "run_status": "ok"},
        ("still", "hello", 2): {"status": "ok", "run_dir": bare, "run_status": "ok"},
        ("still", "hello", 3): {"status": "failed", "run_dir": broken, "run_status": "ok",
                                "error": "syncnet env not set up"}})
    data = report.load([folder], NOW.isoformat())
    cells = sorted(data.cells, key=lambda c: c.repeat)
    assert [c.status for c in cells] == ["ok", "ok", "ok"]  # the runs made their videos
    assert cells[1].unscored.startswith("not scored")
    assert cells[2].unscored == "scoring failed: syncnet env not set up"
    entry = _row(data.summary, "still")["columns"]["face_found"]
    assert entry["n"] == 1 and entry["mean"] == 50.0 and len(entry["not_computed"]) == 2


# --- the folder ----------------------------------------------------------------------------------

def test_csv_rows_are_tidy(bench, tmp_path):
    summary = report.build([bench], tmp_path / "report", now=NOW)
    with (summary.out / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == report.CSV_FIELDS
    assert len(rows) == 3 * 2 * 3 * 4  # models × cases × repeats × metrics
    by_key = {(r["model"], r["case"], r["repeat"], r["metric"]): r for r in rows}
    row = by_key["wav2lip", "hello", "2", "face_found"]
    assert float(row["value"]) == 94.0 and row["run_status"] == "ok" and row["unit"] == "%"
    assert row["direction"] == "higher" and row["bench_id"] == "20261201-210000-test"
    assert row["run_id"] == "20261201-210002-wav2"
    nc = by_key["wav2lip", "hello", "1", "lip_open_loudness_r"]
    assert nc["value"] == "" and nc["not_computed"] == "no face in 3 frames"
    failed = by_key["sadtalker", "quote", "1", "face_found"]
    assert failed["run_status"] == "failed" and failed["value"] == ""
    assert by_key["sadtalker", "quote", "3", "face_found"]["run_status"] == "not run"
    assert summary.cells == 18 and summary.videos == 5
    results = json.loads((summary.out / "results.json").read_text())
    assert results["kind"] == "report" and results["created"] == NOW.isoformat(timespec="seconds")
    assert len(results["rows"]) == len(rows)
    assert _row(results["summary"], "still")["columns"]["face_found"]["mean"] == 95.0


def test_page_is_self_contained_with_relative_videos(bench, tmp_path):
    summary = report.build([bench], tmp_path / "report", now=NOW)
    page = summary.index.read_text(encoding="utf-8")
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert re.findall(r'(?:src|href)="(?:https?:)?//', page) == []
    sources = re.findall(r'<video[^>]* src="([^"]+)"', page)
    assert len(sources) == summary.videos == 5
    for src in sources:
        assert not src.startswith("/") and (summary.out / src).resolve().is_file()
    assert "Baselines: still." in page and "Rehearsal runs: sadtalker." in page
    assert "Quotes &quot;&lt;b&gt;and&lt;/b&gt;&quot; &amp; tags." in page  # data, not markup
    long_reason = "CUDA out of memory. Tried to allocate 2.00 GiB " + "x" * 80
    assert f'title="failed: {long_reason}"' in page  # the table cell's full reason
    assert "not computed: no face in 3 frames" in page and "not run" in page
    assert "cost" in page and "1.50 s per video second" in page


def test_build_is_a_pure_function(bench, tmp_path):
    first = report.build([bench], tmp_path / "a", now=NOW)
    second = report.build([bench], tmp_path / "b", now=NOW)
    for name in ("index.html", "results.csv", "results.json"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name
    assert not list(tmp_path.glob(".*tmp-*"))  # no staging folder left behind


def test_refuses_a_non_empty_out_folder(bench, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("an earlier report")
    with pytest.raises(UserError, match="already exists and is not an empty folder") as err:
        report.build([bench], out, now=NOW)
    assert "never overwrites" in err.value.tip
    assert (out / "index.html").read_text() == "an earlier report"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.build([bench], empty, now=NOW).index.is_file()


def test_malformed_records_are_named(bench, tmp_path):
    (bench / "bench.json").write_text('{"schema": 1, "kind": "bench",', encoding="utf-8")
    with pytest.raises(UserError, match=r"bench\.json is not valid JSON \(line 1") as err:
        report.build([bench], tmp_path / "report", now=NOW)
    assert str(bench / "bench.json") in err.value.message
    assert not (tmp_path / "report").exists()


def test_malformed_cell_and_missing_keys(bench, tmp_path):
    cell = bench / "cells" / "still__hello__1.json"
    cell.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(UserError, match="holds a JSON list, not an object") as err:
        report.load([bench], NOW.isoformat())
    assert str(cell) in err.value.message
    record = {"schema": 1, "kind": "bench", "bench_id": "x", "models": "still"}
    (bench / "bench.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(UserError, match="'models' is 'still', expected list"):
        report.load([bench], NOW.isoformat())


def test_inputs_that_are_not_records(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        report.load([tmp_path / "nope"], NOW.isoformat())
    with pytest.raises(UserError, match="holds no bench.json or score.json"):
        report.load([tmp_path], NOW.isoformat())
    with pytest.raises(UserError, match="no inputs"):
        report.load([], NOW.isoformat())


def test_outside_video_score_record(tmp_path, video):
    folder = tmp_path / "scored"
    folder.mkdir()
    record = fx.score_record({"face_found": 75.0, "av_offset": "no speech found"},
                             video=str(video), run=None, label="my-clip", image="/x/face.png")
    (folder / "score.json").write_text(json.dumps(record), encoding="utf-8")
    summary = report.build([folder], tmp_path / "report", now=NOW)
    data = json.loads((summary.out / "results.json").read_text())
    (cell,) = data["cells"]
    assert cell["model"] == "my-clip" and cell["outside"] and cell["case"] == "face"
    assert (summary.out / cell["video_href"]).resolve() == video.resolve()
    row = _row(data["summary"], "my-clip")["columns"]
    assert row["face_found"]["text"] == "75.0"
    assert row["av_offset"]["text"] == "not computed: no speech found"
    assert "outside video" in summary.index.read_text()


def test_a_run_folder_holding_its_score_joins_a_bench(bench, tmp_path, video):
    run_dir = fx.write_run(tmp_path / "outputs", "echomimic", "20261203-100000-echo",
                           video=video, inference_s=30.0)
    fx.write_score(run_dir, {"face_found": 99.0})
    data = report.load([bench, run_dir], NOW.isoformat())
    assert data.models == ["still", "wav2lip", "sadtalker", "echomimic"]
    (cell,) = [c for c in data.cells if c.model == "echomimic"]
    assert not cell.outside and cell.run_id == "20261203-100000-echo"
    assert cell.measures["inference_s"] == 30.0 and cell.host.startswith("AMD EPYC 7B13")
    row = _row(data.summary, "echomimic")["columns"]
    assert row["face_found"]["best"] and row["face_found"]["text"] == "99.0"
    assert row["lip_open_loudness_r"]["text"] == "not computed: not in this run's score record"


def test_resolve_input_finds_a_bench_id(bench, monkeypatch, tmp_path):
    monkeypatch.setenv("THB_OUTPUTS_DIR", str(bench.parent.parent))
    assert report.resolve_input(bench.name) == bench
    assert report.resolve_input(str(bench)) == bench
    with pytest.raises(UserError, match=f"not a bench id; bench ids under .*: {bench.name}"):
        report.resolve_input("20991231-000000-none")


# --- in a real browser ---------------------------------------------------------------------------

def _png_pixels_vary(path: Path) -> bool:
    """True when the PNG's pixel data holds many distinct byte values (a blank page does not)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) > 64


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (bootstrap installs it: "
                    "`python3 bootstrap/bootstrap.py`)")
def test_page_renders_in_headless_chromium(bench, tmp_path):
    summary = report.build([bench], tmp_path / "report", now=NOW)
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=8000"]
    url = summary.index.as_uri()
    dom = proc.run([*base, "--dump-dom", url], capture=True, timeout=180).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="1"' in body
    videos = re.findall(r"<video\b", dom)
    assert len(videos) == summary.videos == 5
    assert f'data-videos-ready="{len(videos)}"' in body  # every video's metadata loaded
    for model in fx.SAMPLE_FACE:  # a row in the summary and in each case's table
        assert len(re.findall(rf"<tr><td><b>{model}</b>", dom)) == 1 + len(fx.CASES)
    assert "failed: CUDA out of memory" in dom and "not computed: no face in 3 frames" in dom
    shot = tmp_path / "report.png"
    proc.run([*base, f"--screenshot={shot}", "--window-size=1400,2200", url],
             capture=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 20_000 and _png_pixels_vary(shot)
    print(f"report screenshot: {shot}")
