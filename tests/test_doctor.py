"""doctor against the real tools here, and stand-ins only for what this machine lacks: an
``nvidia-smi`` on PATH printing what a driver prints (NVML made absent so it is the one asked),
a loopback host for the mirrors, hand-written stamps for stale envs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import envs_dir
from tests.weight_server import hermetic_env, serving
from thbench import doctor, doctor_checks, envs, gpu, proc, specs
from thbench.doctor_checks import Status
from thbench.specs import Kind

# Recorded: `nvidia-smi` as a public README shows it for a host with two A100-PCIE-40GB on driver
# 525.147.05 (2024-04-13; its process rows dropped). The --query-gpu CSV below is not recorded:
# it is built from the same facts in nvidia-smi's documented format.
SMI_525 = """\
Sat Apr 13 22:38:28 2024
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 525.147.05   Driver Version: 525.147.05   CUDA Version: 12.0     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |
|                               |                      |               MIG M. |
|===============================+======================+======================|
|   0  NVIDIA A100-PCI...  Off  | 00000000:25:00.0 Off |                    0 |
| N/A   25C    P0    35W / 250W |  25087MiB / 40960MiB |      0%      Default |
|                               |                      |             Disabled |
+-------------------------------+----------------------+----------------------+
|   1  NVIDIA A100-PCI...  Off  | 00000000:C8:00.0 Off |                    0 |
| N/A   25C    P0    35W / 250W |  25691MiB / 40960MiB |      0%      Default |
|                               |                      |             Disabled |
+-------------------------------+----------------------+----------------------+
"""
A100_525 = {"name": "NVIDIA A100-PCIE-40GB", "compute_cap": "8.0", "driver_version": "525.147.05",
            "memory.total": "40960 MiB"}
SMI_515 = SMI_525.replace("525.147.05", "515.105.01").replace("CUDA Version: 12.0",
                                                              "CUDA Version: 11.7")
A100_515 = {**A100_525, "driver_version": "515.105.01"}

STANDIN = '''\
#!{python}
"""nvidia-smi stand-in: the plain table, or --query-gpu CSV of the fields asked."""
import sys

TABLE = {table!r}
FIELDS = {fields!r}
query = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--query-gpu=")), None)
if query is None:
    sys.stdout.write(TABLE)
    sys.exit(0)
values = []
for field in query.split(","):
    if field not in FIELDS:  # what drivers before the field existed answer
        print(f'Field "{{field}}" is not a valid field to query.', file=sys.stderr)
        sys.exit(2)
    value = FIELDS[field]
    values.append(value.removesuffix(" MiB") if "nounits" in " ".join(sys.argv) else value)
print(", ".join(values))
'''

MODEL = """\
schema = 1
description = "doctor test model"
python = "3.11"
gpu = "required"
requirements = "requirements.lock"
imports = []

[torch]
packages = ["{pin}"]
index = "{index}"

[inference]
argv = ["{{python}}", "x.py"]
output = "*.mp4"
"""


@pytest.fixture
def hermetic(monkeypatch, tmp_path):
    """Own envs, uv cache and spec folders; hosts asked only on loopback; NVML absent."""
    hermetic_env(monkeypatch)
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL", "UV_PYTHON_INSTALL_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails: nvidia-smi is asked
    gpu.detect.cache_clear()
    with serving() as server, envs_dir(tmp_path / "envs"):
        # a port nobody listens on: the GitHub mirror that does not answer
        with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
            refused = f"http://127.0.0.1:{closed.server_address[1]}/"
        monkeypatch.setenv("UV_DEFAULT_INDEX", server.base + "/simple/")
        monkeypatch.setenv("HF_ENDPOINT", server.base)
        monkeypatch.setenv("THB_GITHUB_MIRROR", refused)
        yield server
    gpu.detect.cache_clear()


def spec_root(tmp_path, server, models: dict[str, str], index_base: str = "") -> Path:
    root = tmp_path / "specs"
    for name, pin in models.items():
        folder = root / "solutions" / name
        folder.mkdir(parents=True)
        (folder / "requirements.lock").write_text("six==1.17.0\n")
        cuda = pin.rpartition("+")[2]
        (folder / "spec.toml").write_text(MODEL.format(
            pin=pin, index=f"{index_base or server.base}/whl/{cuda}"))
    return root


def standin_smi(tmp_path, monkeypatch, table: str, fields: dict) -> None:
    folder = tmp_path / "smi-bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(STANDIN.format(python=sys.executable, table=table, fields=fields))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    gpu.detect.cache_clear()


def report(capsys) -> tuple[int, dict]:
    code = doctor.main(as_json=True)
    return code, json.loads(capsys.readouterr().out)


def by_check(data: dict, group: str) -> dict[str, dict]:
    return {line["check"]: line for line in data["lines"] if line["group"] == group}


def test_json_shape_and_the_real_tools_here(hermetic, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})))
    code, data = report(capsys)
    assert data["schema"] == doctor.SCHEMA and set(data["counts"]) == {s.value for s in Status}
    for line in data["lines"]:
        assert set(line) == {"group", "check", "status", "detail", "tip"}
        assert line["status"] in data["counts"]
        assert line["status"] in ("OK", "INFO") or line["tip"], line  # every problem says what to do
    assert sum(data["counts"].values()) == len(data["lines"])
    assert data["ok"] == (data["counts"]["ERROR"] == 0) and code == (0 if data["ok"] else 1)
    groups = {line["group"] for line in data["lines"]}
    assert groups == {"package managers", "python", "tools", "gpu", "disk", "network", "envs"}

    tools = by_check(data, "tools")
    for name, flag in (("ffmpeg", "-version"), ("git", "--version")):
        version = proc.run([shutil.which(name), flag], capture=True).stdout.splitlines()[0]
        assert tools[name]["status"] == "OK" and version.split(" Copyright")[0] in tools[name]["detail"]
    managers = by_check(data, "package managers")
    uv_version = proc.run([envs.uv_binary(), "--version"], capture=True).stdout.strip()
    assert managers["uv"]["status"] == "OK" and uv_version in managers["uv"]["detail"]
    assert str(tmp_path / "uv-cache") in managers["uv"]["detail"]
    assert managers["conda"]["status"] in ("OK", "INFO")  # absent is no problem
    assert by_check(data, "python")["Python 3.11"]["status"] == "OK"

    network = by_check(data, "network")  # mirrors applied: each line asks the variable's host
    assert network["PyPI"]["status"] == "OK" and "UV_DEFAULT_INDEX" in network["PyPI"]["detail"]
    assert network["Hub"]["status"] == "OK" and hermetic.base in network["Hub"]["detail"]
    github = network["GitHub"]
    assert github["status"] == "WARN" and "connection refused" in github["detail"]
    assert "THB_GITHUB_MIRROR" in github["tip"] and "THB_GITHUB_MIRROR" in github["detail"]
    assert network["PyTorch index"]["status"] == "OK"
    assert by_check(data, "envs")["model-m"]["detail"] == "missing"
    assert by_check(data, "gpu")["GPU"]["status"] == "WARN"  # gpu = "required", no nvidia-smi here


def test_missing_ffmpeg_is_an_error_with_the_bootstrap_tip(hermetic, tmp_path, monkeypatch, capsys):
    bare = tmp_path / "bin"
    bare.mkdir()
    for name in ("git", "git-lfs", "c++"):
        if found := shutil.which(name):
            (bare / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.setenv("THB_SPECS_DIR", str(tmp_path / "no-specs"))
    code, data = report(capsys)
    tools = by_check(data, "tools")
    assert tools["ffmpeg"]["status"] == "ERROR" and "not found on PATH" in tools["ffmpeg"]["detail"]
    assert "bootstrap/bootstrap.py" in tools["ffmpeg"]["tip"]
    # No ffprobe is fine where PyAV (a project dependency) reads the files instead.
    assert tools["ffprobe"]["status"] == "OK" and "PyAV" in tools["ffprobe"]["detail"]
    assert tools["git"]["status"] == "OK"
    assert code == 1 and data["ok"] is False


def test_an_nvidia_smi_standin_shows_the_driver_and_a_cuda_too_new_for_it(
        hermetic, tmp_path, monkeypatch, capsys):
    models = {"cu128": "torch==2.8.0+cu128", "cu130": "torch==2.9.0+cu130",
              "cu118": "torch==2.0.1+cu118"}
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, models)))
    standin_smi(tmp_path, monkeypatch, SMI_525, A100_525)
    assert gpu.detect() == [gpu.Gpu("NVIDIA A100-PCIE-40GB", "8.0", "525.147.05", 40960, "12.0")]
    assert gpu.driver_record() == {"gpu_driver": "525.147.05", "driver_cuda": "12.0"}
    code, data = report(capsys)
    lines = by_check(data, "gpu")
    assert lines["driver"]["detail"] == "525.147.05, runs CUDA ≤ 12.0"
    assert lines["GPU 0"]["detail"] == ("NVIDIA A100-PCIE-40GB, compute capability 8.0 (sm_80, "
                                        "Ampere), 40 GiB")
    assert lines["model-cu118"]["status"] == "OK"
    # CUDA 12.8 wants 570.26; 525.147.05 runs it only by CUDA 12 minor version compatibility.
    assert lines["model-cu128"]["status"] == "WARN" and "minor version" in lines["model-cu128"]["detail"]
    too_new = lines["model-cu130"]
    assert too_new["status"] == "ERROR" and "too old for CUDA 13.0" in too_new["detail"]
    assert "580.65.06" in too_new["tip"] and "CUDA ≤ 12.0" in too_new["tip"]
    assert code == 1


def test_cuda_128_on_a_cuda_11_driver_is_an_error(hermetic, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})))
    standin_smi(tmp_path, monkeypatch, SMI_515, A100_515)
    code, data = report(capsys)
    line = by_check(data, "gpu")["model-m"]
    assert line["status"] == "ERROR" and "needs ≥ 525.60.13" in line["detail"], line
    assert line["detail"].startswith("profile default: torch 2.8.0 + CUDA 12.8")
    assert code == 1


def test_a_driver_without_compute_cap_still_lists_its_gpu(hermetic, tmp_path, monkeypatch):
    old = {k: v for k, v in A100_515.items() if k != "compute_cap"}
    standin_smi(tmp_path, monkeypatch, SMI_515, old)
    assert gpu.detect() == [gpu.Gpu("NVIDIA A100-PCIE-40GB", "", "515.105.01", 40960, "11.7")]
    lines = doctor_checks.gpus([], gpu.detect())
    assert "compute capability unknown" in lines[1].detail


def test_nvml_is_asked_first_when_it_loads(monkeypatch):
    """A stand-in pynvml (this machine has no driver for the real one) answering as NVML does."""
    class NVMLError(Exception):
        pass

    memory = type("Memory", (), {"total": 143771 * 2**20})
    fake = type(sys)("pynvml")
    fake.NVMLError = NVMLError
    fake.nvmlInit = fake.nvmlShutdown = lambda: None
    fake.nvmlSystemGetDriverVersion = lambda: b"570.124.06"  # older nvidia-ml-py returns bytes
    fake.nvmlSystemGetCudaDriverVersion = lambda: 12080
    fake.nvmlDeviceGetCount = lambda: 1
    fake.nvmlDeviceGetHandleByIndex = lambda index: index
    fake.nvmlDeviceGetName = lambda handle: "NVIDIA H200"
    fake.nvmlDeviceGetCudaComputeCapability = lambda handle: (9, 0)
    fake.nvmlDeviceGetMemoryInfo = lambda handle: memory
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu.detect.cache_clear()
    try:
        assert gpu.detect() == [gpu.Gpu("NVIDIA H200", "9.0", "570.124.06", 143771, "12.8")]
        fake.nvmlInit = lambda: (_ for _ in ()).throw(NVMLError("Driver Not Loaded"))
        gpu.detect.cache_clear()
        monkeypatch.setenv("PATH", "/nonexistent")
        assert gpu.detect() == []  # NVML without a driver, and no nvidia-smi: no GPU
        assert gpu.driver_record() == {"gpu_driver": None, "driver_cuda": None}
    finally:
        gpu.detect.cache_clear()


@pytest.mark.parametrize(
    ("cuda", "driver", "status"),
    [
        ("12.8", "570.86.10", Status.OK),
        ("12.8", "535.183.01", Status.WARN),  # R535 runs CUDA 12.x by minor version compatibility
        ("12.8", "470.256.02", Status.ERROR),
        ("11.8", "450.80.02", Status.WARN),
        ("11.8", "520.61.05", Status.OK),
        ("13.0", "575.57.08", Status.ERROR),
        ("13.0", "580.65.06", Status.OK),
        ("10.2", "418.226.00", Status.ERROR),  # no minor version compatibility before CUDA 11
        ("12.7", "560.35.03", Status.WARN),  # not a release: only the 12.x floor applies
    ],
)
def test_min_driver_rule(cuda, driver, status):
    assert doctor_checks.cuda_on_driver(cuda, driver)[0] is status


def test_a_stale_stamp_names_each_field_that_differs(hermetic, tmp_path, monkeypatch):
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})))
    spec = specs.get(Kind.MODEL, "m")
    env = envs.Env.of(spec)
    env.root.mkdir(parents=True)
    env.stamp_path.write_text(json.dumps({
        "schema": 1, "env": spec.env_id, "profile": "default", "identity": "0" * 64,
        "lock_sha256": "1" * 64, "python": "3.10.4", "rehearsal": None, "repo": None,
        "weights": [], "torch": {"version": "2.7.0+cu126", "cuda": "12.6", "dist": "2.7.0+cu126"},
        "created": "2026-01-01T00:00:00+00:00"}))
    line = doctor.env_line(spec)
    assert line.status is Status.WARN and line.detail.startswith("stale: ")
    for part in ("python 3.10.4 → 3.11", "torch 2.7.0+cu126 → 2.8.0+cu128",
                 "lock requirements.lock changed", "the venv is gone"):
        assert part in line.detail
    assert "setup-m" in line.tip
    env.stamp_path.unlink()
    assert doctor.env_line(spec).detail == "missing"


def test_the_uv_cache_walk_stops_at_its_time_cap(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 10000)
    os.link(tmp_path / "a" / "f", tmp_path / "hardlink")  # counted once, as uv's links share bytes
    size, finished = doctor_checks.size_of(tmp_path)
    assert finished and 10000 <= size < 20000
    assert doctor_checks.size_of(tmp_path, cap_s=-1) == (0, False)


def test_the_table_prints_every_line(hermetic, tmp_path, monkeypatch, capsys):
    refused = os.environ["THB_GITHUB_MIRROR"].rstrip("/")  # the torch index does not answer either
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"},
                                                      index_base=refused)))
    monkeypatch.setenv("COLUMNS", "200")
    code = doctor.main()
    out = capsys.readouterr().out
    assert "THB_GITHUB_MIRROR" in out and "ffmpeg" in out and "model-m" in out
    assert "[torch] index" in out  # tips are text, never rich markup
    assert code == 0  # WARN lines only


@pytest.mark.slow
def test_a_real_env_is_ready_and_its_stamp_records_the_driver(ready_envs, monkeypatch):
    monkeypatch.setenv("THB_ENVS_DIR", str(ready_envs))
    spec = specs.get(Kind.MODEL, "still")
    line = doctor.env_line(spec)
    assert line.status is Status.OK and line.detail.startswith("ready (profile default, Python 3.11")
    stamp = envs.Env.of(spec).read_stamp()
    assert {"gpu_driver", "driver_cuda"} <= set(stamp)
    assert {k: stamp[k] for k in ("gpu_driver", "driver_cuda")} == gpu.driver_record()


def test_a_python_to_download_warns_when_its_host_does_not_answer(hermetic, tmp_path, monkeypatch):
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})))
    spec = specs.get(Kind.MODEL, "m")
    monkeypatch.setattr(envs, "find_python", lambda version, install=False: None)  # none installed
    asked = []

    def probe(url):
        asked.append(url)
        return "name does not resolve"

    [line] = doctor_checks.pythons([spec], probe)
    assert line.status is Status.WARN and "uv python install 3.11" in line.detail
    assert "UV_PYTHON_INSTALL_MIRROR" in line.tip and asked == ["https://github.com/"]
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", hermetic.base + "/pbs")
    [line] = doctor_checks.pythons([spec], lambda url: asked.append(url))
    assert line.status is Status.OK and "from UV_PYTHON_INSTALL_MIRROR" in line.detail
    assert asked[-1] == hermetic.base + "/pbs"


def test_disk_names_the_model_whose_weights_cannot_fit(hermetic, tmp_path, monkeypatch):
    root = spec_root(tmp_path, hermetic, {"small": "torch==2.8.0+cu128", "huge": "torch==2.8.0+cu128"})
    for name, size in (("small", 1000), ("huge", 10**18)):
        with (root / "solutions" / name / "spec.toml").open("a") as spec_file:
            spec_file.write(f'\n[[weights]]\ndest = "w.pth"\nsize = {size}\nsha256 = "{"a" * 64}"\n'
                            f'url = "{hermetic.base}/w.pth"\n')
    monkeypatch.setenv("THB_SPECS_DIR", str(root))
    loaded = list(specs.load_all()[Kind.MODEL].values())
    [line] = [x for x in doctor_checks.disk(loaded, None) if x.status is not Status.OK]
    assert line.status is Status.ERROR and "not even alone: model-huge" in line.detail
    assert "THB_ENVS_DIR" in line.tip
    [line] = doctor_checks.disk([s for s in loaded if s.name == "small"], None)
    assert line.status is Status.OK and "1.0 kB for 1 envs" in line.detail


WEIGHT = '\n[[weights]]\ndest = "w.pth"\nsize = 1000\nsha256 = "{sha}"\nurl = "{base}/w.pth"\n'


@pytest.mark.parametrize("setting", ["file", "variable"])
def test_a_broken_local_config_is_one_error_and_every_other_check_still_reports(
        hermetic, tmp_path, monkeypatch, capsys, setting):
    root = spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})
    with (root / "solutions" / "m" / "spec.toml").open("a") as spec_file:  # disk asks its env
        spec_file.write(WEIGHT.format(sha="a" * 64, base=hermetic.base))
    monkeypatch.setenv("THB_SPECS_DIR", str(root))
    if setting == "file":
        bad = tmp_path / "thb.local.toml"
        bad.write_text('[models.mm]\nenv = "uv"\n')
        monkeypatch.setenv("THB_LOCAL_CONFIG", str(bad))
    else:
        monkeypatch.setenv("THB_ENV_M", "venv:/x")
    code, data = report(capsys)
    assert {line["group"] for line in data["lines"]} == {
        "package managers", "python", "tools", "gpu", "disk", "network", "envs"}
    envs_lines = by_check(data, "envs")
    config = envs_lines["local config"]
    assert config["status"] == "ERROR" and "1 problem in the local config" in config["detail"]
    assert ("models.mm: unknown model; did you mean 'm'?" if setting == "file"
            else "THB_ENV_M='venv:/x': must be conda:") in config["detail"]
    assert "Existing environments" in config["tip"]
    assert envs_lines["model-m"]["status"] == "WARN" and "local config" in envs_lines["model-m"]["tip"]
    assert "1.0 kB for 1 envs" in by_check(data, "disk")["disk"]["detail"]  # counted all the same
    assert data["counts"]["ERROR"] == 1 + sum(
        line["status"] == "ERROR" for line in data["lines"] if line["check"] in ("ffmpeg", "git"))
    assert code == 1


def test_an_existing_env_that_is_no_python_or_no_conda_env_is_an_error(
        hermetic, tmp_path, monkeypatch):
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, {"m": "torch==2.8.0+cu128"})))
    spec = specs.get(Kind.MODEL, "m")
    not_conda = tmp_path / "plain-folder"
    (not_conda / "bin").mkdir(parents=True)
    cases = {f"python:{shutil.which('true')}": "is not a Python interpreter",
             f"python:{tmp_path}/gone/bin/python": "does not exist",
             f"conda:{not_conda}": "is not a conda env (it has no conda-meta folder)"}
    for value, why in cases.items():
        monkeypatch.setenv("THB_ENV_M", value)
        line = doctor.env_line(spec)
        assert line.status is Status.ERROR and why in line.detail and value in line.detail, line
        assert line.tip, line
    [config] = [x for x in doctor.collect() if x.check == "local config"]
    assert config.status is Status.OK and f"m → conda:{not_conda} (from THB_ENV_M)" in config.detail


def test_no_ffprobe_warns_for_the_metrics_that_run_it_by_name(hermetic, tmp_path, monkeypatch):
    monkeypatch.delenv("THB_SPECS_DIR", raising=False)  # the real specs: syncnet runs `ffprobe`
    loaded = [s for kind in Kind for s in specs.load_all()[kind].values()]
    assert doctor_checks.run_by_name(loaded, "ffprobe") == ["metric-syncnet"]
    bare = tmp_path / "bin"
    bare.mkdir()
    for name in ("ffmpeg", "git"):
        (bare / name).symlink_to(shutil.which(name))
    with_ffprobe = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(bare))
    lines = {line.check: line for line in doctor_checks.tools(loaded)}
    assert lines["ffprobe"].status is Status.OK and "PyAV" in lines["ffprobe"].detail
    warn = lines["ffprobe for metrics"]
    assert warn.status is Status.WARN and "metric-syncnet runs `ffprobe` by name" in warn.detail
    assert "module load ffmpeg" in warn.tip and "conda-forge ffmpeg" in warn.tip
    monkeypatch.setenv("PATH", with_ffprobe)
    assert "ffprobe for metrics" not in {line.check for line in doctor_checks.tools(loaded)}


def test_a_pypi_torch_series_missing_from_the_table_warns(hermetic, tmp_path, monkeypatch, capsys):
    models = {"pypi29": "torch==2.9.0", "pypi28": "torch==2.8.0"}  # plain PyPI wheels, no +cu tag
    monkeypatch.setenv("THB_SPECS_DIR", str(spec_root(tmp_path, hermetic, models)))
    standin_smi(tmp_path, monkeypatch, SMI_525, A100_525)
    _, data = report(capsys)
    lines = by_check(data, "gpu")
    unknown = lines["model-pypi29"]
    assert unknown["status"] == "WARN" and "CUDA build unknown" in unknown["detail"], unknown
    assert "[pypi_cuda]" in unknown["detail"] and '"2.9"' in unknown["tip"]
    assert "CUDA 12.8 (PyPI wheel)" in lines["model-pypi28"]["detail"]  # a series the table has
