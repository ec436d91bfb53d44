from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from dataclasses import dataclass

import psutil
import pytest

from thbench import proc, resources
from thbench.errors import UserError

MiB = 2**20


def _allocating_grandchild(mib: int) -> list[str]:
    """A child that starts a grandchild holding ``mib`` MiB for a second, and waits for it."""
    grandchild = f"b = bytearray({mib} * 2**20); import time; time.sleep(1)"
    return [sys.executable, "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"]


def test_peak_rss_counts_the_grandchild(tmp_path):
    peaks = {}
    for mib in (20, 200):
        monitor = resources.Monitor(interval_s=0.05)
        proc.run(_allocating_grandchild(mib), log=tmp_path / f"{mib}.log", monitor=monitor)
        record = monitor.result
        assert record is not None and record["peak_rss_not_measured"] is None
        assert record["samples"] >= 2 and record["interval_s"] == 0.05
        peaks[mib] = record["peak_rss_bytes"]
    print({mib: round(peak / MiB, 1) for mib, peak in peaks.items()})
    # The child itself holds only an interpreter (~10 MiB): 200 MiB can only be the grandchild's.
    assert peaks[200] >= 200 * MiB
    assert peaks[200] - peaks[20] >= 170 * MiB


def test_a_command_that_exits_at_once_still_gets_a_record():
    monitor = resources.Monitor()
    proc.run(["true"], monitor=monitor)
    record = monitor.stop()
    assert record is monitor.result  # stop() again (proc.run already did) gives the same record
    if record["samples"]:
        assert record["peak_rss_bytes"] > 0 and record["peak_rss_not_measured"] is None
    else:
        assert record["peak_rss_bytes"] is None
        assert record["peak_rss_not_measured"] == "not measured: the process ended before the first sample"
    assert "whole process tree" in record["rss_scope"]


def test_a_process_gone_before_the_first_sample_is_not_measured_never_zero():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process any more
    monitor = resources.Monitor()
    monitor.start(child.pid)
    record = monitor.stop()
    assert record["peak_rss_bytes"] is None and record["samples"] == 0
    assert record["peak_rss_not_measured"] == "not measured: the process ended before the first sample"


def test_a_command_that_never_started_is_recorded_as_such():
    monitor = resources.Monitor()
    with pytest.raises(UserError):
        proc.run(["thb-no-such-program-xyz"], monitor=monitor)
    record = monitor.stop()
    assert record["peak_rss_bytes"] is None and record["samples"] == 0
    assert record["peak_rss_not_measured"] == "not measured: the command did not start"
    assert record["gpu"] == "not measured: the command did not start"


def test_the_monitor_is_stopped_when_the_command_times_out(tmp_path):
    monitor = resources.Monitor()
    with pytest.raises(proc.CommandFailed):
        proc.run([sys.executable, "-c", "import time; time.sleep(300)"], timeout=1,
                 log=tmp_path / "t.log", monitor=monitor)
    assert monitor.result is not None and monitor.result["peak_rss_bytes"] > 0
    assert not monitor._thread.is_alive()


def test_gpu_on_this_machine_is_measured_or_says_why():
    import pynvml
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:  # no NVIDIA driver (this project's CI machine)
        reason = str(error)
    else:
        pynvml.nvmlShutdown()
        reason = None
    monitor = resources.Monitor()
    proc.run([sys.executable, "-c", "pass"], monitor=monitor)
    gpu = monitor.result["gpu"]
    print(gpu)
    if reason is None:
        assert isinstance(gpu, list) and gpu and all(d["name"] and d["driver_version"] for d in gpu)
        assert all(d["memory_used_peak_bytes"] >= d["memory_used_at_start_bytes"] for d in gpu)
    else:
        assert gpu == f"not measured: NVML is unavailable ({reason}; no NVIDIA driver on this machine?)"


@dataclass
class _Listed:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 -- NVML's field name


def _fake_nvml(child_pid: int) -> types.ModuleType:
    """A stand-in for pynvml and the NVIDIA driver (no GPU here): one device whose memory rises
    and falls over the samples, with the command's child and an unrelated process on it."""
    nvml = types.ModuleType("pynvml")
    used_gib = [1, 3, 5, 4, 2]  # device memory over successive queries; then stays at 2
    child_mib = [100, 300, 700, 200]  # the child's own share; then stays at 200
    calls = {"memory": 0, "processes": 0, "shutdown": 0}

    class NVMLError(Exception):
        pass

    def memory_info(handle):
        assert handle == "handle-0"
        n = calls["memory"]
        calls["memory"] += 1
        return types.SimpleNamespace(total=141 * 2**30, used=used_gib[min(n, len(used_gib) - 1)] * 2**30)

    def processes(handle):
        n = calls["processes"]
        calls["processes"] += 1
        return [_Listed(child_pid, child_mib[min(n, len(child_mib) - 1)] * MiB),
                _Listed(1, 50 * 2**30),  # another user's job: not the command's
                _Listed(child_pid, None)]  # a share the driver withholds: not counted as 0

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)
    nvml.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle-{i}"
    nvml.nvmlDeviceGetName = lambda handle: b"NVIDIA Stand-in 141GB"  # older pynvml: bytes
    nvml.nvmlDeviceGetMemoryInfo = memory_info
    nvml.nvmlDeviceGetComputeRunningProcesses = processes
    nvml.calls = calls
    return nvml


def test_nvml_peaks_and_names_land_in_the_record(monkeypatch):
    """The NVML path, through a stand-in for the driver (this machine has no GPU)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    fake = _fake_nvml(child.pid)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monitor = resources.Monitor(interval_s=0.01)
    try:
        monitor.start(child.pid)
        deadline = time.monotonic() + 60  # a bound on waiting, not a timing assertion
        while fake.calls["processes"] < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        child.stdin.close()
        child.wait()
        record = monitor.stop()
    assert fake.calls["processes"] >= 6, "the sampler thread never sampled"
    assert fake.calls["shutdown"] == 1
    [device] = record["gpu"]
    assert device == {
        "index": 0, "name": "NVIDIA Stand-in 141GB", "driver_version": "550.54.15",
        "memory_total_bytes": 141 * 2**30, "memory_used_at_start_bytes": 1 * 2**30,
        "memory_used_peak_bytes": 5 * 2**30, "process_tree_peak_bytes": 700 * MiB,
        "process_tree_not_measured": None,
    }


def test_nvml_listing_no_process_of_the_tree_is_not_measured(monkeypatch):
    fake = _fake_nvml(child_pid=-1)  # no pid of the tree is ever listed
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monitor = resources.Monitor()
    proc.run([sys.executable, "-c", "pass"], monitor=monitor)
    [device] = monitor.result["gpu"]
    assert device["memory_used_peak_bytes"] >= device["memory_used_at_start_bytes"] == 2**30
    assert device["process_tree_peak_bytes"] is None
    assert device["process_tree_not_measured"].startswith("not measured: no process of the command's")


def test_nvml_unavailable_names_the_reason(monkeypatch):
    fake = _fake_nvml(child_pid=-1)

    def no_driver():
        raise fake.NVMLError("Driver Not Loaded")

    monkeypatch.setattr(fake, "nvmlInit", no_driver)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monitor = resources.Monitor()
    proc.run([sys.executable, "-c", "pass"], monitor=monitor)
    assert monitor.result["gpu"] == ("not measured: NVML is unavailable (Driver Not Loaded; "
                                     "no NVIDIA driver on this machine?)")
    assert fake.calls["shutdown"] == 0


def test_nvml_without_the_package_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    monitor = resources.Monitor()
    proc.run([sys.executable, "-c", "pass"], monitor=monitor)
    assert monitor.result["gpu"].startswith("not measured: nvidia-ml-py is not installed")


def test_host_info_describes_this_machine():
    info = resources.host_info()
    print(info)
    assert info["cores"] == os.cpu_count()
    assert isinstance(info["cpu"], str) and info["cpu"].strip()
    assert info["memory_bytes"] == psutil.virtual_memory().total > 0
