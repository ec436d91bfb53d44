"""Where a bench's cells run: on this machine (default) or on a Slurm cluster through submitit.

Local: one cell at a time per GPU for models that use one (``CUDA_VISIBLE_DEVICES`` set to
it; with no GPU, one at a time on the CPU: they take all the cores they can get), and CPU
models (``gpu = "none"``, the baselines) side by side up to ``jobs``. Each cell is a process of
its own (``python -m thbench.cell``), its output in the bench's logs/ folder.

Slurm: each cell is a submitit job calling :func:`thbench.cell.run_cell` on a node that sees
the same outputs folder; its record lands in the same bench folder. ``submitit-local`` is
submitit's own local executor: the same pickling, submission and result collection, on this
machine, which is how the Slurm path is tested without a cluster.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from thbench import gpu, proc, specs
from thbench.bench import Bench, Cell
from thbench.errors import UserError
from thbench.specs import Gpu, Kind

NAMES = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class Options:
    name: str = "local"
    jobs: int | None = None  # CPU cells side by side (local); default: half the cores
    partition: str | None = None  # slurm
    gpus_per_run: int = 1  # slurm
    time_limit_min: int = 240  # slurm and submitit-local: per cell

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def validate(options: Options) -> None:
    """ERROR + TIP for an executor that cannot run here, before the bench folder is made."""
    if options.name not in NAMES:
        raise UserError(f"unknown executor '{options.name}'", f"pass one of: {', '.join(NAMES)}")
    if options.jobs is not None and options.jobs < 1:
        raise UserError(f"--jobs {options.jobs}: at least one cell must run at a time",
                        "pass --jobs 1 or more")
    if options.time_limit_min < 1:
        raise UserError(f"--time-limit {options.time_limit_min}: a cell needs at least a minute",
                        "pass --time-limit MINUTES (per cell)")
    if options.name == "slurm":
        if not shutil.which("sbatch"):
            raise UserError("--executor slurm needs Slurm's sbatch on PATH, and it is not there",
                            "run the bench on a Slurm login node, or use --executor local")
        if not options.partition:
            raise UserError("--executor slurm needs a --partition",
                            "e.g. --executor slurm --partition gpu --gpus-per-run 1")


class _Tracker:
    """Remembers the process group of each running cell, so an interrupt can stop them all."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = False  # set under the lock: a cell starting after stop_all is stopped too

    def watch(self) -> _Watch:
        return _Watch(self)

    def stop_all(self) -> None:
        with self.lock:
            self.stopped = True
            for pid in self.pids:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


class _Watch:
    def __init__(self, tracker: _Tracker) -> None:
        self.tracker, self.pid = tracker, None

    def start(self, pid: int) -> None:
        self.pid = pid
        with self.tracker.lock:
            self.tracker.pids.add(pid)
            if self.tracker.stopped:
                os.killpg(pid, signal.SIGTERM)

    def stop(self) -> None:
        with self.tracker.lock:
            self.tracker.pids.discard(self.pid)


def gpu_slots() -> list[str | None]:
    """The GPUs cells may use: those CUDA_VISIBLE_DEVICES allows (a Slurm allocation, a user's
    choice), else every one nvidia-smi lists; [None] (one CPU lane) when there is none."""
    allowed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if allowed is not None:
        return [d.strip() for d in allowed.split(",") if d.strip()] or [None]
    return [str(i) for i in range(len(gpu.detect()))] or [None]


def run_local(bench: Bench, cells: list[Cell], options: Options,
              done: Callable[[Cell], None], retry: bool = False) -> None:
    """Run ``cells`` here, GPU cells one per GPU, CPU cells up to ``jobs`` at once."""
    models = {name: specs.get(Kind.MODEL, name) for name in {c.model for c in cells}}
    devices: queue.Queue[str | None] = queue.Queue()
    for device in gpu_slots():
        devices.put(device)
    jobs = options.jobs or max(1, (os.cpu_count() or 2) // 2)
    tracker = _Tracker()
    stopping = threading.Event()

    def one(cell: Cell, device: str | None = None) -> None:
        if stopping.is_set():  # interrupted while this cell waited for its turn
            return
        # nvidia-smi numbers GPUs in PCI order; CUDA's default order is fastest first.
        extra = ({"CUDA_VISIBLE_DEVICES": device, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
                 if device is not None else {})
        proc.run([sys.executable, "-m", "thbench.cell", str(bench.folder), cell.id,
                  *(["--retry-failed"] if retry else [])],
                 log=bench.folder / "logs" / f"{cell.stem}.log", env=extra, check=False,
                 monitor=tracker.watch())
        if not stopping.is_set():
            done(cell)

    def on_a_gpu(cell: Cell) -> None:  # as many workers as devices: one is always free
        device = devices.get()
        try:
            one(cell, device)
        finally:
            devices.put(device)

    # Two pools, so GPU cells waiting for a device never hold back the CPU cells.
    gpu_pool = ThreadPoolExecutor(max_workers=devices.qsize(), thread_name_prefix="gpu-cell")
    cpu_pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="cpu-cell")
    futures = [gpu_pool.submit(on_a_gpu, cell) if models[cell.model].gpu is not Gpu.NONE
               else cpu_pool.submit(one, cell) for cell in cells]
    try:
        for future in futures:
            future.result()
    except BaseException:  # Ctrl-C: no new cell starts, running ones are told to stop
        stopping.set()
        for future in futures:
            future.cancel()
        tracker.stop_all()
        for pool in (gpu_pool, cpu_pool):
            pool.shutdown(wait=True)
        raise
    for pool in (gpu_pool, cpu_pool):
        pool.shutdown()


def run_submitit(bench: Bench, cells: list[Cell], options: Options,
                 done: Callable[[Cell], None], retry: bool = False) -> None:
    """Submit each cell as a job (Slurm, or submitit's local executor) and collect them."""
    import submitit  # only a bench that uses it pays for the import

    from thbench.cell import run_cell

    folder = bench.folder / "submitit"
    if options.name == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(slurm_partition=options.partition,
                                   gpus_per_node=options.gpus_per_run,
                                   timeout_min=options.time_limit_min, nodes=1, tasks_per_node=1,
                                   name=f"thb-{bench.id}")
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.time_limit_min)
    jobs = {}
    for cell in cells:
        job = executor.submit(run_cell, str(bench.folder), cell.id, retry)
        jobs[job] = cell
    try:
        for job in submitit.helpers.as_completed(list(jobs)):
            try:
                job.result()
            except Exception as err:  # the job died: its cell record says how far it got
                _job_failed(bench, jobs[job], job, err)
            done(jobs[job])
    except BaseException:
        for job in jobs:
            if not job.done():
                job.cancel(check=False)
        raise


def _job_failed(bench: Bench, cell: Cell, job, err: Exception) -> None:
    """A job that died (pre-empted, out of time, node lost) is not a result: "interrupted", so
    a resume runs it again, as it would a local cell whose process died."""
    from filelock import FileLock

    with FileLock(str(bench.cell_path(cell)) + ".lock"):
        record = bench.read_cell(cell)
        if record["status"] in ("ok", "failed"):
            return
        last = str(err).strip().splitlines()[-1:] or [type(err).__name__]
        record.update(status="interrupted", error=f"job {job.job_id} died: {last[0]}",
                      log=str(Path(job.paths.stderr)))
        bench.write_cell(record)


def run(bench: Bench, cells: list[Cell], options: Options, done: Callable[[Cell], None],
        retry: bool = False) -> None:
    (run_local if options.name == "local" else run_submitit)(bench, cells, options, done, retry)
