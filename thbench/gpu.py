"""What NVIDIA GPUs this machine has, asked of nvidia-smi (no torch needed)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cache

from thbench import proc


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "9.0"
    driver: str

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")


@cache
def detect() -> list[Gpu]:
    """Every GPU nvidia-smi lists; empty when there is no driver or no GPU (asked once)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    result = proc.run(
        [smi, "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
        capture=True, check=False, timeout=60,
    )
    if result.returncode != 0:
        return []
    gpus = []
    for line in result.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and fields[0]:
            gpus.append(Gpu(*fields))
    return gpus
