"""Run by an env's own interpreter (Python 3.8+, stdlib only) after setup: one JSON line.

Imports each module named on the command line, lists installed distributions, and, when torch
is there, reports its build and, on a CUDA machine, whether it really computes on the GPU.
"""

import importlib
import json
import platform
import sys

try:
    from importlib import metadata
except ImportError:  # pragma: no cover - Python < 3.8 is not supported by any spec
    metadata = None


def torch_report():
    try:
        import torch
    except Exception as exc:  # not installed, or broken: the imports section says which
        return {"error": f"{type(exc).__name__}: {exc}"}
    report = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,  # None for a CPU build
        "arch_list": torch.cuda.get_arch_list() if torch.version.cuda else [],
        "cuda_available": bool(torch.cuda.is_available()),
    }
    if report["cuda_available"]:
        major, minor = torch.cuda.get_device_capability(0)
        report["device"] = torch.cuda.get_device_name(0)
        report["sm"] = f"sm_{major}{minor}"
        try:
            x = torch.ones(64, 64, device="cuda")
            report["tiny_op"] = float((x @ x).sum()) == 64.0 ** 3
        except Exception as exc:  # e.g. "no kernel image is available for execution"
            report["tiny_op"] = False
            report["tiny_op_error"] = f"{type(exc).__name__}: {exc}"
    return report


def main():
    report = {"python": platform.python_version(), "imports": {}, "packages": {}}
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
            report["imports"][name] = "ok"
        except Exception as exc:  # report every failure, not only the first
            report["imports"][name] = f"{type(exc).__name__}: {exc}"
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        report["packages"][name] = dist.version
    report["torch"] = torch_report() if "torch" in report["packages"] else None
    print(json.dumps(report))


if __name__ == "__main__":
    main()
