"""Local stand-ins for what this machine cannot reach: a torch wheel built on the spot.

The stand-in is a real wheel that uv really installs; it answers the few torch calls the health
probe makes (version, CUDA build, arch list, device) with the values it was built with.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

TORCH_INIT = '''\
"""Stand-in for torch in talking-head-bench's tests: no tensors, just the build facts."""
import types

__version__ = {version!r}
version = types.SimpleNamespace(cuda={cuda!r})


def _arch_list():
    return {arch_list!r}


cuda = types.SimpleNamespace(
    is_available=lambda: False,
    get_arch_list=_arch_list,
)
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel holding ``files`` (path → text)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode()
    contents[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: thbench-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    record = [_record_line(path, data) for path, data in contents.items()]
    record.append(f"{dist}/RECORD,,")
    contents[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return wheel


def build_torch(folder: Path, version: str, cuda: str | None = None,
                arch_list: tuple[str, ...] = ()) -> Path:
    init = TORCH_INIT.format(version=version, cuda=cuda, arch_list=list(arch_list))
    return build_wheel(folder, "torch", version, {"torch/__init__.py": init})
