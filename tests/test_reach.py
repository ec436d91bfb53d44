"""The weight-host pre-check, failing fast on names that do not resolve, and library logs.

Every probe goes to 127.0.0.1: a port that refuses (bound, then closed), the loopback stand-in,
or a tiny server answering one status. Names under the reserved ``.invalid`` TLD stand for hosts
a machine cannot resolve; ``socket.getaddrinfo`` is wrapped so they fail as a resolver would,
without asking one, and so every lookup is counted: "not retried" is asserted by counting
lookups and pauses, never by timing.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
import requests
from rich.console import Console

from thbench import envs, library_logs, reach, specs, weights
from thbench.errors import UserError
from thbench.specs import Kind, Weight

from .weight_server import COMMIT, Standin, hermetic_env, serving, sha

FAST = weights.HttpPolicy(attempts=4, connect_timeout=2.0, read_timeout=2.0, backoff=0.01,
                          backoff_max=0.05)


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    hermetic_env(monkeypatch)


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every host name looked up; ``*.invalid`` fails at once, as NXDOMAIN would."""
    real, asked = socket.getaddrinfo, []

    def getaddrinfo(host, *args, **kwargs):
        asked.append(str(host))
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """Every time.sleep (ours and huggingface_hub's backoff), recorded and skipped."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@pytest.fixture
def server() -> Iterator[Standin]:
    with serving() as standin:
        yield standin


@pytest.fixture
def hub_settings(monkeypatch):
    """huggingface_hub settings read at import, set as their variables would (see test_weights)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def refused_port() -> int:
    """A loopback port nobody listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def url_weight(url: str, dest: str = "checkpoints/model.pth", data: bytes = b"w" * 100) -> Weight:
    return Weight(dest=dest, size=len(data), sha256=sha(data), url=url)


def hub_weight(dest: str = "checkpoints/hub.bin") -> Weight:
    return Weight(dest, None, None, hf_repo="thb-test/tiny", hf_file="model.bin",
                  hf_revision=COMMIT)


def check(ws: list[Weight], root: Path) -> None:
    reach.require_reachable(weights.plan(ws, root).to_fetch, who="model-x", timeout=2.0)


class Status(BaseHTTPRequestHandler):
    """Answers every request with one status, as a host refusing a HEAD might."""

    status = 403

    def do_HEAD(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:
        pass


# --- the pre-check -----------------------------------------------------------------------------


def test_a_refused_port_is_named_with_refused(tmp_path):
    port = refused_port()
    with pytest.raises(UserError) as caught:
        check([url_weight(f"http://127.0.0.1:{port}/w.pth")], tmp_path)
    err = caught.value
    assert err.message == ("cannot reach the weight hosts of model-x before installing anything: "
                           f"127.0.0.1:{port} (connection refused)")
    assert "nothing was installed" in err.tip and "HTTPS_PROXY" in err.tip


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path, lookups):
    with pytest.raises(UserError) as caught:
        check([url_weight("https://weights.invalid/w.pth")], tmp_path)
    assert "weights.invalid (name does not resolve)" in caught.value.message
    assert lookups == ["weights.invalid"]  # one lookup, and no HEAD (it would look up again)


def test_a_reachable_host_passes_with_one_probe_for_all_its_weights(server, tmp_path,
                                                                  monkeypatch, hub_settings):
    monkeypatch.setenv("HF_ENDPOINT", server.base)  # the Hub on the same host: still one probe
    check([url_weight(server.base + "/a.pth", "a.pth"), url_weight(server.base + "/b.pth", "b.pth"),
           hub_weight()], tmp_path)
    assert [(s.method, s.path) for s in server.log()] == [("HEAD", "/")]  # the root, not a weight


@pytest.mark.parametrize("status", [403, 404, 405, 500])
def test_any_http_answer_counts_as_answering(tmp_path, status):
    handler = type("Answer", (Status,), {"status": status})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        try:
            check([url_weight(f"http://127.0.0.1:{httpd.server_address[1]}/w.pth")], tmp_path)
        finally:
            httpd.shutdown()


def test_every_failing_host_is_named_in_one_error(tmp_path, lookups, monkeypatch):
    url_port, hub_port = refused_port(), refused_port()
    monkeypatch.setenv(weights.MIRROR_VAR, "http://mirror.invalid/")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub_port}")
    with pytest.raises(UserError) as caught:
        check([url_weight("https://github.com/o/r/releases/download/v1/a.pth", "a.pth"),
               url_weight(f"http://127.0.0.1:{url_port}/b.pth", "b.pth"), hub_weight()],
              tmp_path)
    message, tip = caught.value.message, caught.value.tip
    assert message.endswith(f": mirror.invalid (name does not resolve), 127.0.0.1:{url_port} "
                            f"(connection refused), 127.0.0.1:{hub_port} (connection refused)")
    assert "github.com" not in lookups  # the mirror is asked, not GitHub
    assert f"{weights.MIRROR_VAR} to an http(s) mirror prefix (now http://mirror.invalid/)" in tip
    assert "HF_ENDPOINT to a Hub mirror" in tip and "nothing was installed" in tip


def test_present_and_manual_weights_ask_no_host(tmp_path, lookups):
    data = b"already here"
    (tmp_path / "here.pth").write_bytes(data)
    present = url_weight("https://present.invalid/here.pth", "here.pth", data)
    manual = Weight("by-hand.pth", None, None, manual="https://drive.invalid/some-file")
    check([present, manual], tmp_path)
    assert not [h for h in lookups if h.endswith(".invalid")]


def test_a_source_that_is_not_http_is_named_before_the_installs(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.MIRROR_VAR, (tmp_path / "mirror").as_uri() + "/")
    with pytest.raises(UserError) as caught:
        check([url_weight("https://github.com/o/r/releases/download/v1/a.pth")], tmp_path)
    assert f"{tmp_path.as_uri()}/mirror/o/r/releases/download/v1/a.pth (not an http(s) URL)" \
        in caught.value.message
    assert weights.MIRROR_VAR in caught.value.tip


def test_through_a_proxy_the_name_is_the_proxys_to_resolve(tmp_path, lookups, monkeypatch):
    port = refused_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(UserError) as caught:
        check([url_weight("http://weights.invalid/w.pth")], tmp_path)
    assert "weights.invalid (the proxy failed:" in caught.value.message
    assert "weights.invalid" not in lookups  # not looked up here: the proxy would


# --- the real download: a name that does not resolve is not retried ----------------------------


def test_a_url_whose_name_does_not_resolve_is_not_retried(tmp_path, lookups, pauses):
    with pytest.raises(UserError) as caught:
        weights.fetch_all([url_weight("http://weights.invalid/w.pth")], tmp_path,
                          console=Console(file=io.StringIO()), policy=FAST)
    assert caught.value.message == ("cannot download http://weights.invalid/w.pth: its host name "
                                    "does not resolve")
    assert weights.MIRROR_VAR in caught.value.tip and "HF_ENDPOINT" in caught.value.tip
    assert lookups == ["weights.invalid"] and pauses == []  # one attempt, no backoff


@pytest.mark.parametrize("weight", [hub_weight(), Weight(
    "encoder", None, None, hf_repo="thb-test/tiny", hf_folder="enc", hf_revision=COMMIT)],
    ids=["file", "folder"])
def test_a_hub_whose_name_does_not_resolve_is_not_asked(tmp_path, lookups, pauses, monkeypatch,
                                                        hub_settings, weight):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    with pytest.raises(UserError) as caught:
        weights.fetch_all([weight], tmp_path, console=Console(file=io.StringIO()), policy=FAST)
    assert "the Hub's host name does not resolve" in caught.value.message
    assert "HF_ENDPOINT" in caught.value.tip
    assert lookups == ["hub.invalid"] and pauses == []  # huggingface_hub never got to retry


# --- library logs ------------------------------------------------------------------------------


def test_library_logs_go_to_the_file_only_and_are_restored(tmp_path, server, capfd, caplog):
    import huggingface_hub.utils.logging  # noqa: F401  (its stderr handler is on its logger)

    hub_logger = logging.getLogger("huggingface_hub")
    before = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                     logging.getLogger(name).propagate) for name in library_logs.LIBRARIES}
    log = tmp_path / "setup.log"
    caplog.set_level(logging.DEBUG)
    with library_logs.to_file(log):
        requests.head(server.base + "/").close()  # urllib3 says so at DEBUG
        logging.getLogger("huggingface_hub.file_download").warning("Retrying in 8s [Retry 4/5].")
        logging.getLogger("httpcore2.connection").debug("connect_tcp.started")
    text = log.read_text()
    assert "urllib3.connectionpool DEBUG: Starting new HTTP connection" in text
    assert "huggingface_hub.file_download WARNING: Retrying in 8s" in text
    assert "httpcore2.connection DEBUG: connect_tcp.started" in text
    err = capfd.readouterr().err
    assert "Retrying" not in err and "Starting new" not in err and "connect_tcp" not in err
    assert not [r for r in caplog.records if r.name.split(".")[0] in library_logs.LIBRARIES]
    after = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in library_logs.LIBRARIES}
    assert after == before
    assert any(type(h) is logging.StreamHandler for h in hub_logger.handlers)


# --- in a setup: the pre-check stops it before anything is installed ----------------------------

SPEC = """\
schema = 1
description = "a model whose weight host refuses"
python = "3.11"
gpu = "none"
requirements = "requirements.lock"

[[weights]]
url = "{url}"
dest = "checkpoints/model.pth"
size = 100
sha256 = "{sha}"

[inference]
argv = ["{{python}}", "-c", "pass"]
output = "result.mp4"
timeout = 60
"""


def test_a_setup_whose_weight_host_refuses_stops_before_any_install(tmp_path, monkeypatch,
                                                                    capfd):
    folder = tmp_path / "specs" / "solutions" / "unreachable"
    folder.mkdir(parents=True)
    (folder / "requirements.lock").write_text("")
    port = refused_port()
    (folder / "spec.toml").write_text(SPEC.format(url=f"http://127.0.0.1:{port}/model.pth",
                                                  sha="0" * 64))
    monkeypatch.setenv("THB_ENVS_DIR", str(tmp_path / "envs"))
    spec, problems = specs.parse(folder / "spec.toml", Kind.MODEL)
    assert problems == []
    with pytest.raises(UserError) as caught:
        envs.setup(spec)
    assert f"127.0.0.1:{port} (connection refused)" in caught.value.message
    assert "before installing anything" in caught.value.message
    env = envs.Env.of(spec)
    assert not env.venv.exists() and not env.stamp_path.exists()
    log = env.log.read_text()
    assert "uv pip install" not in log and "uv venv" not in log and "python find" not in log
    assert "urllib3" in log  # the probe's own library log, in the file
    assert "urllib3" not in capfd.readouterr().err
