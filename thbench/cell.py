"""One cell of a bench: an ordinary run of one model on one case, then its score.

:func:`run_cell` is what every executor calls: the local one in a process of its own
(``python -m thbench.cell BENCH_DIR CELL_ID``), Slurm through submitit's pickling. It is
idempotent: a cell already complete is returned as it is, and one left running by a bench that
died is run again in a new run folder (the old folder stays, listed in ``attempts``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from filelock import FileLock

from thbench import bench as benches
from thbench import runs, score
from thbench.errors import UserError, print_error


def run_cell(bench_dir: str, cell_id: str, retry_failed: bool = False) -> dict:
    """Run the cell ``model/case/repeat`` of the bench in ``bench_dir``; return its record.

    A complete cell is returned as it is; a failed one is run again only with ``retry_failed``.
    """
    bench = benches.load(bench_dir)
    model, case_id, repeat = cell_id.split("/")
    cell = benches.Cell(model, case_id, int(repeat))
    # A process still running this cell (left by a bench that was killed) holds the lock: wait
    # for it, then find the cell complete, rather than run it twice side by side.
    with FileLock(str(bench.cell_path(cell)) + ".lock"):
        record = bench.read_cell(cell)
        again = ("ok",) if retry_failed else benches.COMPLETE
        if record["status"] in again:
            return record
        if record["run_dir"]:
            record["attempts"].append(record["run_dir"])
        record.update(status="running", attempt=record["attempt"] + 1, run_dir=None,
                      run_status=None, scored=False, error=None, started=runs.now(),
                      finished=None)
        bench.write_cell(record)
        _run(bench, cell, record)
        record["finished"] = runs.now()
        bench.write_cell(record)
        return record


def _run(bench: benches.Bench, cell: benches.Cell, record: dict) -> None:
    case = bench.case(cell.case)

    def started(run_dir: Path) -> None:  # said at once: a bench killed now still knows it
        record["run_dir"] = os.path.relpath(run_dir, bench.folder)
        bench.write_cell(record)
    request = runs.Request(
        model=cell.model, image=case.image, text=case.text, audio=case.audio,
        tts=case.tts or bench.record["tts"], outputs=bench.outputs,
        speech_settings=benches.case_speech(case, bench.record["tts"],
                                            benches.speech_settings(bench.record))[2],
        face_check=False,  # every case image was checked once when the bench was planned
        speech=bench.speech_for(case.id) if case.text else None, started=started,
    )
    try:
        result = runs.run(request)
        run_dir, run_record = result.run_dir, result.record
    except UserError as err:
        run_dir = getattr(err, "run_dir", None)
        print_error(err)
        if run_dir is None:  # refused before a run folder was made
            record.update(status="failed", error=err.message)
            return
        run_record = runs.read_record(run_dir)
    record.update(run_dir=os.path.relpath(run_dir, bench.folder), run_status=run_record["status"])
    _link(bench, cell, run_dir)
    if run_record["status"] != "ok":
        record.update(status="failed", error=(run_record.get("failure") or {}).get("reason"))
        return
    try:
        score.score(run_dir / run_record["video"]["file"],
                    run_dir / run_record["inputs"]["image"]["file"], run_dir,
                    label=cell.model, names=bench.record["metrics"],
                    run={"model": cell.model, "run_id": run_record["run_id"], "case": cell.case,
                         "repeat": cell.repeat, "bench_id": bench.id})
    except UserError as err:
        print_error(err)
        record.update(status="failed", error=f"scoring failed: {err.message}")
        return
    record.update(status="ok", scored=True)


def _link(bench: benches.Bench, cell: benches.Cell, run_dir: Path) -> None:
    """runs/<model>/<case>/<n> → the run folder, swapped in whole (a redo replaces the link)."""
    link = bench.folder / "runs" / cell.model / cell.case / str(cell.repeat)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(run_dir, link.parent))
    os.replace(tmp, link)


def _terminate(signum, frame) -> None:
    """SIGTERM from the executor: the run records "interrupted"; the cell stays "running",
    which a resume runs again."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        record = run_cell(argv[0], argv[1], retry_failed="--retry-failed" in argv[2:])
    except UserError as err:
        print_error(err)
        return 2
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    print(f"cell {record['cell']}: {record['status']}"
          + (f" ({record['error']})" if record["error"] else ""))
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
