"""The bad-input catalogue: odd and wrong inputs fed to `invoke run`, `invoke bench`,
`invoke score` and the setup sessions, one command each, as a user types them.

    uv run nox -s setup-still                    # still + Piper + the face check
    uv run python benchmarks/bad_inputs.py       # about 3-4 minutes on 2 cores
    uv run python benchmarks/bad_inputs.py --only image --keep

A mistake must end in one ERROR line and one TIP line (each holding the words its case names),
a non-zero exit, no traceback and nothing written; an odd-but-valid input must work (exit 0).
For every case the outputs folder and the envs folder are snapshot before and after (a hash
over each file's path, size and mtime, symlinks not followed): a file made earlier that changed
or went is "CHANGED", and so is a new file anywhere but in a run folder the case made itself.
Cases needing a mount (a read-only or a full disk) run only as root; "unreadable" runs without
the root capabilities that read anything (setpriv), else is marked not applicable. Exit status
0 when every case passes; `--json PATH` writes every result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_input_cases import Case, cases, ready  # noqa: E402
from bad_input_files import make_all  # noqa: E402

from thbench import envs, paths, proc, resources, specs  # noqa: E402
from thbench.errors import UserError, print_error  # noqa: E402
from thbench.specs import Kind  # noqa: E402

console = Console(highlight=False, width=None if sys.stdout.isatty() else 220)
CASE_TIMEOUT = 300.0
UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
NEEDED = ((Kind.MODEL, "still"), (Kind.TTS, "piper"), (Kind.CHECK, "face"))


@dataclass
class Outcome:
    name: str
    command: str
    expect: str
    exit: int | None = None
    error: str = ""
    tip: str = ""  # the first TIP line
    tips: int = 0
    errors: int = 0
    traceback: bool = False
    earlier: str = "same"
    new_files: int = 0
    seconds: float = 0.0
    peak_mb: float | None = None
    verdict: str = "n/a"
    why: str = ""
    argv: list[str] = field(default_factory=list)
    tail: str = ""  # the output's last lines, kept for a failing case


# --- snapshots --------------------------------------------------------------------------------

def snapshot(roots: list[Path]) -> dict[str, tuple[int, int]]:
    """path → (size, mtime_ns) of every file and link under ``roots`` (links not followed).

    Left out: the empty ``<env>.lock`` / ``<env>.run.lock`` files beside the envs, which
    filelock makes on first use; they hold no state, and a first run makes one."""
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                if folder == str(root) and name.endswith(".lock") and st.st_size == 0:
                    continue
                found[path] = (st.st_size, st.st_mtime_ns)
    return found


def digest(entries: dict[str, tuple[int, int]]) -> str:
    return hashlib.sha256(json.dumps(sorted(entries.items())).encode()).hexdigest()[:12]


def compare(before: dict, after: dict, outputs: Path) -> tuple[str, int]:
    """("same" or what changed, new files). New files count as a change unless they are in a
    run folder (``<outputs>/<model|bench|scores>/<id>/``) that did not exist before."""
    kept = {p: after[p] for p in before if p in after}
    changed = [p for p in before if after.get(p) != before[p]]
    new = [p for p in after if p not in before]
    old_folders = {_run_folder(p, outputs) for p in before}
    intruders = [p for p in new if _run_folder(p, outputs) in old_folders or
                 _run_folder(p, outputs) is None]
    if digest(kept) == digest(before) and not intruders:
        return "same", len(new)
    first = (changed or intruders)[0]
    return f"CHANGED ({len(changed)} earlier, {len(intruders)} stray new; e.g. {first})", len(new)


def _run_folder(path: str, outputs: Path) -> tuple[str, ...] | None:
    try:
        parts = Path(path).relative_to(outputs).parts
    except ValueError:
        return None  # under the envs folder: nothing new belongs there
    return parts[:2] if len(parts) > 2 else None


# --- mounts -----------------------------------------------------------------------------------

@contextmanager
def tmpfs(where: Path, options: str, leave_free: int | None = None) -> Iterator[str | None]:
    """A small tmpfs at ``where`` for one case (root only); ``leave_free`` bytes: fill it."""
    if os.geteuid() != 0:
        yield "not applicable: mounting a tmpfs needs root"
        return
    where.mkdir(parents=True, exist_ok=True)
    done = proc.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", where], capture=True,
                    check=False, timeout=30)
    if done.returncode != 0:
        yield f"not applicable: mount failed: {done.stderr.strip()}"
        return
    try:
        if leave_free is not None:
            _fill(where, leave_free)
        yield None
    finally:
        if proc.run(["umount", where], capture=True, check=False, timeout=30).returncode:
            proc.run(["umount", "-l", where], capture=True, check=False, timeout=30)


def _fill(where: Path, leave_free: int) -> None:
    with open(where / "filler", "wb") as fh:
        while True:
            st = os.statvfs(where)
            room = st.f_bavail * st.f_frsize - leave_free
            if room <= 0:
                break
            try:
                fh.write(bytes(min(room, 1 << 16)))
                fh.flush()
            except OSError:  # ENOSPC: full
                break


def unprivileged() -> tuple[list[str], str | None]:
    """How to run a command that cannot read a chmod 000 file: as is, or as root without the
    capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return [], None
    if shutil.which("setpriv") and proc.run([*UNPRIVILEGED, "true"], capture=True,
                                            check=False, timeout=30).returncode == 0:
        return UNPRIVILEGED, None
    return [], "not applicable as root: root reads a chmod 000 file, and setpriv cannot drop that"


# --- running one case -------------------------------------------------------------------------

def run_case(case: Case, roots: list[Path], outputs: Path, base_env: dict,
             work: Path) -> Outcome:
    out = Outcome(case.name, case.command, case.expect)
    with (case.context() if case.context else nullcontext(None)) as reason:
        if reason:
            out.why = reason
            return out
        tool = "nox" if case.command == "setup" else "invoke"
        argv = [*case.prefix, sys.executable, "-m", tool, *case.argv]
        before = snapshot(roots)
        monitor = resources.Monitor()
        started = time.monotonic()
        done = proc.run(argv, cwd=paths.REPO_ROOT, env={**base_env, **case.env}, capture=True,
                        check=False, timeout=CASE_TIMEOUT, monitor=monitor)
        out.seconds = round(time.monotonic() - started, 1)
        peak = monitor.stop().get("peak_rss_bytes")
        out.peak_mb = round(peak / 2**20) if peak else None
        out.earlier, out.new_files = compare(before, snapshot(roots), outputs)
    text = (done.stdout + "\n" + done.stderr).replace(str(work), "$WORK")  # short, same each run
    lines = [line.strip() for line in text.splitlines()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    tips = [line for line in lines if line.startswith("TIP:")]
    out.exit, out.errors, out.tips = done.returncode, len(errors), len(tips)
    out.error, out.tip = (errors or [""])[0], (tips or [""])[0]
    out.traceback = "Traceback (most recent call last)" in text
    problems = _problems(case, out)
    out.verdict, out.why = ("FAIL", "; ".join(problems)) if problems else ("pass", "")
    if problems and not errors:  # what it said instead, for the report
        out.why += " | last line: " + next((ln for ln in reversed(lines) if ln), "")
    if problems:
        out.argv = [a.replace(str(work), "$WORK") for a in argv]
        out.tail = "\n".join(text.strip().splitlines()[-25:])
    return out


def _problems(case: Case, out: Outcome) -> list[str]:
    found = []
    if out.traceback:
        found.append("traceback")
    if not out.earlier.startswith("same"):
        found.append(f"something earlier {out.earlier}")
    if case.expect == "ok":
        if out.exit != 0:
            found.append(f"exit {out.exit} for a valid input")
        return found
    if out.exit == 0:
        found.append("exit 0 for a mistake")
    if out.errors != 1 or out.tips != 1:
        found.append(f"{out.errors} ERROR and {out.tips} TIP lines (want 1 and 1)")
    found += [f"ERROR lacks {word!r}" for word in case.words if word not in out.error]
    found += [f"TIP lacks {word!r}" for word in case.tip_words if word not in out.tip]
    if out.new_files:
        found.append(f"{out.new_files} new files left behind")
    return found


# --- the table --------------------------------------------------------------------------------

def render(outcomes: list[Outcome]) -> Table:
    table = Table(title="bad-input catalogue", title_justify="left", show_lines=False)
    widths = {"input": 40, "first ERROR line": 64, "verdict": 48}
    for column in ("#", "input", "want", "exit", "first ERROR line", "tb", "earlier", "new",
                   "s", "MB", "verdict"):
        table.add_column(column, overflow="fold", max_width=widths.get(column))
    for n, o in enumerate(outcomes, 1):
        style = {"pass": "green", "FAIL": "bold red"}.get(o.verdict, "yellow")
        error = o.error.removeprefix("ERROR: ")
        table.add_row(str(n), escape(o.name), o.expect, "" if o.exit is None else str(o.exit),
                      escape(error[:150] + ("…" if len(error) > 150 else "")),
                      "YES" if o.traceback else "no", escape(o.earlier[:60]), str(o.new_files),
                      f"{o.seconds:.1f}", "" if o.peak_mb is None else str(o.peak_mb),
                      f"[{style}]{o.verdict}[/]" + (f" {escape(o.why)}" if o.why else ""))
    return table


def summary(outcomes: list[Outcome], seconds: float) -> dict:
    ran = [o for o in outcomes if o.verdict != "n/a"]
    return {"cases": len(outcomes), "ran": len(ran),
            "mistakes": sum(o.expect == "error" for o in ran),
            "valid": sum(o.expect == "ok" for o in ran),
            "not_applicable": len(outcomes) - len(ran),
            "passed": sum(o.verdict == "pass" for o in ran),
            "failed": sum(o.verdict == "FAIL" for o in ran),
            "commands": sorted({o.command for o in ran}), "seconds": round(seconds, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every result and the summary here")
    parser.add_argument("--only", help="run only the cases whose name holds this text")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args(argv)
    for kind, name in NEEDED:
        if not ready(kind, name):
            print_error(UserError(f"the {kind.label} '{name}' is not set up in {paths.envs_root()}",
                                  "run `uv run nox -s setup-still` (or set THB_ENVS_DIR)"))
            return 2
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="thb-bad-inputs-"))
    outputs, envs_root = work / "outputs", paths.envs_root()
    base_env = {"THB_OUTPUTS_DIR": str(outputs), "THB_CACHE_DIR": str(work / "cache"),
                "THB_ENVS_DIR": str(envs_root), "NO_COLOR": "1", "COLUMNS": "200"}
    os.environ.update(base_env)
    try:
        with console.status("making the input files…"):
            face_python = envs.Env.of(specs.get(Kind.CHECK, "face")).python
            files = make_all(work / "inputs", paths.REPO_ROOT / "assets" / "face.png",
                             face_python)
            files["missing"] = work / "inputs" / "nope.png"
        made = time.monotonic() - started
        every = cases(files, work, tmpfs, unprivileged())
        chosen = [c for c in every if not opts.only or opts.only in c.name]
        outcomes = []
        for n, case in enumerate(chosen, 1):
            with console.status(f"[{n}/{len(chosen)}] {escape(case.name)}…"):
                outcomes.append(run_case(case, [outputs, envs_root], outputs, base_env, work))
            o = outcomes[-1]
            console.print(f"  {o.verdict:>4}  {escape(o.name)} [dim](exit {o.exit}, "
                          f"{o.seconds:.1f}s)[/]")
    finally:
        if opts.keep:
            console.print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = summary(outcomes, time.monotonic() - started)
    console.print(render(outcomes))
    console.print(f"{total['cases']} cases ({total['mistakes']} mistakes, {total['valid']} valid, "
                  f"{total['not_applicable']} not applicable): {total['passed']} pass, "
                  f"{total['failed']} FAIL; {total['seconds']:.0f} s (input files {made:.0f} s)")
    if opts.json:
        opts.json.write_text(json.dumps({"summary": total, "cases": [asdict(o) for o in outcomes]},
                                        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0 if total["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
