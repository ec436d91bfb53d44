"""Choose a model's profile (its torch build) for the GPU at hand, from torch_gpu.toml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from thbench.errors import UserError
from thbench.gpu import Gpu
from thbench.specs import DEFAULT_PROFILE, Spec

TABLE_PATH = Path(__file__).with_name("torch_gpu.toml")


@dataclass(frozen=True)
class TorchBuild:
    version: str  # "2.0.1"
    cuda: str | None  # "11.8"; None for a CPU build
    source: str  # how cuda was found: "+cu118 tag", "index …", "PyPI wheel"

    def __str__(self) -> str:
        cuda = f"CUDA {self.cuda}" if self.cuda else "CPU only"
        return f"torch {self.version} + {cuda} ({self.source})"


@dataclass(frozen=True)
class Choice:
    spec: Spec  # with the chosen profile applied
    reason: str


@cache
def table() -> dict:
    return tomllib.loads(TABLE_PATH.read_text(encoding="utf-8"))


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+", 1)[0])[:3])


def _cuda_from_tag(tag: str) -> str:
    digits = tag.removeprefix("cu")  # "cu118" → "11.8", "cu128" → "12.8"
    return f"{digits[:-1]}.{digits[-1]}"


def torch_build(spec: Spec) -> TorchBuild | None:
    """The torch build a spec (profile) installs, or None when it installs no torch."""
    if not spec.torch:
        return None
    pins = dict(p.split("==", 1) for p in spec.torch.packages)
    version = pins.get("torch", "")
    plain, _, local = version.partition("+")
    if local == "cpu":
        return TorchBuild(plain, None, "+cpu tag")
    if local.startswith("cu"):
        return TorchBuild(plain, _cuda_from_tag(local), f"+{local} tag")
    index = spec.torch.index or ""
    if match := re.search(r"/(cu\d{3,})/?$", index):
        return TorchBuild(plain, _cuda_from_tag(match.group(1)), f"index {match.group(1)}")
    if index.rstrip("/").endswith("/cpu"):
        return TorchBuild(plain, None, "cpu index")
    series = ".".join(plain.split(".")[:2])
    cuda = table()["pypi_cuda"].get(series)
    return TorchBuild(plain, cuda, "PyPI wheel" if cuda else "PyPI wheel, CUDA unknown")


def _sm_number(sm: str) -> int:
    return int(re.sub(r"\D", "", sm) or 0)


def generation(device: Gpu) -> dict | None:
    """The table's row for the GPU; a GPU newer than every row gets the newest row's floors."""
    rows = table()["generation"]
    found = next((g for g in rows if device.sm in g["sm"]), None)
    newest = max(rows, key=lambda g: max(_sm_number(sm) for sm in g["sm"]))
    if found is None and _sm_number(device.sm) > max(_sm_number(sm) for sm in newest["sm"]):
        return {**newest, "name": f"newer than {newest['name']}"}
    return found


def supports(spec: Spec, device: Gpu) -> tuple[bool, str]:
    """Whether the spec's torch build has kernels for ``device``, and why."""
    build = torch_build(spec)
    if build is None:
        return True, "installs no torch"
    if build.cuda is None:
        return False, f"{build} cannot use a GPU"
    floor = generation(device)
    if floor is None:  # older than every listed generation: every CUDA build covers it
        return True, f"{build} covers {device.sm}"
    ok = (_numbers(build.version) >= _numbers(floor["min_torch"])
          and _numbers(build.cuda) >= _numbers(floor["min_cuda"]))
    need = f"{floor['name']} ({device.sm}) needs torch ≥ {floor['min_torch']} with CUDA ≥ " \
           f"{floor['min_cuda']}"
    return ok, f"{need}; '{spec.profile}' has {build}"


def choose(spec: Spec, gpus: list[Gpu], override: str | None = None) -> Choice:
    """The profile to set up: ``override`` if given, else the first that supports the GPU."""
    if override:
        chosen = spec.with_profile(override)
        return Choice(chosen, f"--profile {override}")
    if not spec.profiles and not spec.torch:
        return Choice(spec, "the only profile")
    if not gpus:
        return Choice(spec, "no NVIDIA GPU found: the default profile")
    device = gpus[0]
    reasons = []
    for name in spec.profile_names:
        candidate = spec.with_profile(name)
        ok, why = supports(candidate, device)
        if ok:
            return Choice(candidate, f"{device.name}: {why}")
        reasons.append(why)
    raise UserError(
        f"no profile of {spec.name} supports the {device.name}: " + "; ".join(reasons),
        f"add a profile with a newer torch to {spec.path}, or force one with "
        f"--profile {spec.profile_names[-1]}",
    )


__all__ = ["DEFAULT_PROFILE", "Choice", "TorchBuild", "choose", "supports", "torch_build"]
