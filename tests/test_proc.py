from __future__ import annotations

import os
import sys
import time

import pytest

from thbench import proc
from thbench.errors import UserError


def test_a_string_is_refused():
    with pytest.raises(TypeError):
        proc.run("echo hi")


def test_argv_reaches_the_program_verbatim(tmp_path):
    tricky = "$(touch x) `id`; rm -rf / && 'quote' \"dq\" naïve"
    out = proc.run([sys.executable, "-c", "import sys; print(sys.argv[1])", tricky],
                   cwd=tmp_path, capture=True)
    assert out.stdout.rstrip("\n") == tricky
    assert list(tmp_path.iterdir()) == []


def test_output_goes_to_the_log_with_the_command_line(tmp_path):
    log = tmp_path / "logs" / "step.log"
    proc.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
             log=log)
    text = log.read_text()
    assert text.startswith("$ ") and "out\n" in text and "err\n" in text


def test_failure_names_command_status_log_and_last_line(tmp_path):
    log = tmp_path / "fail.log"
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run([sys.executable, "-c", "print('first'); print('the real cause'); exit(3)"],
                 log=log, tip="do the thing")
    err = caught.value
    assert err.returncode == 3 and err.log == log and err.tip == "do the thing"
    assert "exited with status 3" in err.message and "the real cause" in err.message
    assert str(log) in err.message


def test_a_long_command_is_cut_between_arguments_never_inside_a_path(tmp_path):
    folder = tmp_path / ("deep-" * 12)
    folder.mkdir()
    script = folder / "fails.py"
    script.write_text("raise SystemExit(2)\n")
    argv = [sys.executable, str(script), "--flag", "x" * 200]
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run(argv)
    shown = caught.value.message.split("`")[1]
    assert shown.endswith(" ...") and len(shown) <= 160
    kept = shown.removesuffix(" ...").split(" ")
    assert kept == argv[: len(kept)]  # whole arguments only, so a path can still be masked


def test_check_false_returns_the_status():
    result = proc.run([sys.executable, "-c", "exit(5)"], check=False)
    assert result.returncode == 5


def test_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    started = time.monotonic()
    with pytest.raises(proc.CommandFailed) as caught:
        proc.run([sys.executable, "-c", script], timeout=2, log=tmp_path / "t.log")
    assert caught.value.returncode is None and "timed out" in caught.value.message
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # reaped by init shortly after the kill
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived the timeout")
    assert "process group killed" in (tmp_path / "t.log").read_text()


def test_missing_program_is_a_user_error():
    with pytest.raises(UserError) as caught:
        proc.run(["thb-no-such-program-xyz"])
    assert "program not found: thb-no-such-program-xyz" in caught.value.message


def test_missing_working_folder_is_named(tmp_path):
    with pytest.raises(UserError) as caught:
        proc.run([sys.executable, "-c", "pass"], cwd=tmp_path / "gone")
    assert "working folder" in caught.value.message and "gone" in caught.value.message


def test_a_program_that_cannot_be_executed_is_a_user_error(tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(UserError) as caught:
        proc.run([script])
    assert "cannot run" in caught.value.message and "ermission" in caught.value.message


def test_capture_bytes_returns_binary_stdout():
    out = proc.run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(bytes(range(256)))"],
                   capture_bytes=True)
    assert out.stdout_bytes == bytes(range(256))


class _RecordingWatcher:
    """A proc.Watcher that notes its calls and can interrupt the run, as Ctrl-C would."""

    def __init__(self, interrupt: bool = False) -> None:
        self.interrupt = interrupt
        self.calls: list[tuple[str, int | None]] = []

    def start(self, pid: int) -> None:
        self.calls.append(("start", pid))
        if self.interrupt:
            raise KeyboardInterrupt

    def stop(self) -> None:
        self.calls.append(("stop", None))


def test_a_monitor_is_started_with_the_child_pid_and_stopped():
    watcher = _RecordingWatcher()
    out = proc.run([sys.executable, "-c", "import os; print(os.getpid())"], capture=True,
                   monitor=watcher)
    assert watcher.calls == [("start", int(out.stdout)), ("stop", None)]


def test_a_monitor_is_stopped_and_the_child_killed_on_ctrl_c(tmp_path):
    watcher = _RecordingWatcher(interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        proc.run([sys.executable, "-c", "import time; time.sleep(300)"], log=tmp_path / "i.log",
                 monitor=watcher)
    assert [name for name, _ in watcher.calls] == ["start", "stop"]
    pid = watcher.calls[0][1]
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(pid, 0)
