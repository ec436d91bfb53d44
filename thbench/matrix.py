"""Running a bench's pending cells with the matrix live on screen, and its closing summary.

The view reads the cell records (files), so it shows the same thing whichever executor runs
the cells: a process here, or a Slurm job elsewhere writing into the same bench folder.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thbench import bench as benches
from thbench import executors

console = Console(stderr=True, highlight=False, soft_wrap=True)
MARKS = {"pending": "[dim]·[/]", "running": "[cyan]…[/]", "ok": "[green]✓[/]",
         "failed": "[red]✗[/]", "interrupted": "[yellow]![/]"}


@dataclass(frozen=True)
class Summary:
    bench: benches.Bench
    counts: Counter

    @property
    def complete(self) -> bool:
        return self.counts["ok"] + self.counts["failed"] == sum(self.counts.values())


def matrix_table(bench: benches.Bench) -> Table:
    """Models down, cases (× repeats) across: one mark per cell, the attempt count if > 1."""
    table = Table(title=f"bench {bench.id}", title_justify="left", show_edge=False)
    table.add_column("model", no_wrap=True)
    repeats = bench.record["repeat"]
    for case in bench.record["cases"]:
        table.add_column(case["id"], justify="center", no_wrap=True)
    for model in bench.record["models"]:
        row = []
        for case in bench.record["cases"]:
            marks = []
            for n in range(1, repeats + 1):
                record = bench.read_cell(benches.Cell(model, case["id"], n))
                marks.append(MARKS.get(record["status"], "?")
                             + (f"[dim]{record['attempt']}[/]" if record["attempt"] > 1 else ""))
            row.append(" ".join(marks))
        table.add_row(model, *row)
    return table


def counts(bench: benches.Bench) -> Counter:
    return Counter(bench.read_cell(c)["status"] for c in bench.cells())


def execute(bench: benches.Bench, options: executors.Options, *,
            retry_failed: bool = False) -> Summary:
    """Speak the cases, run every pending cell, and show the matrix until all are done."""
    benches.speak_cases(bench)
    todo = benches.pending(bench, retry_failed)
    skipped = len(bench.cells()) - len(todo)
    if skipped:
        console.print(f"{skipped} cell{'s' if skipped != 1 else ''} already complete: kept")
    progress = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    task = progress.add_task("cells", total=len(todo))
    lock = threading.Lock()

    def done(cell: benches.Cell) -> None:
        with lock:
            progress.advance(task)

    with Live(Group(matrix_table(bench), progress), console=console, refresh_per_second=2,
              transient=False) as live:
        stop = threading.Event()

        def refresh() -> None:  # the cell records are the truth: read them twice a second
            while not stop.wait(0.5):
                live.update(Group(matrix_table(bench), progress))

        viewer = threading.Thread(target=refresh, daemon=True)
        viewer.start()
        try:
            executors.run(bench, todo, options, done, retry=retry_failed)
        finally:
            stop.set()
            viewer.join()
            live.update(Group(matrix_table(bench), progress))
    console.print()
    return Summary(bench, counts(bench))


def print_summary(summary: Summary) -> None:
    found = summary.counts
    parts = [f"{found[s]} {s}" for s in ("ok", "failed", "interrupted", "running", "pending")
             if found[s]]
    console.print(f"[bold]bench {summary.bench.id}[/]: " + ", ".join(parts)
                  + f" [dim]({summary.bench.folder})[/]")
    for cell in summary.bench.cells():
        record = summary.bench.read_cell(cell)
        if record["status"] == "failed":
            console.print(f"  [red]✗[/] {cell.id}: {record['error']} "
                          f"[dim]({summary.bench.folder / record['log']})[/]")
    if summary.complete:
        console.print(f"report: `uv run invoke report {summary.bench.ref}`")
    else:
        console.print(f"resume: `uv run invoke bench --resume {summary.bench.ref}`")
