"""bootstrap/bootstrap.py against a loopback index serving a real uv wheel, and a real uv.

apt is only ever asked about packages (dpkg-query) or shown in a dry run: no test installs one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bootstrap import bootstrap as boot
from bootstrap import rootless
from thbench import proc
from thbench.errors import UserError

needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs dpkg-query")
MISSING_PACKAGE = "thb-surely-not-a-debian-package"


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def real_uv() -> Path:
    """The uv running these tests (`uv run` sets UV), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "these tests need uv"
    return Path(found)


@pytest.fixture(scope="session")
def uv_wheel(tmp_path_factory, real_uv) -> Path:
    """The real uv wheel bootstrap pins, for this machine, from PyPI (pip caches it)."""
    folder = tmp_path_factory.mktemp("uv-wheel")
    proc.run([real_uv, "tool", "run", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", f"uv=={boot.UV_VERSION}", "-d", folder], timeout=300)
    (wheel,) = folder.glob("uv-*.whl")
    return wheel


class Loopback:
    """A bounded HTTP server on 127.0.0.1 serving ``routes`` (path -> content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.seen: list[tuple[str, str | None]] = []  # (path, Accept header)
        routes, seen = self.routes, self.seen

        class Handler(BaseHTTPRequestHandler):
            timeout = 30  # a stuck client cannot hold a thread for ever

            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Accept")))
                if self.path not in routes:
                    self.send_error(404)
                    return
                content_type, body = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.05})  # quick shutdown

    def serve_index(self, wheel: Path, sha256: str) -> None:
        """A PEP 691 page for uv: another platform's wheel first, then ``wheel`` (relative URL)."""
        page = {"meta": {"api-version": "1.1"}, "name": "uv", "files": [
            {"filename": f"uv-{boot.UV_VERSION}-py3-none-win_amd64.whl", "url": "/nowhere",
             "hashes": {"sha256": "1" * 64}},
            {"filename": wheel.name, "url": f"../../files/{wheel.name}",
             "hashes": {"sha256": sha256}},
        ]}
        self.routes["/simple/uv/"] = (boot.PEP691_JSON, json.dumps(page).encode())
        self.routes[f"/files/{wheel.name}"] = ("application/octet-stream", wheel.read_bytes())


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=10)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch) -> Path:
    """UV_INSTALL_DIR in tmp_path, a PATH with no uv on it, no index or mirror settings."""
    folder = tmp_path / "bin"
    monkeypatch.setenv("UV_INSTALL_DIR", str(folder))
    path = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "uv").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    for name in (*boot.MIRROR_KNOBS, "THB_UV_INSTALLER_URL", "UV_PYTHON_INSTALL_MIRROR",
                 "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def with_uv(bin_dir, real_uv) -> Path:
    """bin_dir holding a copy of the real uv."""
    bin_dir.mkdir()
    shutil.copy2(real_uv, bin_dir / "uv")
    return bin_dir / "uv"


@pytest.fixture
def calls(monkeypatch) -> list[list[str]]:
    """Every argv bootstrap runs (they still run: this only records)."""
    seen: list[list[str]] = []
    real_run = proc.run

    def recording_run(argv, **kwargs):
        seen.append([os.fspath(a) for a in argv])
        return real_run(argv, **kwargs)

    monkeypatch.setattr(boot.proc, "run", recording_run)
    return seen


def packages_file(tmp_path: Path, *names: str) -> list[str]:
    path = tmp_path / "apt-packages.txt"
    path.write_text("# test list\n" + "".join(f"{n}  # why\n" for n in names))
    return ["--apt-packages", str(path)]


# --- tests ---------------------------------------------------------------------------------------

@needs_dpkg
def test_dry_run_prints_table_and_commands_and_changes_nothing(tmp_path, bin_dir, calls, capfd):
    args = packages_file(tmp_path, "git", MISSING_PACKAGE)
    assert boot.main(["--dry-run", *args, "--", "invoke", "demo"]) == 0
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["ITEM", "STATE", "ACTION"]
    assert "apt: git" in out and lines[1].split()[2:] == ["installed", "-"]
    assert lines[2].split()[2:] == ["missing", "apt-get", "install"]
    assert lines[3].split()[:2] == ["uv", "missing"]
    assert "env DEBIAN_FRONTEND=noninteractive apt-get update\n" in out
    assert ("env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
            f"{MISSING_PACKAGE}\n") in out
    assert f"download the uv {boot.UV_VERSION} wheel from https://pypi.org/simple/uv/" in out
    assert f"Would run: {bin_dir / 'uv'} run invoke demo" in out
    assert "Dry run: nothing changed." in out
    assert {argv[0] for argv in calls} == {"dpkg-query"}  # asked, never installed
    assert not bin_dir.exists()


def test_privilege_prefix():
    assert boot.privilege_prefix(True, None, ["git"]) == []
    assert boot.privilege_prefix(False, "/usr/bin/sudo", ["git"]) == ["sudo", "-n"]
    with pytest.raises(UserError, match="sudo is not installed") as err:
        boot.privilege_prefix(False, None, ["git", "ffmpeg"])
    assert "apt-get install git ffmpeg" in err.value.tip


@needs_dpkg
def test_everything_present_is_a_no_op(tmp_path, with_uv, calls, capfd):
    before = with_uv.stat().st_mtime_ns
    assert boot.main(packages_file(tmp_path, "git")) == 0
    out = capfd.readouterr().out
    uv_row = out.splitlines()[2].split()  # uv  0.13.9 at <bin>/uv  -
    assert uv_row[:1] + uv_row[2:] == ["uv", "at", str(with_uv), "-"]
    assert "Everything is present; nothing changed." in out
    assert calls == [["dpkg-query", "-W", "-f=${Status}\n", "git"], [str(with_uv), "--version"]]
    assert os.listdir(with_uv.parent) == ["uv"] and with_uv.stat().st_mtime_ns == before


def test_pypi_method_installs_a_working_uv(tmp_path, bin_dir, loopback, uv_wheel, monkeypatch,
                                           capfd):
    loopback.serve_index(uv_wheel, hashlib.sha256(uv_wheel.read_bytes()).hexdigest())
    monkeypatch.setenv("UV_INDEX_URL", f"{loopback.url}/simple/")
    assert boot.main(packages_file(tmp_path)) == 0
    assert loopback.seen == [("/simple/uv/", boot.PEP691_JSON), (f"/files/{uv_wheel.name}", None)]
    assert sorted(os.listdir(bin_dir)) == ["uv", "uvx"]  # no staging left behind
    version = proc.run([bin_dir / "uv", "--version"], capture=True).stdout
    assert version.startswith(f"uv {boot.UV_VERSION}")
    assert f"Done: installed uv {boot.UV_VERSION} at {bin_dir / 'uv'}." in capfd.readouterr().out

    assert boot.main(packages_file(tmp_path)) == 0  # second run: found, nothing downloaded
    assert "Everything is present; nothing changed." in capfd.readouterr().out
    assert len(loopback.seen) == 2


def test_pypi_sha256_mismatch_fails_and_leaves_no_uv(tmp_path, bin_dir, loopback, uv_wheel,
                                                     monkeypatch, capfd):
    loopback.serve_index(uv_wheel, "0" * 64)
    monkeypatch.setenv("PIP_INDEX_URL", f"{loopback.url}/simple")
    assert boot.main(packages_file(tmp_path)) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"ERROR: sha256 mismatch for {uv_wheel.name}")
    assert "\nTIP: " in err and "Traceback" not in err
    assert os.listdir(bin_dir) == []


def test_pypi_index_without_json_api_is_an_error(tmp_path, bin_dir, loopback, monkeypatch, capfd):
    loopback.routes["/simple/uv/"] = ("text/html", b"<html><body>uv</body></html>")
    monkeypatch.setenv("UV_INDEX_URL", f"{loopback.url}/simple")
    assert boot.main(packages_file(tmp_path)) == 2
    assert "is not a PEP 691 JSON index page" in capfd.readouterr().err


def test_installer_method_passes_install_dir_and_mirror_knobs(tmp_path, bin_dir, loopback,
                                                               real_uv, monkeypatch, capfd):
    # A stand-in for Astral's script: what is under test is our download-and-run, not theirs.
    seen_env = tmp_path / "installer-env.txt"
    script = f"""set -eu
env > {shlex.quote(str(seen_env))}
mkdir -p "$UV_INSTALL_DIR"
cp {shlex.quote(str(real_uv))} "$UV_INSTALL_DIR/uv"
echo "test installer ran"
"""
    loopback.routes["/uv/install.sh"] = ("text/x-sh", script.encode())
    monkeypatch.setenv("THB_UV_INSTALLER_URL", f"{loopback.url}/uv/install.sh")
    monkeypatch.setenv("UV_INSTALLER_GITHUB_BASE_URL", "https://mirror.example.test/github")
    assert boot.main(["--uv-from", "installer", *packages_file(tmp_path)]) == 0
    env = dict(line.split("=", 1) for line in seen_env.read_text().splitlines() if "=" in line)
    assert env["UV_INSTALLER_GITHUB_BASE_URL"] == "https://mirror.example.test/github"
    assert env["UV_INSTALL_DIR"] == str(bin_dir) and env["UV_NO_MODIFY_PATH"] == "1"
    out = capfd.readouterr().out
    assert "test installer ran" in out  # the installer's output reaches the terminal
    assert "UV_PYTHON_INSTALL_MIRROR" in out  # a mirror knob is set: the advice is printed
    assert proc.run([bin_dir / "uv", "--version"], capture=True).stdout.startswith("uv ")


def test_hand_off_runs_uv_run_with_the_resolved_uv(tmp_path, with_uv, capfd):
    code = "print('handed off'); raise SystemExit(3)"
    args = ["--", "--no-project", "python", "-c", code]
    assert boot.main([*packages_file(tmp_path), *args]) == 3  # the child's status
    out = capfd.readouterr().out
    assert f"Running: {with_uv} run --no-project python -c " in out  # uv is not on PATH
    assert out.rstrip().endswith("handed off")


@pytest.mark.parametrize("ffmpeg_on_path", [False, True])
def test_without_apt_a_missing_ffmpeg_comes_from_the_wheel(tmp_path, with_uv, monkeypatch, capfd,
                                                           ffmpeg_on_path):
    fake_path = tmp_path / "path"  # a PATH with no apt-get, dpkg-query or uv
    fake_path.mkdir()
    if ffmpeg_on_path:
        for name in ("ffmpeg", "ffprobe"):
            if not shutil.which(name):
                pytest.skip(f"needs {name}")
            (fake_path / name).symlink_to(shutil.which(name))
    monkeypatch.setenv("PATH", str(fake_path))
    monkeypatch.setenv("THB_TOOLS_DIR", str(tmp_path / "tools"))
    code = boot.main(["--dry-run", *packages_file(tmp_path, "ffmpeg", "git")])
    out, err = capfd.readouterr()
    assert code == 0 and err == ""
    assert "apt-get" in out and "not found" in out
    assert "package: git" in out and "not checked (no dpkg)" in out
    if ffmpeg_on_path:
        assert f"on PATH: {fake_path / 'ffmpeg'}" in out and "Would run" not in out
    else:
        assert f"download the imageio-ffmpeg {rootless.FFMPEG_WHEEL_VERSION} wheel from " \
               "https://pypi.org/simple/imageio-ffmpeg/" in out
        assert "PyAV (`av`, a project dependency) stands in" in out
    assert not (tmp_path / "tools").exists()
