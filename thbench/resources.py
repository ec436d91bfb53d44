"""What a run used: the host it ran on, and the peak memory (RAM, GPU) of a command's process tree.

``Monitor`` is handed to ``proc.run(..., monitor=...)``, which starts it with the child's pid
right after the child exists and stops it when the child is gone (also on a timeout or Ctrl-C).
A background thread samples every ``interval_s``; ``Monitor.stop()`` returns the JSON-able record.
A figure that cannot be measured is recorded as null next to "not measured: <why>", never 0.
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path
from typing import Any

import psutil

INTERVAL_S = 0.2
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def host_info() -> dict:
    """The CPU model, logical core count and total RAM of this machine."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or "unknown"


class _Gpus:
    """NVML device memory: used at start, peak used, and the peak the command's own processes held."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        self.devices: list[dict] = []
        for index, handle in enumerate(self.handles):
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            self.devices.append({
                "index": index, "name": _text(nvml.nvmlDeviceGetName(handle)),
                "driver_version": driver, "memory_total_bytes": int(memory.total),
                "memory_used_at_start_bytes": int(memory.used),
                "memory_used_peak_bytes": int(memory.used),
                "process_tree_peak_bytes": None,
                "process_tree_not_measured": (
                    "not measured: no process of the command's tree was in NVML's compute-process "
                    "list for this device (it used no GPU here, or runs in a PID namespace, e.g. a "
                    "container, whose pids NVML does not report)"),
            })

    def sample(self, tree: set[int]) -> None:
        for device, handle in zip(self.devices, self.handles, strict=True):
            try:
                used = int(self.nvml.nvmlDeviceGetMemoryInfo(handle).used)
                listed = self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except self.nvml.NVMLError:  # one failed query leaves the peaks seen so far
                continue
            device["memory_used_peak_bytes"] = max(device["memory_used_peak_bytes"], used)
            # usedGpuMemory is None where the driver withholds it (no permission, some vGPUs)
            ours = [p.usedGpuMemory for p in listed if p.pid in tree and p.usedGpuMemory is not None]
            if ours:
                device["process_tree_peak_bytes"] = max(device["process_tree_peak_bytes"] or 0,
                                                        int(sum(ours)))
                device["process_tree_not_measured"] = None

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value  # older pynvml returns bytes


def _open_gpus() -> _Gpus | str:
    """NVML started and its devices read, or why not ("not measured: ...")."""
    try:
        import pynvml  # lazily: NVML is loaded only for a run that is measured
    except ImportError as error:
        return f"not measured: nvidia-ml-py is not installed ({error})"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return f"not measured: NVML is unavailable ({error}; no NVIDIA driver on this machine?)"
    try:
        gpus = _Gpus(pynvml)
    except pynvml.NVMLError as error:
        pynvml.nvmlShutdown()
        return f"not measured: NVML could not read the devices ({error})"
    if not gpus.devices:
        gpus.close()
        return "not measured: NVML lists no GPU on this machine"
    return gpus


class Monitor:
    """Samples RAM (RSS) of a process and all its descendants, and GPU memory, until stopped."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.peak_rss_bytes: int | None = None
        self.samples = 0
        self.result: dict | None = None  # what stop() returned, for a caller that did not stop it
        self._root: psutil.Process | None = None
        self._known: dict[int, psutil.Process] = {}
        self._gpus: _Gpus | str = "not measured: the command did not start"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        """Begin sampling ``pid`` and its descendants; the first sample is taken now."""
        if self._thread is not None:
            raise RuntimeError("a Monitor measures one command: make a new one per run")
        try:
            self._root = psutil.Process(pid)
        except _GONE:
            self._root = None  # already gone: stop() says so
        tree = self._sample_rss()  # before NVML's start, which can outlast a short command
        self._gpus = _open_gpus()
        if isinstance(self._gpus, _Gpus):
            self._gpus.sample(tree)
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{pid}", daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        """Stop sampling, release NVML and return the record (the same one on every call)."""
        if self.result is not None:
            return self.result
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if isinstance(self._gpus, _Gpus):
            self._gpus.close()
            gpu: list[dict] | str = self._gpus.devices
        else:
            gpu = self._gpus
        measured = self.peak_rss_bytes is not None
        why = ("not measured: the command did not start" if self._thread is None else
               "not measured: the process ended before the first sample")
        self.result = {
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_rss_not_measured": None if measured else why,
            "rss_scope": (f"the command's whole process tree, RSS summed over its processes (psutil, "
                          f"every {self.interval_s:g} s; peaks shorter than that can be missed; "
                          f"pages shared between processes count once per process)"),
            "samples": self.samples,
            "interval_s": self.interval_s,
            "gpu": gpu,
        }
        return self.result

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            tree = self._sample_rss()
            if isinstance(self._gpus, _Gpus):
                self._gpus.sample(tree)

    def _tree(self) -> list[psutil.Process]:
        if self._root is None:
            return []
        try:
            for child in self._root.children(recursive=True):
                self._known.setdefault(child.pid, child)
        except _GONE:
            pass
        # Known descendants stay in the tree after their parent exits and they are re-parented
        # away from it (a launcher that leaves its workers running); dead ones drop out.
        self._known = {pid: p for pid, p in self._known.items() if p.is_running()}
        return [self._root, *self._known.values()]

    def _sample_rss(self) -> set[int]:
        """Add one RSS sample; return the pids it measured."""
        total, seen = 0, set()
        for process in self._tree():
            try:
                rss = process.memory_info().rss
            except _GONE:  # it ended between listing and reading: nothing left to count
                continue
            if rss:  # a live process always has some; an exited, unreaped one (zombie) reads 0
                total += rss
                seen.add(process.pid)
        if seen:
            self.samples += 1
            self.peak_rss_bytes = max(self.peak_rss_bytes or 0, total)
        return seen
