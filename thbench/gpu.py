"""What NVIDIA GPUs this machine has, and its driver (no torch needed).

Asked of NVML (nvidia-ml-py's ``pynvml``) when it loads, else of ``nvidia-smi``: its
``--query-gpu`` CSV for the devices and, because no query field gives it on every driver, the
``CUDA Version`` of its plain table for the newest CUDA the driver supports. Drivers before
nvidia-smi's ``compute_cap`` field (R510) still list their GPUs, with the capability unknown.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from functools import cache

from thbench import proc

QUERY = "name,compute_cap,driver_version,memory.total"
QUERY_OLD = "name,driver_version,memory.total"  # drivers whose nvidia-smi lacks compute_cap
CUDA_RE = re.compile(r"CUDA Version:\s*(\d+\.\d+)")


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "9.0"; "" when the driver cannot tell
    driver: str  # "550.54.15"
    memory_mib: int | None = None
    driver_cuda: str | None = None  # the newest CUDA release the driver runs: "12.4"

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")


@cache
def detect() -> list[Gpu]:
    """Every GPU the driver lists; empty when there is no driver or no GPU (asked once)."""
    found = _from_nvml()
    return found if found is not None else _from_smi()


def driver_record(gpus: list[Gpu] | None = None) -> dict:
    """The driver facts a stamp or run record keeps next to the torch build (None: no GPU)."""
    gpus = detect() if gpus is None else gpus
    first = gpus[0] if gpus else None
    return {"gpu_driver": first.driver if first else None,
            "driver_cuda": first.driver_cuda if first else None}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value  # older pynvml returns bytes


def _from_nvml() -> list[Gpu] | None:
    """The GPUs as NVML reports them; None when NVML cannot be asked (then nvidia-smi is)."""
    try:
        import pynvml  # lazily: listing models never loads the driver library
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        number = pynvml.nvmlSystemGetCudaDriverVersion()  # 12040 for CUDA 12.4
        cuda = f"{number // 1000}.{number % 1000 // 10}"
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(Gpu(_text(pynvml.nvmlDeviceGetName(handle)), f"{major}.{minor}", driver,
                            pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20, cuda))
        return gpus
    except pynvml.NVMLError:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _from_smi() -> list[Gpu]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    rows = None
    for fields in (QUERY, QUERY_OLD):
        result = proc.run([smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                          capture=True, check=False, timeout=60)
        if result.returncode == 0:
            rows = [[f.strip() for f in line.split(",")] for line in result.stdout.splitlines()]
            break
    if rows is None:  # no driver loaded, or nvidia-smi cannot talk to it
        return []
    table = proc.run([smi], capture=True, check=False, timeout=60).stdout
    cuda = match.group(1) if (match := CUDA_RE.search(table)) else None
    gpus = []
    for row in rows:
        if len(row) != len(fields.split(",")) or not row[0]:
            continue
        if fields == QUERY_OLD:
            row.insert(1, "")
        name, capability, driver, memory = row
        gpus.append(Gpu(name, capability, driver, int(memory) if memory.isdigit() else None, cuda))
    return gpus
