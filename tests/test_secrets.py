"""Secrets (HF_TOKEN, credentials in mirror, index and proxy URLs) never reach a file or a message.

The unit tests feed each writer a secret directly; the slow test sets fake secrets, points the
mirrors at a loopback stand-in, runs a real setup (git through the mirror, a URL weight, a Hub
file), a run, a failing download and `invoke doctor --json`, and searches every file written
and everything printed for each secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from thbench import doctor, library_logs, paths, proc, redaction
from thbench.errors import UserError, print_error
from thbench.files import atomic_write_text

from .standin_model import git
from .weight_server import COMMIT, serving

TOKEN = "hf_SECRETtoken123"
PASSWORD = "pa55word"
ENV = {
    "HF_TOKEN": TOKEN,
    "GITHUB_TOKEN": "ghp_SECRETgithub456",
    "THB_GITHUB_MIRROR": f"https://user:{PASSWORD}@mirror.example/https://github.com/",
    "HF_ENDPOINT": "https://hubuser:hubPa55word@hub.example",
    "UV_INDEX_URL": "https://u:uvPa55word@pypi.example/simple",
    "PIP_INDEX_URL": "https://u:pip%40Pa55word@pypi.example/simple",  # '@' percent-encoded
    "HTTPS_PROXY": "http://u:proxyPa55@proxy:3128",
}
SECRETS = (TOKEN, "ghp_SECRETgithub456", PASSWORD, "hubPa55word", "uvPa55word",
           "pip%40Pa55word", "pip@Pa55word", "proxyPa55")


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
def secret_env(monkeypatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_secret_values_come_from_token_variables_and_url_passwords():
    found = redaction.secret_values(ENV)
    for secret in SECRETS:
        assert secret in found
    assert "user" not in found and "mirror.example" not in found  # names and hosts stay
    assert redaction.secret_values({"PATH": "/usr/bin", "HOME": "/root"}) == []


def test_redact_masks_every_form_and_keeps_the_rest():
    text = (f"GET https://user:{PASSWORD}@mirror.example/x?t=1 Authorization: Bearer {TOKEN}\n"
            f'{{"url": "https://u:pip@Pa55word@pypi.example/simple", "p": "{PASSWORD}"}}\n'
            "token as user: https://ghp_SECRETgithub456@github.com/a/b.git")
    clean = redaction.redact(text, ENV)
    assert leaks(clean) == []
    assert "https://***@mirror.example/x?t=1" in clean
    assert "Bearer ***" in clean and "https://***@github.com/a/b.git" in clean
    # Any URL's credentials, even from no variable; but a plain path or PEP 508 line is left alone.
    assert redaction.redact("see http://a:b@h/ and file:///x@y/ and pkg @ https://h/p", {}) == \
        "see http://***@h/ and file:///x@y/ and pkg @ https://h/p"


def test_a_short_password_is_masked_only_inside_urls():
    env = {"HTTPS_PROXY": "http://u:pw@proxy:3128"}
    assert redaction.redact("http://u:pw@proxy:3128 keeps pw elsewhere", env) == \
        "http://***@proxy:3128 keeps pw elsewhere"


def test_a_password_holding_an_unencoded_at_is_masked_whole():
    env = {"HTTPS_PROXY": "http://bob:p@ssw0rd99@proxy:3128"}  # requests takes p@ssw0rd99
    for text in ("via http://bob:p@ssw0rd99@proxy:3128/x", "password p@ssw0rd99 in a log"):
        clean = redaction.redact(text, env)
        assert "ssw0rd99" not in clean, clean
    assert redaction.redact("via http://bob:p@ssw0rd99@proxy:3128/x", env) == "via http://***@proxy:3128/x"


def test_a_plain_user_name_is_masked_in_urls_only_a_token_as_user_everywhere():
    env = {"HTTPS_PROXY": "http://jsmith01@proxy.corp:3128",
           "THB_GITHUB_MIRROR": "https://ghp_0123456789abcdefghijklmnopqrstuvwxyz@mirror/"}
    record = '{"interpreter": "/home/jsmith01/venv/bin/python", "via": "http://jsmith01@proxy.corp"}'
    assert redaction.redact(record, env) == \
        '{"interpreter": "/home/jsmith01/venv/bin/python", "via": "http://***@proxy.corp"}'
    assert redaction.redact("token ghp_0123456789abcdefghijklmnopqrstuvwxyz", env) == "token ***"


def test_a_failed_record_write_leaves_no_temporary(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "run.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_secrets_as_json_and_html_spell_them_are_masked():
    env = {"HF_TOKEN": 'tok"en\\with<&>'}
    record = json.dumps({"header": f"Bearer {env['HF_TOKEN']}"})
    assert "tok" not in redaction.redact(record, env)
    assert "tok" not in redaction.redact("&lt;tok&quot;en\\with&lt;&amp;&gt;", env)


def test_redact_url():
    assert redaction.redact_url(ENV["HF_ENDPOINT"] + "/api", ENV) == "https://***@hub.example/api"
    assert redaction.redact_url("https://huggingface.co/x", ENV) == "https://huggingface.co/x"
    assert redaction.without_credentials(ENV["THB_GITHUB_MIRROR"]) == \
        "https://mirror.example/https://github.com/"
    assert redaction.without_credentials("file:///srv/mirror/") == "file:///srv/mirror/"


def test_user_errors_are_masked_where_made_and_where_printed(secret_env, capsys):
    err = UserError(f"cannot download {ENV['THB_GITHUB_MIRROR']}x.bin", f"token {TOKEN} refused")
    assert leaks(err.message + err.tip + str(err)) == []
    err.message = f"set later: {TOKEN}"
    print_error(err)
    out = capsys.readouterr()
    assert leaks(out.err) == [] and "ERROR: set later: ***" in out.err


def test_proc_masks_the_command_line_the_output_and_the_failure(secret_env, tmp_path):
    log = tmp_path / "setup.log"
    log.write_text("earlier line\n")
    script = ("import os, sys; print(os.environ['HF_TOKEN']); "
              "sys.exit('fatal: cannot reach ' + os.environ['THB_GITHUB_MIRROR'])")
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run([sys.executable, "-c", script, ENV["HF_ENDPOINT"]], log=log)
    written = log.read_text()
    assert written.startswith("earlier line\n$ ") and "fatal: cannot reach" in written
    assert leaks(written) == []
    assert leaks(caught.value.message + caught.value.tip + caught.value.tail) == []
    assert "https://***@mirror.example" in caught.value.message
    # Without a log, the failure shows the command's stderr: masked too.
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run([sys.executable, "-c", script])
    assert leaks(caught.value.message + caught.value.tail) == []
    # What a caller captures is the command's output as it was: it may need it.
    got = proc.run([sys.executable, "-c", "import os; print(os.environ['HF_TOKEN'])"], capture=True)
    assert got.stdout.strip() == TOKEN


def test_git_through_a_mirror_with_credentials_logs_none(secret_env, tmp_path):
    log = tmp_path / "git.log"
    url = f"http://user:{PASSWORD}@127.0.0.1:9/example/repo.git"  # nothing listens on port 9
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run(["git", "ls-remote", url], log=log, env={"GIT_TERMINAL_PROMPT": "0"}, timeout=60)
    assert leaks(log.read_text() + caught.value.message) == []


def test_records_are_masked(secret_env, tmp_path):
    path = tmp_path / "run.json"
    atomic_write_text(path, json.dumps({"source": ENV["UV_INDEX_URL"], "auth": TOKEN}))
    assert leaks(path.read_text()) == []
    assert json.loads(path.read_text())["source"] == "https://***@pypi.example/simple"


def test_library_logs_are_masked(secret_env, tmp_path):
    log = tmp_path / "setup.log"
    with library_logs.to_file(log):
        logging.getLogger("urllib3").debug("Starting new connection: %s", ENV["HTTPS_PROXY"])
        try:
            raise ConnectionError(f"refused by {ENV['HF_ENDPOINT']} for {TOKEN}")
        except ConnectionError:
            logging.getLogger("huggingface_hub").exception("download failed")
    text = log.read_text()
    assert "Starting new connection: http://***@proxy:3128" in text and "download failed" in text
    assert leaks(text) == []


def test_doctor_shows_mirrors_without_credentials(secret_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THB_SPECS_DIR", str(tmp_path / "no-specs"))
    (tmp_path / "no-specs").mkdir()
    with serving() as server:  # every host doctor asks is the loopback stand-in
        local = server.base.removeprefix("http://")
        monkeypatch.setenv("THB_GITHUB_MIRROR", f"http://user:{PASSWORD}@{local}/gh/")
        monkeypatch.setenv("HF_ENDPOINT", f"http://hubuser:hubPa55word@{local}")
        monkeypatch.setenv("UV_INDEX_URL", f"http://u:uvPa55word@{local}/simple")
        monkeypatch.setenv("PIP_INDEX_URL", f"http://u:pip%40Pa55word@{local}/simple")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        doctor.main(as_json=True)
    out = capsys.readouterr()
    report = json.loads(out.out)
    details = " ".join(line["detail"] for line in report["lines"] if line["group"] == "network")
    assert f"http://***@{local}/gh/" in details and f"http://***@{local}/simple" in details
    assert leaks(out.out + out.err) == []


# --- the issue's own test: everything a setup, a run, a failed download and doctor leave ---------

SPEC = """\
schema = 1
description = "a model fetched through mirrors that carry credentials"
python = "3.11"
gpu = "none"
requirements = "requirements.lock"

[repo]
url = "https://github.com/example/leaky"
commit = "{commit}"

[[weights]]
url = "https://github.com/example/leaky/releases/download/v1/{gain}"
dest = "checkpoints/gain.bin"
size = {size}
sha256 = "{sha}"

[[weights]]
dest = "hub/config.json"
hf_repo = "thb-test/leaky"
hf_file = "sub/config.json"
hf_revision = "{hub_commit}"
sha256 = "{hub_sha}"
size = {hub_size}

[inference]
argv = ["{{python}}", "{{repo}}/infer.py", "--image", "{{image}}", "--audio", "{{audio}}",
        "--out", "{{work_dir}}/result.mp4"]
cwd = "{{repo}}"
output = "result.mp4"
timeout = 300
"""

# Prints what a careless upstream script might (its environment), then makes the video.
INFER = '''\
import argparse, os, subprocess, sys, wave
p = argparse.ArgumentParser()
p.add_argument("--image"); p.add_argument("--audio"); p.add_argument("--out")
a = p.parse_args()
print("token", os.environ.get("HF_TOKEN"), "mirror", os.environ.get("THB_GITHUB_MIRROR"))
print("endpoint", os.environ.get("HF_ENDPOINT"), "proxy", os.environ.get("HTTPS_PROXY"), file=sys.stderr)
with wave.open(a.audio) as w:
    frames = round(w.getnframes() / w.getframerate() * 25)
sys.exit(subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-framerate", "25", "-i", a.image,
    "-i", a.audio, "-vf", "scale=256:256,format=yuv420p", "-frames:v", str(frames),
    "-c:v", "libx264", "-c:a", "aac", a.out]).returncode)
'''


def _serve_repo(server, work: Path, prefix: str) -> str:
    """A bare repository holding infer.py, served over git's dumb HTTP protocol (plain files);
    returns its commit."""
    git("init", "-q", work)
    (work / "infer.py").write_text(INFER)
    git("add", "infer.py", cwd=work)
    git("commit", "-q", "-m", "leaky model", cwd=work)
    bare = work.parent / "bare.git"
    git("clone", "-q", "--bare", work, bare)
    git("--git-dir", bare, "update-server-info")
    for path in bare.rglob("*"):
        if path.is_file():
            server.serve(f"{prefix}/{path.relative_to(bare).as_posix()}", path.read_bytes())
    return git("rev-parse", "HEAD", cwd=work)


@pytest.mark.slow
def test_no_secret_in_any_file_or_output_of_setup_run_failure_and_doctor(tmp_path, ready_envs):
    root = tmp_path / "specs"
    for kind in ("tts", "checks"):  # a model's setup also sets up the default TTS and face check
        shutil.copytree(paths.REPO_ROOT / kind, root / kind)
    gain, hub_file = bytes(range(256)) * 100, b'{"dim": 4}\n'
    outputs = tmp_path / "outputs"
    with serving() as server:
        commit = _serve_repo(server, tmp_path / "work", "/gh/example/leaky")
        server.serve("/gh/example/leaky/releases/download/v1/gain.bin", gain)
        server.serve("/gh/example/leaky/releases/download/v1/gone.bin", b"", mode="404")
        server.serve_hub_folder("thb-test/leaky", COMMIT, "sub", {"sub/config.json": hub_file})
        for name, weight in (("leaky", "gain.bin"), ("leaky404", "gone.bin")):
            folder = root / "solutions" / name
            folder.mkdir(parents=True)
            (folder / "requirements.lock").write_text("")
            (folder / "spec.toml").write_text(SPEC.format(
                commit=commit, gain=weight, size=len(gain), sha=hashlib.sha256(gain).hexdigest(),
                hub_commit=COMMIT, hub_sha=hashlib.sha256(hub_file).hexdigest(),
                hub_size=len(hub_file)))
        local = server.base.removeprefix("http://")
        env = {k: v for k, v in os.environ.items() if k not in ENV and k.upper() != "HTTPS_PROXY"}
        env.update(
            THB_SPECS_DIR=str(root), THB_ENVS_DIR=str(ready_envs), THB_OUTPUTS_DIR=str(outputs),
            HF_TOKEN=TOKEN, GITHUB_TOKEN=ENV["GITHUB_TOKEN"],
            THB_GITHUB_MIRROR=f"http://user:{PASSWORD}@{local}/gh/",
            HF_ENDPOINT=f"http://hubuser:hubPa55word@{local}",
            UV_INDEX_URL=f"http://u:uvPa55word@{local}/simple",  # every package is installed
            PIP_INDEX_URL=f"http://u:pip%40Pa55word@{local}/simple",
            # Anything not on the loopback goes to a proxy nobody serves: nothing leaves the machine.
            HTTPS_PROXY="http://u:proxyPa55@127.0.0.1:9", NO_PROXY="127.0.0.1",
            HF_HUB_DISABLE_TELEMETRY="1", GIT_TERMINAL_PROMPT="0")
        audio = tmp_path / "a.wav"
        proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", audio])

        def call(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", *argv], cwd=paths.REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=600, check=False)

        results = {
            "setup": call("nox", "-s", "setup-leaky"),
            "run": call("invoke", "run", "leaky", "--image", str(paths.REPO_ROOT / "assets/face.png"),
                        "--audio", str(audio), "--no-face-check"),
            "failed download": call("nox", "-s", "setup-leaky404"),
            "doctor": call("invoke", "doctor", "--json"),
        }
    assert results["setup"].returncode == 0, results["setup"].stderr[-3000:]
    assert results["run"].returncode == 0, results["run"].stdout[-3000:] + results["run"].stderr[-3000:]
    failed = results["failed download"]
    assert failed.returncode != 0 and "HTTP 404" in failed.stderr, failed.stderr[-3000:]
    assert "http://***@127.0.0.1" in failed.stderr  # the URL is named, its password is not
    assert json.loads(results["doctor"].stdout)["lines"]
    (run_dir,) = (outputs / "leaky").iterdir()
    assert "token *** mirror http://***@" in (run_dir / "logs/inference.log").read_text()

    hits, searched = [], 0
    written = [p for p in ready_envs.iterdir() if p.is_file() or "leaky" in p.name] + [outputs]
    for top in written:  # the other envs were built before any secret was set
        for path in sorted([top, *top.rglob("*")]):
            if path.is_file() and not path.is_symlink():
                searched += 1
                hits += [f"{path}: {s}" for s in leaks(path.read_bytes().decode("latin-1"))]
    for name, result in results.items():
        hits += [f"{name} output: {s}" for s in leaks(result.stdout + result.stderr)]
    print(f"searched {searched} files and {2 * len(results)} outputs: {len(hits)} hits")
    assert searched > 10 and hits == []

