"""The one subprocess seam: argv lists only, own process group, timeout, output to a log file.

Nothing in the project starts a process any other way, so tests can assert on argv and
user text can never reach a shell.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from thbench import redaction
from thbench.errors import UserError

Arg = str | os.PathLike[str]


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    seconds: float
    stdout: str = ""
    stdout_bytes: bytes = b""  # set (and stdout left empty) by capture_bytes
    stderr: str = ""  # what the command wrote to stderr, when it went to no log


class CommandFailed(UserError):
    """A command exited non-zero or ran past its timeout; the message names it and its log."""

    def __init__(
        self, argv: list[str], returncode: int | None, log: Path | None, tail: str, tip: str
    ) -> None:
        what = "timed out" if returncode is None else f"exited with status {returncode}"
        where = f" (log: {log})" if log else ""
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        super().__init__(f"`{_display(argv)}` {what}{where}" + (f": {last}" if last else ""), tip)
        self.argv = argv
        self.returncode = returncode
        self.log = log
        self.tail = redaction.redact(tail)


class Watcher(Protocol):
    """Watches a running command (thbench.resources.Monitor measures its memory)."""

    def start(self, pid: int) -> None: ...

    def stop(self) -> object: ...


def _display(argv: list[str], limit: int = 160) -> str:
    """The command for a message, cut between arguments so no path is left in half."""
    text = shlex.join(argv)
    if len(text) <= limit:
        return text
    shown = [shlex.quote(argv[0])]
    for arg in argv[1:]:
        piece = shlex.quote(arg)
        if len(" ".join(shown)) + 1 + len(piece) > limit - 4:
            break
        shown.append(piece)
    return " ".join(shown) + " ..."


def _tail(path: Path | None, text: str = "", lines: int = 20) -> str:
    if path is not None and path.exists():
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _redact_log(path: Path, start: int) -> None:
    """Mask secrets in what a command wrote to ``path`` from ``start`` on (git, uv and the
    models print URLs as they were given, mirror credentials included)."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:  # the command removed its own log: nothing left to mask
        return
    clean = redaction.redact(text)
    if clean != text:
        with path.open("r+b") as fh:
            fh.seek(start)
            fh.write(clean.encode("utf-8", "surrogateescape"))
            fh.truncate()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    argv: Sequence[Arg],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    unset_env: Sequence[str] = (),
    log: Path | None = None,
    timeout: float | None = None,
    capture: bool = False,
    capture_bytes: bool = False,
    inherit_output: bool = False,
    check: bool = True,
    tip: str = "read the log named above; fix the cause and run the same command again",
    monitor: Watcher | None = None,
) -> Completed:
    """Run ``argv`` (a list, never a string) and wait for it.

    ``env`` adds to (and overrides) this process's environment. Output goes to ``log``
    (appended, with the command line first) unless ``capture`` is set, in which case stdout
    is returned and stderr still goes to the log (or, with no log, is returned too).
    ``capture_bytes`` is ``capture`` for binary output (raw video frames): stdout comes back
    undecoded in ``stdout_bytes``.
    ``inherit_output`` leaves stdout and stderr on this process's (the terminal) for a
    hand-off to a tool the user watches; it excludes ``log`` and ``capture``.
    ``monitor`` is started with the child's pid once it runs and stopped once it is gone,
    however the run ends (exit, timeout, Ctrl-C); its own ``stop()`` result is its record.
    """
    capture = capture or capture_bytes
    if inherit_output and (log is not None or capture):
        raise ValueError("inherit_output excludes log and capture")
    if isinstance(argv, (str, bytes)):
        raise TypeError("proc.run takes an argv list, not a string")
    args = [os.fspath(a) for a in argv]
    full_env = {k: v for k, v in os.environ.items() if k not in unset_env}
    full_env.update(env or {})

    log_fh = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log_fh = log.open("ab")
        log_start = log_fh.tell()
        log_fh.write(f"$ {redaction.redact(shlex.join(args))}\n".encode())
        log_fh.flush()
    # Without a log, output is kept in memory so a failure can still show its last lines.
    stdout = subprocess.PIPE if capture or log_fh is None else log_fh
    stderr = subprocess.PIPE if log_fh is None else log_fh
    if inherit_output:
        stdout = stderr = None
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # own process group: a timeout kills the whole tree
        )
    except OSError as error:
        if log_fh:
            log_fh.close()
        if cwd is not None and not Path(cwd).is_dir():
            raise UserError(f"cannot run {args[0]}: its working folder {cwd} does not exist",
                            tip) from None
        if isinstance(error, FileNotFoundError):
            raise UserError(
                f"program not found: {args[0]}",
                "run `python3 bootstrap/bootstrap.py` to install what talking-head-bench needs",
            ) from None
        raise UserError(f"cannot run {args[0]}: {error.strerror or error}", tip) from None
    returncode: int | None = None
    out = err = b""
    try:
        if monitor is not None:
            monitor.start(proc.pid)
        out, err = proc.communicate(timeout=timeout)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:  # collect what is left in the pipes, and close them
            proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            pass
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        if monitor is not None:
            monitor.stop()
        if log_fh:
            if returncode is None:
                log_fh.write(f"[thbench] no exit after {timeout}s: process group killed\n".encode())
            log_fh.close()
            _redact_log(log, log_start)
    seconds = time.monotonic() - start
    out_text = "" if capture_bytes else (out or b"").decode("utf-8", "replace")
    err_text = (err or b"").decode("utf-8", "replace")
    if check and returncode != 0:
        raise CommandFailed(args, returncode, log, _tail(log, err_text or out_text), tip)
    return Completed(args, -1 if returncode is None else returncode, seconds, out_text,
                     (out or b"") if capture_bytes else b"", err_text)
