"""The conda/pip conflict report, on a prefix laid out as conda writes one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from thbench import conda_conflicts

SITE = "lib/python3.10/site-packages"


def conda_record(prefix: Path, name: str, version: str, build: str, channel: str,
                 files: list[str], contents: dict[str, str] | None = None,
                 hashes: bool = True) -> None:
    """A conda-meta record with the fields conda 23 writes (trimmed lists, real shapes).

    Each file is put down with ``contents`` (an INSTALLER reads ``conda`` unless told) and its
    sha256 recorded in paths_data; ``hashes=False`` writes a record without paths_data, as old
    conda releases did.
    """
    fn = f"{name}-{version}-{build}"
    written = {}
    for f in files:
        text = (contents or {}).get(f, "conda\n" if f.endswith("INSTALLER") else "")
        (prefix / f).parent.mkdir(parents=True, exist_ok=True)
        (prefix / f).write_text(text)
        written[f] = hashlib.sha256(text.encode()).hexdigest()
    record = {
        "build": build, "build_number": 0,
        "channel": f"https://conda.anaconda.org/{channel}/linux-64",
        "constrains": [], "depends": ["python >=3.10,<3.11.0a0"],
        "extracted_package_dir": f"/opt/conda/pkgs/{fn}", "features": "", "files": files,
        "fn": f"{fn}.tar.bz2", "license": "BSD-3-Clause",
        "link": {"source": f"/opt/conda/pkgs/{fn}", "type": 1}, "md5": "0" * 32, "name": name,
        "package_tarball_full_path": f"/opt/conda/pkgs/{fn}.tar.bz2",
        "paths_data": {"paths": [{"_path": f, "path_type": "hardlink", "sha256": written[f],
                                  "size_in_bytes": 1} for f in files], "paths_version": 1},
        "requested_spec": f"{channel}::{name}={version}", "sha256": "0" * 64, "size": 1,
        "subdir": "linux-64", "timestamp": 1696000000000, "track_features": "",
        "url": f"https://conda.anaconda.org/{channel}/linux-64/{fn}.tar.bz2", "version": version,
    }
    if not hashes:
        del record["paths_data"]
    (prefix / "conda-meta" / f"{fn}.json").write_text(json.dumps(record, indent=1))


def dist_info(prefix: Path, name: str, version: str, installer: str) -> None:
    """The dist-info pip or uv writes (over one already there, when conda put it down)."""
    info = prefix / SITE / f"{name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    (info / "INSTALLER").write_text(installer + "\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,sha256=written-by-{installer},0\n")


def make_prefix(prefix: Path) -> Path:
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "history").write_text(
        "==> 2024-03-01 10:00:00 <==\n# cmd: /opt/conda/bin/conda create -n th python=3.10\n"
        "# conda version: 23.11.0\n+defaults/linux-64::python-3.10.13-h955ad1f_0\n"
        "==> 2024-03-01 10:05:00 <==\n# cmd: /opt/conda/bin/conda install -c pytorch "
        "pytorch=2.1.0 numpy\n+pytorch/linux-64::pytorch-2.1.0-py3.10_cuda11.8_cudnn8.7.0_0\n")
    # conda's pytorch: egg-info metadata, as the pytorch channel's builds ship it; pip then
    # removed its torch/ files when it installed its own torch over it.
    conda_record(prefix, "pytorch", "2.1.0", "py3.10_cuda11.8_cudnn8.7.0_0", "pytorch",
                 [f"{SITE}/torch-2.1.0-py3.10.egg-info/PKG-INFO", f"{SITE}/torch/__init__.py",
                  f"{SITE}/torch/version.py"])
    for gone in ("torch/__init__.py", "torch/version.py"):
        (prefix / SITE / gone).unlink()
    dist_info(prefix, "torch", "2.2.0", "pip")
    # numpy from conda-forge with its own dist-info (INSTALLER: conda), and pip's over it.
    conda_record(prefix, "numpy", "1.26.4", "py310hb13e2d6_0", "conda-forge",
                 [f"{SITE}/numpy-1.26.4.dist-info/INSTALLER", f"{SITE}/numpy/__init__.py"])
    dist_info(prefix, "numpy", "1.24.0", "uv")
    # conda-forge's torchvision, then `pip install torchvision==0.16.0`: the same version, so the
    # same dist-info path conda lists; pip rewrote its INSTALLER and RECORD.
    tv = f"{SITE}/torchvision-0.16.0.dist-info"
    conda_record(prefix, "torchvision", "0.16.0", "cuda118py310h", "conda-forge",
                 [f"{tv}/INSTALLER", f"{tv}/RECORD", f"{tv}/METADATA", f"{SITE}/torchvision/__init__.py"],
                 {f"{tv}/RECORD": "torchvision/__init__.py,sha256=from-conda,0\n"})
    dist_info(prefix, "torchvision", "0.16.0", "pip")
    # Consistent packages: conda's alone, pip's alone, a conda package that pip built.
    conda_record(prefix, "six", "1.16.0", "pyhd3eb1b0_1", "defaults",
                 [f"{SITE}/six-1.16.0.dist-info/INSTALLER", f"{SITE}/six.py"])
    dist_info(prefix, "imageio_ffmpeg", "0.5.1", "pip")
    conda_record(prefix, "pyyaml", "6.0.1", "py310h5eee18b_0", "defaults",
                 [f"{SITE}/PyYAML-6.0.1.dist-info/INSTALLER", f"{SITE}/yaml/__init__.py"],
                 {f"{SITE}/PyYAML-6.0.1.dist-info/INSTALLER": "pip\n"})  # conda's build used pip
    return prefix


def test_reports_torch_first_with_both_versions(tmp_path):
    prefix = make_prefix(tmp_path / "envs" / "th")
    found = conda_conflicts.conflicts(prefix)
    assert [c.dist for c in found] == ["torch", "torchvision", "numpy"]
    torch = found[0]
    assert (torch.conda_name, torch.conda_version, torch.conda_channel) == ("pytorch", "2.1.0",
                                                                             "pytorch")
    assert (torch.pip_version, torch.installer) == ("2.2.0", "pip")
    assert (torch.conda_files_missing, torch.conda_files) == (2, 3)
    assert "conda package pytorch 2.1.0 (pytorch) and a pip install 2.2.0" in torch.line()
    same = found[1]  # pip's torchvision over conda's, same version and dist-info path
    assert (same.conda_version, same.pip_version, same.installer) == ("0.16.0", "0.16.0", "pip")
    assert same.conda_files_missing == 0
    assert found[2].installer == "uv" and found[2].conda_channel == "conda-forge"
    tip = conda_conflicts.tip(found)
    assert "pip's 2.2.0, not conda's pytorch 2.1.0" in tip
    assert "conda install --force-reinstall pytorch=2.1.0" in tip


def test_consistent_prefix_has_no_conflicts(tmp_path):
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    conda_record(prefix, "six", "1.16.0", "pyhd3eb1b0_1", "defaults",
                 [f"{SITE}/six-1.16.0.dist-info/INSTALLER", f"{SITE}/six.py"])
    dist_info(prefix, "requests", "2.31.0", "pip")
    # conda's own pip-built dist-info, hashing as recorded; and one from a record without hashes.
    conda_record(prefix, "pyyaml", "6.0.1", "py310h5eee18b_0", "defaults",
                 [f"{SITE}/PyYAML-6.0.1.dist-info/INSTALLER", f"{SITE}/PyYAML-6.0.1.dist-info/RECORD"],
                 {f"{SITE}/PyYAML-6.0.1.dist-info/INSTALLER": "pip\n"})
    conda_record(prefix, "idna", "3.4", "py310h06a4308_0", "defaults",
                 [f"{SITE}/idna-3.4.dist-info/INSTALLER"], {f"{SITE}/idna-3.4.dist-info/INSTALLER": "pip\n"},
                 hashes=False)
    assert conda_conflicts.is_conda_prefix(prefix)
    assert conda_conflicts.conflicts(prefix) == []
    assert not conda_conflicts.is_conda_prefix(tmp_path)
