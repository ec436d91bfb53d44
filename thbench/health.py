"""The health gate after an env's installs: imports, held packages, torch build, GPU compute.

The probe (health_probe.py) runs under the env's own Python and prints one JSON line; what it
reports is judged here, each failure an ERROR naming the env and the next step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from thbench import gpu, proc
from thbench.errors import UserError
from thbench.specs import pin_name

if TYPE_CHECKING:
    from thbench.envs import Env

HEALTH_PROBE = Path(__file__).with_name("health_probe.py")  # runs under the env's Python

# Every weight is in place before the probe and before a run: library update checks and hub
# look-ups are switched off (albumentations asks PyPI for its latest version at import,
# transformers and diffusers may look a model id up online).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def health_check(env: Env, expected: list[str] = ()) -> dict:
    """Import every module the spec lists; check the held packages were not replaced."""
    out = proc.run([env.python, HEALTH_PROBE, *env.spec.imports], capture=True, env=OFFLINE_ENV,
                   log=env.log, timeout=600).stdout
    report = json.loads(out.strip().splitlines()[-1])
    failed = {k: v for k, v in report["imports"].items() if v != "ok"}
    if failed:
        raise UserError(
            f"{env.spec.env_id}: import failed after install: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items()),
            f"see {env.log}; fix {env.spec.requirements} and run the setup again",
        )
    for pin in expected:
        name, version = pin.split("==", 1)
        got = report["packages"].get(name)
        if got != version:
            raise UserError(
                f"{env.spec.env_id}: {name} {version} was replaced by {got} while installing "
                f"{env.spec.requirements.name}",
                f"remove {name} from {env.spec.requirements} (compile it with --no-emit-package "
                f"{name}) and run the setup again",
            )
    if env.spec.torch:
        _check_torch(env, report["torch"] or {}, gpu.detect())
    return report


def _check_torch(env: Env, torch: dict, gpus: list[gpu.Gpu]) -> None:
    """torch is the build the spec asked for and, on a GPU machine, really computes there."""
    spec, fix = env.spec, f"see {env.log}; then run `uv run nox -s {env.spec.setup_session}`"
    pins = {pin_name(p): p.split("==", 1)[1] for p in spec.torch.packages}
    pinned = pins.get("torch")
    if "error" in torch:
        raise UserError(f"{spec.env_id}: torch does not import: {torch['error']}", fix)
    # PyPI's CUDA wheels name their build in torch.__version__ ("2.1.2+cu121") while their
    # metadata says "2.1.2": a pin without a local tag is compared without it.
    version = torch["version"] if not pinned or "+" in pinned else torch["version"].split("+")[0]
    if pinned and version != pinned:
        raise UserError(f"{spec.env_id}: torch is {torch['version']}, the spec pins {pinned}: "
                        "a later install step replaced it", fix)
    wants_cuda = "+cpu" not in (pinned or "")
    if wants_cuda and not torch.get("cuda"):
        raise UserError(f"{spec.env_id}: torch {torch['version']} is a CPU-only build", fix)
    if not gpus or not wants_cuda:
        return
    device = gpus[0]
    if not torch.get("cuda_available"):
        raise UserError(
            f"{spec.env_id}: torch {torch['version']} (CUDA {torch.get('cuda')}) cannot use the "
            f"{device.name} (driver {device.driver})",
            "update the NVIDIA driver, or pick a profile built for an older CUDA",
        )
    # torch's own reading of the capability first: nvidia-smi's is empty on drivers before R510.
    sm = torch.get("sm") or (device.sm if device.compute_capability else None)
    if sm and sm not in torch.get("arch_list", []):
        raise UserError(
            f"{spec.env_id}: torch {torch['version']} has no kernels for the {device.name} "
            f"({sm}); it was built for {' '.join(torch.get('arch_list', []))}",
            "pick a profile whose torch build supports this GPU (see `--dry-run`)",
        )
    if not torch.get("tiny_op"):
        raise UserError(f"{spec.env_id}: a tiny CUDA matmul failed on the {device.name}: "
                        f"{torch.get('tiny_op_error', 'wrong result')}", fix)
