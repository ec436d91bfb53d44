"""Weights: plan, disk check, download, verify, unpack, against a loopback HTTP stand-in.

The stand-in (127.0.0.1, a thread per request, HTTP/1.0 so each answer closes its connection)
serves seeded random blobs with Range support and misbehaves per path as told. It also answers
``/{repo}/resolve/{revision}/{file}`` the way the Hub does (X-Repo-Commit, ETag = the file's
sha256, Content-Length), so huggingface_hub's real download code runs against it as HF_ENDPOINT.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import shutil
import stat
import tarfile
import zipfile
from collections import namedtuple
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.filesize import decimal

from thbench import folders, weights, weights_disk, weights_hub
from thbench.errors import UserError
from thbench.specs import Weight

from .weight_server import COMMIT, Handler, Standin, git_blob_id, hermetic_env, serving

FAST = weights.HttpPolicy(attempts=4, connect_timeout=2.0, read_timeout=2.0, backoff=0.01,
                          backoff_max=0.05)
Usage = namedtuple("Usage", "total used free")  # what shutil.disk_usage returns


def blob(seed: int, size: int = 300_000) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server() -> Iterator[Standin]:
    with serving() as standin:
        yield standin


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    hermetic_env(monkeypatch)


def fetch(ws: list[Weight], root: Path, policy: weights.HttpPolicy = FAST) -> weights.Plan:
    return weights.fetch_all(ws, root, console=Console(file=io.StringIO()), policy=policy)


def url_weight(url: str, data: bytes, dest: str = "checkpoints/model.pth", **kw) -> Weight:
    return Weight(dest=dest, size=len(data), sha256=sha(data), url=url, **kw)


def leftovers(root: Path) -> list[str]:
    """Every path under root: a test compares it with exactly what should be there."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- plain HTTP ------------------------------------------------------------------------------


def test_download_lands_verified_with_a_sidecar(server, tmp_path):
    data = blob(1)
    w = url_weight(server.serve("/w.pth", data), data)
    final = fetch([w], tmp_path)
    dest = tmp_path / "checkpoints/model.pth"
    assert dest.read_bytes() == data
    record = json.loads((tmp_path / "checkpoints/model.pth.sha256").read_text())
    assert record["sha256"] == sha(data) and record["size"] == len(data)
    assert record["mtime_ns"] == dest.stat().st_mtime_ns and record["source"] == w.url
    assert leftovers(tmp_path) == ["checkpoints", "checkpoints/model.pth",
                                   "checkpoints/model.pth.sha256"]
    assert final.done and [s.method for s in server.log()] == ["GET"]


def test_a_verified_file_costs_no_request_and_no_rehash(server, tmp_path, monkeypatch):
    data = blob(2)
    w = url_weight(server.serve("/w.pth", data), data)
    fetch([w], tmp_path)
    count = len(server.log())

    def no_hashing(path):
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(weights_disk, "_hash_file", no_hashing)  # where plan() verifies
    again = fetch([w], tmp_path)
    assert len(server.log()) == count  # not a single request
    assert again.done and again.items[0].present and again.to_download == 0


def test_a_file_changed_on_disk_is_rehashed_and_replaced(server, tmp_path):
    data = blob(3)
    w = url_weight(server.serve("/w.pth", data), data)
    fetch([w], tmp_path)
    dest = tmp_path / "checkpoints/model.pth"
    dest.write_bytes(bytes(len(data)))  # same size, new mtime: the sidecar no longer vouches
    assert not weights.plan([w], tmp_path).items[0].present
    fetch([w], tmp_path)
    assert dest.read_bytes() == data and len(server.log()) == 2


def test_a_file_without_sidecar_is_hashed_once_and_trusted(server, tmp_path):
    data = blob(4)
    w = url_weight(server.serve("/w.pth", data), data)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/model.pth").write_bytes(data)  # e.g. copied in by hand
    assert weights.plan([w], tmp_path).done
    assert (tmp_path / "checkpoints/model.pth.sha256").is_file()
    assert server.log() == []


def test_a_cut_body_resumes_with_range(server, tmp_path):
    data = blob(5)
    cut = 123_457
    w = url_weight(server.serve("/w.pth", data, mode="cut_once", cut=cut), data)
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert [s.range for s in server.log()] == [None, f"bytes={cut}-"]
    assert not (tmp_path / "checkpoints/model.pth.part").exists()


def test_a_503_is_retried(server, tmp_path):
    data = blob(6)
    w = url_weight(server.serve("/w.pth", data, mode="503_once"), data)
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert len(server.log()) == 2


@pytest.mark.parametrize("mode", ["slow_once", "stall_once"])
def test_a_silent_server_times_out_and_is_retried(server, tmp_path, mode):
    data = blob(7)
    cut = 50_000
    w = url_weight(server.serve("/w.pth", data, mode=mode, cut=cut, delay=0.6), data)
    policy = weights.HttpPolicy(attempts=3, connect_timeout=2.0, read_timeout=0.2,
                                backoff=0.01)
    fetch([w], tmp_path, policy)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    # Waiting the silence out would have needed one request: a second one means it gave up.
    ranges = [s.range for s in server.log()]
    assert ranges == ([None, None] if mode == "slow_once" else [None, f"bytes={cut}-"])


def test_404_fails_at_once_naming_url_and_status(server, tmp_path):
    data = blob(8)
    w = url_weight(server.serve("/gone.pth", data, mode="404"), data)
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert w.url in caught.value.message and "HTTP 404" in caught.value.message
    assert "spec.toml" in caught.value.tip
    assert len(server.log()) == 1
    assert leftovers(tmp_path) == ["checkpoints"]  # no file, no .part


def test_wrong_bytes_fail_the_sha256_and_leave_nothing(server, tmp_path):
    data = blob(9)
    w = url_weight(server.serve("/w.pth", blob(10)), data)  # same size, other bytes
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    message = caught.value.message
    assert message.startswith("sha256 mismatch for checkpoints/model.pth: ")
    assert f"expected {sha(data)}, got {sha(blob(10))}" in message
    assert w.url in caught.value.tip
    assert leftovers(tmp_path) == ["checkpoints"]


def test_a_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = blob(11)
    w = url_weight(server.serve("/w.pth", data, mode="ignore_range"), data)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/model.pth.part").write_bytes(b"garbage from an older run" * 100)
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert [s.range for s in server.log()] == ["bytes=2500-"]  # asked, got 200, started over


def test_a_complete_part_is_verified_on_416(server, tmp_path):
    data = blob(12)
    w = url_weight(server.serve("/w.pth", data), data)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/model.pth.part").write_bytes(data)
    assert weights.plan([w], tmp_path).items[0].action == "resume"
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert [s.range for s in server.log()] == [f"bytes={len(data)}-"]  # 416, no body needed


def test_a_bad_part_of_full_length_starts_over(server, tmp_path):
    data = blob(13)
    w = url_weight(server.serve("/w.pth", data), data)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/model.pth.part").write_bytes(bytes(len(data)))
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert [s.range for s in server.log()] == [f"bytes={len(data)}-", None]


def test_giving_up_names_url_attempts_and_last_error(server, tmp_path):
    data = blob(14)
    w = url_weight(server.serve("/w.pth", data, mode="503_always"), data)
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path, weights.HttpPolicy(attempts=3, backoff=0.01))
    err = caught.value
    assert w.url in err.message and "3 attempts" in err.message and "HTTP 503" in err.message
    assert weights.MIRROR_VAR in err.tip and "HF_ENDPOINT" in err.tip
    assert len(server.log()) == 3


def test_a_refused_connection_is_retried_then_reported(tmp_path):
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as closed:  # a port nobody listens on
        port = closed.server_address[1]
    data = blob(15, 1000)
    w = url_weight(f"http://127.0.0.1:{port}/w.pth", data)
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path, weights.HttpPolicy(attempts=2, backoff=0.01))
    assert "2 attempts" in caught.value.message and "ConnectionError" in caught.value.message


# --- plan, disk, mirror --------------------------------------------------------------------


def test_plan_shows_what_is_there_and_what_is_left(server, tmp_path):
    a, b, c = blob(16), blob(17), blob(18)
    ws = [url_weight(server.serve("/a", a), a, "w/a.bin"),
          url_weight(server.serve("/b", b), b, "w/b.bin"),
          url_weight(server.serve("/c", c), c, "w/c.bin")]
    fetch(ws[:1], tmp_path)
    (tmp_path / "w/b.bin.part").write_bytes(b[:100_000])
    count = len(server.log())
    the_plan = weights.plan(ws, tmp_path)
    assert [i.action for i in the_plan.items] == ["ok", "resume", "download"]
    assert the_plan.to_download == (len(b) - 100_000) + len(c)
    assert len(the_plan.to_fetch) == 2 and the_plan.unknown_sizes == 0
    text = str(the_plan)
    assert "w/a.bin" in text and "200.0 kB left of 300.0 kB" in text and ws[2].url in text
    assert text.splitlines()[-1].startswith("3 weights under")
    assert len(server.log()) == count  # planning never touches the network


def test_disk_check_refuses_before_the_first_byte(server, tmp_path, monkeypatch):
    data = blob(19)
    archive = Weight("downloads/pack.zip", 10**9, sha(data), url=server.serve("/p.zip", data),
                     unpack="models/pack")
    free = {"bytes": 10**9 + 2 * 10**9 + weights.DISK_MARGIN}  # exactly the need: not enough
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(4 * 10**12, 0, free["bytes"]))
    with pytest.raises(UserError) as caught:
        fetch([archive], tmp_path / "not" / "yet")
    message = caught.value.message
    assert "1.0 GB to download + 2.0 GB to unpack" in message and "free" in message
    assert str(tmp_path) in message and "free at least" in caught.value.tip
    assert server.log() == [] and not (tmp_path / "not").exists()
    free["bytes"] += 1
    weights.check_disk(weights.plan([archive], tmp_path), tmp_path)  # one byte more: fine


def test_rewrite_url_with_and_without_a_mirror(monkeypatch):
    url = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/x.pth"
    assert weights.rewrite_url(url) == url
    monkeypatch.setenv(weights.MIRROR_VAR, "https://ghproxy.example/https://github.com/")
    assert weights.rewrite_url(url) == "https://ghproxy.example/https://github.com/" + url[19:]
    monkeypatch.setenv(weights.MIRROR_VAR, "https://mirror.example/gh")  # "/" added
    assert weights.rewrite_url(url) == "https://mirror.example/gh/OpenTalker/SadTalker/" \
        "releases/download/v0.0.2-rc/x.pth"
    assert weights.rewrite_url("https://example.org/x.pth") == "https://example.org/x.pth"
    assert weights.rewrite_url(url, {}) == url  # an explicit environment wins


def test_github_weights_come_from_the_mirror(server, tmp_path, monkeypatch):
    data = blob(20)
    server.serve("/gh/owner/repo/releases/download/v1/w.pth", data)
    monkeypatch.setenv(weights.MIRROR_VAR, server.base + "/gh/")
    w = url_weight("https://github.com/owner/repo/releases/download/v1/w.pth", data)
    fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.pth").read_bytes() == data
    assert [s.path for s in server.log()] == ["/gh/owner/repo/releases/download/v1/w.pth"]
    record = json.loads((tmp_path / "checkpoints/model.pth.sha256").read_text())
    assert record["source"] == w.url  # the mirror serves the same file: recorded as the original


# --- archives ----------------------------------------------------------------------------------

FILES = {"det.onnx": blob(21, 5000), "sub/rec.onnx": blob(22, 7000)}


def make_zip(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return out.getvalue()


def make_tar(files: dict[str, bytes], compression: str = "",
             extra: list[tarfile.TarInfo] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("suffix", ["zip", "tar", "tar.gz", "tgz", "tar.xz", "tar.bz2"])
def test_archives_unpack_once(server, tmp_path, suffix):
    compression = {"tar.gz": "gz", "tgz": "gz", "tar.xz": "xz", "tar.bz2": "bz2"}.get(suffix, "")
    data = make_zip(FILES) if suffix == "zip" else make_tar(FILES, compression)
    w = url_weight(server.serve(f"/pack.{suffix}", data), data, f"downloads/pack.{suffix}",
                   unpack="models/pack")
    assert weights.plan([w], tmp_path).items[0].action == "download+unpack"
    final = fetch([w], tmp_path)
    target = tmp_path / "models/pack"
    assert {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*")
            if p.is_file() and p.name != folders.UNPACKED_MARKER} == FILES
    assert (target / folders.UNPACKED_MARKER).read_text().strip() == sha(data)
    assert final.done and (tmp_path / f"downloads/pack.{suffix}").is_file()  # archive kept
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["pack"]  # no temp left
    marker_time = (target / folders.UNPACKED_MARKER).stat().st_mtime_ns
    fetch([w], tmp_path)
    assert len(server.log()) == 1  # neither downloaded nor unpacked again
    assert (target / folders.UNPACKED_MARKER).stat().st_mtime_ns == marker_time


def test_what_a_killed_unpack_left_is_cleared_by_the_next(server, tmp_path):
    """kill -9 mid-unpack leaves its temporary folder (and mid-swap, the old folder): the next
    unpack removes them, and nothing of another folder's name."""
    data = make_tar(FILES, "gz")
    w = url_weight(server.serve("/pack.tgz", data), data, "downloads/pack.tgz",
                   unpack="models/pack")
    models = tmp_path / "models"
    others = [".pack.x.ab12cd34.unpacking", ".packs.ab12cd34.unpacking", ".pack.notapid.old"]
    for stale in [".pack.k1ll3d_x.unpacking", ".pack.4242.old", *others]:  # others: not ours
        (models / stale / "sub").mkdir(parents=True)
        (models / stale / "sub" / "half.bin").write_bytes(b"half")
    assert fetch([w], tmp_path).done
    assert sorted(p.name for p in models.iterdir()) == sorted([*others, "pack"])
    # Killed while the folder it replaced was being deleted: cleared even with nothing to do.
    (models / ".pack.4243.old").mkdir()
    assert fetch([w], tmp_path).done and not (models / ".pack.4243.old").exists()


def test_an_unpacked_folder_stands_without_its_archive(server, tmp_path):
    data = make_zip(FILES)
    w = url_weight(server.serve("/pack.zip", data), data, "downloads/pack.zip",
                   unpack="models/pack")
    fetch([w], tmp_path)
    (tmp_path / "downloads/pack.zip").unlink()  # to save space
    assert weights.plan([w], tmp_path).done
    fetch([w], tmp_path)
    assert len(server.log()) == 1


def test_a_folder_that_is_not_ours_is_not_overwritten(server, tmp_path):
    data = make_zip(FILES)
    w = url_weight(server.serve("/pack.zip", data), data, "downloads/pack.zip",
                   unpack="models/pack")
    (tmp_path / "models/pack").mkdir(parents=True)
    (tmp_path / "models/pack/mine.txt").write_text("keep me")
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert "already exists" in caught.value.message and "move" in caught.value.tip
    assert sorted(p.name for p in (tmp_path / "models/pack").iterdir()) == ["mine.txt"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["pack"]


def evil_archives(outside: Path) -> dict[str, tuple[str, bytes]]:
    """name → (suffix, archive bytes), each with one member that would land outside."""
    ok = {"fine.txt": b"fine"}
    return {
        "zip-dotdot": ("zip", make_zip({**ok, "../evil": b"x"})),
        "zip-absolute": ("zip", make_zip({**ok, str(outside / "abs_evil"): b"x"})),
        "zip-symlink": ("zip", make_zip(ok, links={"etc": "/etc"})),
        "tar-dotdot": ("tar", make_tar({**ok, "sub/../../evil": b"x"})),
        "tar-absolute": ("tar.gz", make_tar({**ok, str(outside / "abs_evil"): b"x"}, "gz")),
        "tar-symlink": ("tar", make_tar(ok, extra=[link("etc", "/etc")])),
        "tar-symlink-up": ("tar", make_tar(ok, extra=[link("sub/up", "../../..")])),
        "tar-hardlink": ("tar", make_tar(ok, extra=[link("h", "../evil", tarfile.LNKTYPE)])),
        "tar-device": ("tar", make_tar(ok, extra=[link("null", "", tarfile.CHRTYPE)])),
    }


@pytest.mark.parametrize("case", list(evil_archives(Path("/x"))))
def test_an_archive_reaching_outside_is_refused(server, tmp_path, case):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    suffix, data = evil_archives(outside)[case]
    w = url_weight(server.serve(f"/evil.{suffix}", data), data, f"downloads/evil.{suffix}",
                   unpack="models/evil")
    with pytest.raises(UserError) as caught:
        fetch([w], root)
    assert caught.value.message.startswith(f"refusing to unpack {root / 'downloads'}")
    assert "nothing was extracted" in caught.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (root / "models").iterdir()) == []  # no target, no temp


# --- Hugging Face Hub (huggingface_hub's own code, against the stand-in as HF_ENDPOINT) ---------


@pytest.fixture
def hub(server, monkeypatch) -> Standin:
    """The stand-in as HF_ENDPOINT, set after huggingface_hub was imported.

    huggingface_hub reads its settings once, at import; the endpoint it read then is not the
    stand-in, so only the endpoint weights.py passes at call time can reach it. Two settings are
    turned off as their variables would (read at import too): telemetry, whose user-agent lookup
    (GET {import-time endpoint}/api/agent-harnesses) would leave the machine, and sending a
    token the developer may have saved.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    assert constants.ENDPOINT != server.base
    return server


@pytest.mark.parametrize("pinned", ["sha256", "revision"])
def test_hub_download_through_hf_endpoint(hub, tmp_path, pinned):
    data = blob(30)
    revision = COMMIT if pinned == "revision" else "main"
    path = f"/thb-test/tiny/resolve/{revision}/sub/model.bin"
    # Pinned by revision alone, the file is checked against the Hub's listing of its folder.
    listing = hub.serve_hub_folder("thb-test/tiny", revision, "sub", {"sub/model.bin": data},
                                   lfs={"sub/model.bin"})
    w = Weight("checkpoints/model.bin", len(data), sha(data) if pinned == "sha256" else None,
               hf_repo="thb-test/tiny", hf_file="sub/model.bin",
               hf_revision=COMMIT if pinned == "revision" else None)
    final = fetch([w], tmp_path)
    assert (tmp_path / "checkpoints/model.bin").read_bytes() == data
    asked = [("GET", listing)] if pinned == "revision" else []
    assert [(s.method, s.path) for s in hub.log()] == asked + [("HEAD", path), ("GET", path)]
    record = json.loads((tmp_path / "checkpoints/model.bin.sha256").read_text())
    assert record["sha256"] == sha(data)
    assert record["source"] == f"hf://thb-test/tiny@{revision}/sub/model.bin"
    assert final.done and leftovers(tmp_path) == [
        "checkpoints", "checkpoints/model.bin", "checkpoints/model.bin.sha256"]  # no staging
    fetch([w], tmp_path)
    assert len(hub.log()) == len(asked) + 2  # verified: not asked again


def test_hub_bytes_are_checked_against_the_spec(hub, tmp_path):
    data = blob(31)
    hub.serve("/thb-test/tiny/resolve/main/model.bin", blob(32))
    w = Weight("checkpoints/model.bin", len(data), sha(data), hf_repo="thb-test/tiny",
               hf_file="model.bin")
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert caught.value.message.startswith("sha256 mismatch for checkpoints/model.bin")
    assert leftovers(tmp_path) == ["checkpoints"]


@pytest.mark.parametrize("lfs", [True, False], ids=["lfs file", "small file"])
def test_hub_file_pinned_by_revision_is_checked_against_the_listing(hub, tmp_path, lfs):
    data, other = blob(33, 5000), blob(34, 5000)
    hub.serve_hub_folder("thb-test/tiny", COMMIT, "", {"model.bin": data},
                         listed={"model.bin": other}, lfs={"model.bin"} if lfs else set())
    w = Weight("checkpoints/model.bin", None, None, hf_repo="thb-test/tiny", hf_file="model.bin",
               hf_revision=COMMIT)
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert caught.value.message.startswith(f"model.bin from hf://thb-test/tiny@{COMMIT}/model.bin")
    assert (sha(other) if lfs else git_blob_id(other)) in caught.value.message
    assert leftovers(tmp_path) == ["checkpoints"]
    hub.serve_hub_folder("thb-test/tiny", COMMIT, "", {"model.bin": data},
                         lfs={"model.bin"} if lfs else set())
    assert fetch([w], tmp_path).done
    assert (tmp_path / "checkpoints/model.bin").read_bytes() == data


def test_hub_file_pinned_by_revision_but_not_listed_is_a_clear_error(hub, tmp_path):
    hub.serve_hub_folder("thb-test/tiny", COMMIT, "", {"other.bin": b"x"})
    w = Weight("checkpoints/model.bin", None, None, hf_repo="thb-test/tiny", hf_file="model.bin",
               hf_revision=COMMIT)
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert "does not list it at that revision" in caught.value.message
    assert "hf_file" in caught.value.tip
    assert not [s for s in hub.log() if "/resolve/" in s.path]


def test_hub_missing_file_is_a_clear_error(hub, tmp_path):
    w = Weight("checkpoints/model.bin", 10, "0" * 64, hf_repo="thb-test/tiny",
               hf_file="nope.bin")
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert "hf://thb-test/tiny@main/nope.bin" in caught.value.message
    assert "not found" in caught.value.message and "hf_file" in caught.value.tip
    assert leftovers(tmp_path) == ["checkpoints"]


@pytest.mark.parametrize("mode", ["500_once", "500_get"])
def test_a_hub_5xx_is_asked_again_then_reported(hub, tmp_path, monkeypatch, mode):
    monkeypatch.setattr(weights_hub, "HUB_BACKOFF", 0.01)
    data = blob(36)
    hub.serve_hub_folder("thb-test/tiny", COMMIT, "", {"model.bin": data}, lfs={"model.bin"})
    path = f"/thb-test/tiny/resolve/{COMMIT}/model.bin"
    hub.serve(path, data, mode=mode)
    w = Weight("checkpoints/model.bin", len(data), sha(data), hf_repo="thb-test/tiny",
               hf_file="model.bin", hf_revision=COMMIT)
    gets = lambda: [s for s in hub.log(path) if s.method == "GET"]  # noqa: E731
    if mode == "500_once":
        assert fetch([w], tmp_path).done
        assert (tmp_path / "checkpoints/model.bin").read_bytes() == data and len(gets()) == 2
        return
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert "could not download" in caught.value.message and "500" in caught.value.message
    assert len(gets()) == weights_hub.HUB_ATTEMPTS
    assert not (tmp_path / "checkpoints/model.bin").exists()


def interrupt_hub_retries(monkeypatch) -> None:
    """Stop the run where huggingface_hub pauses before retrying a cut download within its call,
    as a Ctrl-C or a killed run would: what the next attempt does is then up to weights.py."""
    from huggingface_hub import constants, file_download

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=interrupted))
    # It writes whole chunks only (10 MB); bytes of a chunk cut short are dropped.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1000)


def test_an_interrupted_hub_download_resumes_on_the_next_attempt(hub, tmp_path, monkeypatch):
    data, cut = blob(35), 123_000  # a whole number of chunks
    hub.serve_hub_folder("thb-test/tiny", COMMIT, "", {"model.bin": data}, lfs={"model.bin"})
    path = f"/thb-test/tiny/resolve/{COMMIT}/model.bin"
    hub.serve(path, data, mode="cut_once", cut=cut)
    w = Weight("checkpoints/model.bin", len(data), None, hf_repo="thb-test/tiny",
               hf_file="model.bin", hf_revision=COMMIT)
    with monkeypatch.context() as patch:
        interrupt_hub_retries(patch)
        with pytest.raises(KeyboardInterrupt):
            fetch([w], tmp_path)
    assert not (tmp_path / "checkpoints/model.bin").exists()
    assert fetch([w], tmp_path).done
    assert (tmp_path / "checkpoints/model.bin").read_bytes() == data
    assert [s.range for s in hub.log(path) if s.method == "GET"] == [None, f"bytes={cut}-"]
    assert leftovers(tmp_path) == [
        "checkpoints", "checkpoints/model.bin", "checkpoints/model.bin.sha256"]  # no staging


def test_the_hub_bar_takes_what_the_xet_download_path_sends():
    """Xet-backed Hub files (most large ones) report progress through another path than the
    stand-in can reach (it would need hf_xet's storage protocol): drive that reporter with our
    bar class, as huggingface_hub does, and check every byte written is counted once."""
    reporting = pytest.importorskip("huggingface_hub.utils._xet_progress_reporting")
    counted: list[int] = []
    with reporting.XetDownloadProgressReporter(
            reconstruction_desc="model.bin", total=300, log_level=logging.INFO,
            tqdm_class=weights._hub_bar_class(counted.append)) as reporter:
        for written in (100, 300):
            reporter.update_progress(SimpleNamespace(
                total_bytes_completed=written, total_transfer_bytes_completed=written // 2,
                total_bytes_completion_rate=1e6, total_transfer_bytes_completion_rate=1e6,
                total_bytes=300))
    assert sum(counted) == 300


# --- a Hub folder: listed at its revision, each file checked against the listing ----------------

FOLDER = "model_ckpts/wav2vec2"


def folder_weight(size: int | None = None) -> Weight:
    return Weight(dest="ckpts/wav2vec2", size=size, sha256=None, hf_repo="thb-test/tiny",
                  hf_revision=COMMIT, hf_folder=FOLDER)


def folder_files() -> dict[str, bytes]:
    return {f"{FOLDER}/config.json": b'{"hidden_size": 768}\n',
            f"{FOLDER}/pytorch_model.bin": blob(40),
            f"{FOLDER}/tokenizer/vocab.json": b'{"a": 1}\n'}


def test_hub_folder_lands_whole_with_a_manifest(hub, tmp_path):
    files = folder_files()
    listing = hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, files,
                                   lfs={f"{FOLDER}/pytorch_model.bin"})
    w = folder_weight()
    assert weights.plan([w], tmp_path).items[0].action == "download"
    final = fetch([w], tmp_path)
    dest = tmp_path / "ckpts/wav2vec2"
    for path, data in files.items():
        assert (dest / path.removeprefix(FOLDER + "/")).read_bytes() == data
    assert leftovers(tmp_path) == [
        "ckpts", "ckpts/wav2vec2", "ckpts/wav2vec2/.thb-folder.json", "ckpts/wav2vec2/config.json",
        "ckpts/wav2vec2/pytorch_model.bin", "ckpts/wav2vec2/tokenizer",
        "ckpts/wav2vec2/tokenizer/vocab.json"]  # no staging, no huggingface_hub metadata
    manifest = json.loads((dest / folders.FOLDER_MANIFEST).read_text())
    assert manifest["source"] == f"hf://thb-test/tiny@{COMMIT}/{FOLDER}/"
    assert {rel: e["sha256"] for rel, e in manifest["files"].items()} == {
        p.removeprefix(FOLDER + "/"): sha(d) for p, d in files.items()}
    item = final.items[0]
    assert final.done and item.present and item.sha256 == hashlib.sha256(json.dumps(
        {p.removeprefix(FOLDER + "/"): sha(d) for p, d in files.items()},
        sort_keys=True).encode()).hexdigest()
    assert hub.log(listing)[0].method == "GET"
    asked = len(hub.log())
    assert fetch([w], tmp_path).done and len(hub.log()) == asked  # the manifest vouches for it


@pytest.mark.parametrize("which", ["lfs file", "small file"])
def test_hub_folder_file_that_does_not_match_the_listing_is_refused(hub, tmp_path, which):
    files = folder_files()
    bad = f"{FOLDER}/pytorch_model.bin" if which == "lfs file" else f"{FOLDER}/config.json"
    listed = dict(files)
    listed[bad] = files[bad][:-1] + bytes([files[bad][-1] ^ 1])  # same size, one bit off
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, files, listed=listed,
                         lfs={f"{FOLDER}/pytorch_model.bin"})
    with pytest.raises(UserError) as caught:
        fetch([folder_weight()], tmp_path)
    assert caught.value.message.startswith(f"{bad} from hf://thb-test/tiny@{COMMIT}/{FOLDER}/")
    assert "does not match the Hub's own listing" in caught.value.message
    assert leftovers(tmp_path) == ["ckpts"]  # nothing in place, staging gone


def test_hub_folder_edited_after_fetch_is_fetched_again(hub, tmp_path):
    files = folder_files()
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, files)
    w = folder_weight()
    fetch([w], tmp_path)
    config = tmp_path / "ckpts/wav2vec2/config.json"
    config.write_bytes(b'{"hidden_size": 769}\n')  # same size, new mtime, other bytes
    assert weights.plan([w], tmp_path).items[0].action == "download"
    assert fetch([w], tmp_path).done  # the folder was ours: replaced whole
    assert config.read_bytes() == files[f"{FOLDER}/config.json"]
    assert not list((tmp_path / "ckpts").glob(".*.old"))


def test_hub_folder_missing_is_a_clear_error(hub, tmp_path):
    with pytest.raises(UserError) as caught:
        fetch([folder_weight()], tmp_path)
    assert f"hf://thb-test/tiny@{COMMIT}/{FOLDER}/" in caught.value.message
    assert "not found" in caught.value.message and "hf_folder" in caught.value.tip
    assert leftovers(tmp_path) == ["ckpts"]


def test_hub_folder_listing_escaping_the_folder_is_refused(hub, tmp_path):
    escape = {"type": "file", "path": f"{FOLDER}/../../evil.py", "size": 3, "oid": "0" * 40}
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, folder_files(), extra=[escape])
    with pytest.raises(UserError) as caught:
        fetch([folder_weight()], tmp_path)
    assert "not inside the folder" in caught.value.message
    assert not [s for s in hub.log() if "/resolve/" in s.path]  # refused before any download
    assert leftovers(tmp_path) == ["ckpts"]


def test_hub_folder_size_in_the_spec_is_checked_against_the_listing(hub, tmp_path):
    files = folder_files()
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, files)
    total = sum(len(d) for d in files.values())
    with pytest.raises(UserError) as caught:
        fetch([folder_weight(size=total + 1)], tmp_path)
    assert f"the Hub lists {total} in 3 files" in caught.value.message
    assert fetch([folder_weight(size=total)], tmp_path).done


@pytest.mark.parametrize("what", ["folder", "file pinned by revision"])
def test_hub_sizes_from_the_listing_meet_the_disk_check(hub, tmp_path, monkeypatch, what):
    files = folder_files()
    total = sum(len(d) for d in files.values())
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, files)
    if what == "folder":
        w, need = folder_weight(), total
    else:
        w = Weight("ckpts/model.bin", None, None, hf_repo="thb-test/tiny",
                   hf_file=f"{FOLDER}/pytorch_model.bin", hf_revision=COMMIT)
        need = len(files[f"{FOLDER}/pytorch_model.bin"])
    assert weights.plan([w], tmp_path).unknown_sizes == 1  # nothing to check before the listing
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: Usage(4 * 10**12, 0, need + weights.DISK_MARGIN))
    with pytest.raises(UserError) as caught:
        fetch([w], tmp_path)
    assert "not enough disk space" in caught.value.message
    assert f"{decimal(need)} to download" in caught.value.message
    assert not [s for s in hub.log() if "/resolve/" in s.path]  # refused before the first byte


def test_hub_folder_never_replaces_a_folder_that_is_not_ours(hub, tmp_path):
    hub.serve_hub_folder("thb-test/tiny", COMMIT, FOLDER, folder_files())
    mine = tmp_path / "ckpts/wav2vec2/notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(UserError) as caught:
        fetch([folder_weight()], tmp_path)
    assert "already exists and was not fetched from hf://" in caught.value.message
    assert "move" in caught.value.tip
    assert mine.read_text() == "mine" and leftovers(tmp_path) == [
        "ckpts", "ckpts/wav2vec2", "ckpts/wav2vec2/notes.txt"]
    assert not [s for s in hub.log() if "/resolve/" in s.path]


def test_manual_weight_stops_setup_until_placed_then_is_recorded(server, tmp_path):
    manual = Weight(dest="checkpoints/model.pth.tar", size=None, sha256=None,
                    manual="Google Drive file abc, e.g. `gdown abc`")
    with pytest.raises(UserError) as caught:
        fetch([manual], tmp_path)
    assert str(tmp_path / "checkpoints/model.pth.tar") in caught.value.message
    assert "gdown abc" in caught.value.message and "run the same setup" in caught.value.tip
    assert weights.plan([manual], tmp_path).items[0].action == "by hand"
    placed = tmp_path / "checkpoints/model.pth.tar"
    placed.parent.mkdir(parents=True)
    placed.write_text("<!DOCTYPE html><html>Google Drive can't scan this file for viruses")
    assert weights.plan([manual], tmp_path).items[0].action == "by hand"  # a page, not a weight
    placed.write_bytes(blob(21, 5000))
    assert weights.plan([manual], tmp_path, write=False).done  # a dry run sees it...
    assert not (tmp_path / "checkpoints/model.pth.tar.sha256").exists()  # ...and writes nothing
    final = fetch([manual], tmp_path)
    assert final.done and server.log() == []
    record = json.loads((tmp_path / "checkpoints/model.pth.tar.sha256").read_text())
    assert record["sha256"] == sha(blob(21, 5000)) and record["source"].startswith("by hand")
